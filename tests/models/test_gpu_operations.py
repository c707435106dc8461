"""How many operations a training step asks of the GPU, counted on the CuPy
stand-in (``cupy.operations``; ``benchmarks/count_gpu_operations.py`` prints
them): the structure that keeps a GPU step from being bound by its launches,
checked so that a change cannot quietly add launches back. Second pass only."""

import os

import numpy as np
import pytest

from timelayers import models, optim

pytestmark = [pytest.mark.cupy, pytest.mark.skipif(
    os.environ.get("TIMELAYERS_TEST_CUPY") != "standin",
    reason="counts operations on the CuPy stand-in")]


def counted_step(model, optimizer, xs, ts, max_grad=0.25):
    """``{part: operations}`` of one step (after one that allocates the state)."""
    import cupy

    def step():
        loss = model.forward(xs, ts)
        model.backward()
        cupy.operations.clear()
        optim.clip_grads(model.grads, max_grad)
        parts["clip"] = sum(cupy.operations.values())
        cupy.operations.clear()
        optimizer.update(model.params, model.grads)
        parts["update"] = sum(cupy.operations.values())
        return loss

    parts = {}
    step()
    cupy.operations.clear()
    model.forward(xs, ts)
    parts["forward"] = sum(cupy.operations.values())
    cupy.operations.clear()
    model.backward()
    parts["backward"] = sum(cupy.operations.values())
    step()
    return parts


def better_rnnlm_step(T, optimizer):
    import cupy

    model = models.BetterRnnlm(11, 4, 4, dropout_ratio=0.5, num_layers=2, rng=0).to_gpu()
    ids = cupy.asarray(np.random.default_rng(0).integers(0, 11, (3, T)))
    return counted_step(model, optimizer, ids, ids), len(model.params)


def test_each_lstm_time_step_is_two_operations_each_way():
    """One product and one fused kernel a step forward, one kernel and one
    product backward: 2 layers x 5 more steps add 20 operations each way."""
    short, _ = better_rnnlm_step(5, optim.SGD(1.0))
    long, _ = better_rnnlm_step(10, optim.SGD(1.0))
    assert long["forward"] - short["forward"] == 2 * 2 * 5
    assert long["backward"] - short["backward"] == 2 * 2 * 5


@pytest.mark.parametrize("make", [lambda: optim.SGD(1.0), lambda: optim.Adam(1e-3),
                                  lambda: optim.AdamW(1e-3), lambda: optim.RMSprop(1e-3)])
def test_an_update_is_one_kernel_a_parameter_and_clipping_few(make):
    parts, params = better_rnnlm_step(5, make())
    assert parts["update"] == params
    assert parts["clip"] <= 2 * params + 4   # a vdot and a scaling a gradient, then 4 at most

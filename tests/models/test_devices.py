"""Moving a model between NumPy and CuPy: ``Model.to_gpu()`` / ``Model.to_cpu()``.

Both are ``Model.replace_arrays(convert)`` with ``convert`` = ``timelayers.to_gpu``
or ``to_cpu``. On the CPU the mechanism is checked with a conversion that makes
NumPy copies: afterwards no array is shared with the old ones, tied params are
views of their moved sources again, and training goes on to the bit as if
nothing had moved (optimizer state included). With ``TIMELAYERS_TEST_CUPY=1``
(CuPy and a GPU present) every model also runs a training step on the GPU and
matches the CPU.
"""


import numpy as np
import pytest

from support.devices import needs_cupy, no_device_sync

from support.tiny_models import MODEL_FACTORIES
from timelayers import models
from timelayers.layers import Dropout
from timelayers.layers.sampling import NegativeSamplingLoss
from timelayers.layers.base import Layer
from timelayers.backend import to_cpu, to_gpu
from timelayers.optim import Adam



class Moved(np.ndarray):
    """Marks the arrays made by the test conversion."""


def copy_keeping_layout(a):
    return np.array(a, order="K", copy=True).view(Moved)


def reachable_arrays(obj, seen=None):
    """Every array in the attributes of a model or layer, through layers, models,
    lists, tuples and dicts (written apart from the library's walker, so that
    an array the walker misses is found here)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    found = []

    def visit(value):
        if isinstance(value, np.ndarray):
            found.append(value)
        elif isinstance(value, (models.Model, Layer)):
            found.extend(reachable_arrays(value, seen))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    for name, value in vars(obj).items():
        if name != "_cache" or not isinstance(obj, models.Model):  # the model's own index
            visit(value)
    return found


def ties(model):
    """(tied, source, transpose) of the model and its sub-models, with full names."""
    return [(prefix + t, prefix + src, tr) for prefix, m in models.base._named_models(model)
            for t, src, tr in getattr(m, "_ties", [])]


def param_by_name(model, name):
    return {n: layer.params[k] for n, layer, k in model._param_slots()}[name]


def one_step(model, inputs, optimizer):
    loss = model.forward(*inputs)
    model.backward()
    optimizer.update(model.params, model.grads)
    return loss


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_move_replaces_every_array_and_keeps_ties(name):
    make, data = MODEL_FACTORIES[name]
    model = make()
    inputs = data(np.random.default_rng(0))
    model.forward(*inputs)
    model.backward()  # caches, states and block buffers exist now
    before = reachable_arrays(model)
    values = {k: v.copy() for k, v in model.state_dict().items()}
    model.replace_arrays(copy_keeping_layout)
    after = reachable_arrays(model)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        assert isinstance(a, Moved) and a.dtype == b.dtype and a.shape == b.shape
        assert a.flags.f_contiguous == b.flags.f_contiguous
    for a in after:
        assert not any(np.may_share_memory(a, b) for b in before)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, values[k])
    for tied, source, transpose in ties(model):
        t, s = param_by_name(model, tied), param_by_name(model, source)
        assert np.shares_memory(t, s)
        np.testing.assert_array_equal(t, s.T if transpose else s)
    assert len(model.params) == len(model.grads) == len(values)


def twins(name, n_batches, seed):
    """Two identical models of ``name``, an Adam for each, and batches for them."""
    make, data = MODEL_FACTORIES[name]
    rng = np.random.default_rng(seed)
    return make(), make(), Adam(lr=0.01), Adam(lr=0.01), [data(rng) for _ in range(n_batches)]


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_training_goes_on_unchanged_after_a_move(name):
    still, moved, opt_still, opt_moved, batches = twins(name, 3, seed=1)
    losses_still = [one_step(still, b, opt_still) for b in batches]
    losses_moved = [one_step(moved, batches[0], opt_moved)]
    moved.replace_arrays(copy_keeping_layout)
    losses_moved += [one_step(moved, b, opt_moved) for b in batches[1:]]
    assert losses_moved == losses_still
    for a, b in zip(moved.params, still.params):
        np.testing.assert_array_equal(a, b)


def test_moves_keep_fortran_order():
    """A conversion that returns C order (as CuPy's ``get`` does) still leaves the
    Fortran-ordered arrays (the tied affine weight and its buffers) Fortran-ordered."""
    model = models.BetterRnnlm(7, 4, 4, rng=0)
    model.forward(*MODEL_FACTORIES["BetterRnnlm"][1](np.random.default_rng(0)))
    model.backward()
    before = reachable_arrays(model)
    fortran = [a.flags.f_contiguous and not a.flags.c_contiguous for a in before]
    assert any(fortran)
    model.replace_arrays(models.base._keeping_order(lambda a: np.array(a, order="C")))
    after = reachable_arrays(model)
    for a, b, was_fortran in zip(after, before, fortran):
        assert not np.may_share_memory(a, b)
        assert a.flags.f_contiguous if was_fortran else a.flags.c_contiguous


def test_to_gpu_without_cupy_says_so(monkeypatch):
    monkeypatch.setattr(models.base, "cupy_available", lambda: False)
    model = models.Rnnlm(7, 3, 4, rng=0)
    with pytest.raises(RuntimeError, match=r"Rnnlm\.to_gpu: CuPy is not installed"):
        model.to_gpu()
    assert all(isinstance(p, np.ndarray) for p in model.params)


def test_to_cpu_of_a_cpu_model_changes_nothing_but_the_arrays():
    model = models.BetterRnnlm(7, 4, 4, rng=0)
    values = [p.copy() for p in model.params]
    assert model.to_cpu() is model
    for a, b in zip(model.params, values):
        np.testing.assert_array_equal(a, b)
    assert np.shares_memory(model.affine.params[0], model.embed.params[0])


@needs_cupy
@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_gpu_training_step_matches_cpu(name):
    """Dropout draws its masks on the device (README, "On a GPU"): off here.
    Negative samples are drawn on the device by the counter method, which the CPU
    twin uses too."""
    cpu, gpu, opt_cpu, opt_gpu, batches = twins(name, 2, seed=2)
    for model in (cpu, gpu):
        for _, layer in model.named_layers():
            if isinstance(layer, Dropout):
                layer.dropout_ratio = 0.0
            if isinstance(layer, NegativeSamplingLoss):
                layer.sampler.method = "counter"
    assert gpu.to_gpu() is gpu
    for b in batches:
        loss_cpu = one_step(cpu, b, opt_cpu)
        loss_gpu = one_step(gpu, [to_gpu(x) for x in b], opt_gpu)
        assert float(loss_gpu) == pytest.approx(loss_cpu, rel=1e-10)
    for tied, source, transpose in ties(gpu):
        assert param_by_name(gpu, tied).data.ptr == param_by_name(gpu, source).data.ptr
    gpu.to_cpu()
    for a, b in zip(gpu.params, cpu.params):
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert one_step(gpu, batches[0], opt_gpu) == pytest.approx(one_step(cpu, batches[0], opt_cpu),
                                                               rel=1e-9)
    assert isinstance(to_cpu(gpu.params[0]), np.ndarray)


@needs_cupy
def test_device_id_checks_wait_for_the_flush():
    """On the GPU a forward with an out-of-range id does not wait for the device;
    the id is reported at the next flush, which the trainers and perplexity call
    where they read the loss."""
    import cupy

    from timelayers._checks import flush_device_checks
    from timelayers.errors import ShapeError
    from timelayers.layers import TimeEmbedding

    layer = TimeEmbedding(cupy.zeros((5, 3), dtype=cupy.float32))
    flush_device_checks()
    layer.forward(cupy.array([[1, 2]]))
    layer.forward(cupy.array([[1, 7]]))               # bad, not read yet
    with pytest.raises(ShapeError, match=r"expected ids in \[0, 5\), got 7"):
        flush_device_checks()
    flush_device_checks()                             # nothing pending any more


def test_device_mask_reference_is_a_fair_reproducible_draw():
    """The NumPy twin of the GPU's dropout masks: the same seed gives the same
    mask, another seed another one, and about ``1 - ratio`` of the elements are
    kept, scaled by ``1 / (1 - ratio)``."""
    from timelayers.cuda.random import keep_mask_reference

    a = keep_mask_reference(1984, (400, 250), 0.3, np.float32)
    assert a.dtype == np.float32 and a.shape == (400, 250)
    np.testing.assert_array_equal(a, keep_mask_reference(1984, (400, 250), 0.3, np.float32))
    assert set(np.unique(a)) == {np.float32(0), np.float32(1 / 0.7)}
    assert abs((a > 0).mean() - 0.7) < 0.01
    b = keep_mask_reference(1985, (400, 250), 0.3, np.float32)
    assert abs(((a > 0) == (b > 0)).mean() - (0.7 ** 2 + 0.3 ** 2)) < 0.01   # independent
    neighbours = ((a[:, :-1] > 0) & (a[:, 1:] > 0)).mean()                  # next elements
    assert abs(neighbours - 0.49) < 0.01


@needs_cupy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_masks_drawn_on_the_device(dtype):
    """On CuPy the masks come from the device kernel, equal to the NumPy twin,
    seeded from the layer's generator (the same seed, the same masks)."""
    import cupy

    from timelayers.cuda.random import keep_mask_reference
    from timelayers.layers import Dropout

    x = cupy.ones((64, 33), dtype=dtype)
    layer = Dropout(0.4, rng=np.random.default_rng(5))
    y = layer.forward(x)
    seed = int(np.random.default_rng(5).integers(0, 2**63))
    np.testing.assert_array_equal(cupy.asnumpy(y), keep_mask_reference(seed, x.shape, 0.4, dtype))
    again = Dropout(0.4, rng=np.random.default_rng(5)).forward(x)
    np.testing.assert_array_equal(cupy.asnumpy(again), cupy.asnumpy(y))


@needs_cupy
@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_gpu_training_step_never_waits_for_the_device(name):
    """Forward, backward, clip and update of every model make no host read of a
    device array (after a first step, which compiles the kernels)."""
    import cupy

    from timelayers.optim import clip_grads

    _, gpu, _, opt_gpu, batches = twins(name, 2, seed=3)
    gpu.to_gpu()
    batches = [[to_gpu(x) for x in b] for b in batches]
    one_step(gpu, batches[0], opt_gpu)
    with no_device_sync(cupy):
        gpu.forward(*batches[1])
        gpu.backward()
        clip_grads(gpu.grads, 1.0)
        opt_gpu.update(gpu.params, gpu.grads)

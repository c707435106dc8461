"""The recurrent plans behind one seam (timelayers.layers.plans): every plan
against the book's equations (the reference plan), the reference against
central differences, and the choices choose_plan makes.

- every plan gives the reference's outputs, last states, input and initial-state
  gradients and param gradients, for every cell, on shapes that reach each of
  the fast LSTM's layouts (fused, input product, unscaled, padded rows), in
  float64 and float32; the fast LSTM also with the forward that keeps no steps
  (evaluation), whose backward runs the forward again;
- the reference plan and the chosen plans pass float64 gradient checks;
- a time layer with a plan runs the same stateful sequence as the reference;
- choose_plan: the documented choices for the models' shapes, row blocks only
  where they pay, the whole batch on one thread; a layer in evaluation mode
  gets the LSTM that keeps no steps, and a backward after it is still right;
- row blocks prepare the LSTM's weights once per call and keep their buffers;
- the fast LSTM gives no overflow warnings for large pre-activations;
- the transposed copies pad rows that would alias in the cache.
"""

import numpy as np
import pytest

from support.assertions import assert_close, assert_gradcheck, randn
from support.devices import needs_cupy
from timelayers.layers import TimeGRU, TimeLSTM, TimeRNN
from timelayers.layers.cells import CELLS
from timelayers.layers.plans import (BatchedGRU, BatchedRNN, FastLSTM, FusedGRU, FusedLSTM,
                                     FusedRNN, ReferencePlan, RowBlocks, choose_plan)
from timelayers.layers.plans import lstm_fast
from timelayers.threads import even_blocks, get_num_threads, set_num_threads

KINDS = {"rnn": CELLS["rnn"], "lstm": CELLS["lstm"], "gru": CELLS["gru"],
         "gru_ra": CELLS["gru-reset-after"]}
LSTM, GRU, RNN = CELLS["lstm"], CELLS["gru"], CELLS["rnn"]


def every_lstm_variant():
    """Every valid combination of the fast LSTM's flags (fused only when prescaled)."""
    flags = [(p, f, t, tb, s, k) for p in (False, True) for f in (False, True)
             for t in (False, True) for tb in (False, True) for s in (False, True)
             for k in (True, False)]
    return [FastLSTM(*fl) for fl in flags if fl[0] or not fl[1]]


def every_plan(cell, N, xp=None, blocks=2):
    """The reference first, then every plan that choose_plan can give for ``cell``
    on a batch of ``N`` rows of array module ``xp`` (NumPy when None), each also
    on ``blocks`` row blocks."""
    inner = {"lstm": every_lstm_variant(), "gru": [BatchedGRU(cell.reset_after)],
             "rnn": [BatchedRNN()]}[cell.step]
    if xp is not None and xp.__name__ != "numpy":
        inner = inner + [{"rnn": FusedRNN(), "lstm": FusedLSTM(),
                          "gru": FusedGRU(cell.reset_after)}[cell.step]]
    plans = [ReferencePlan(cell)] + inner
    if N >= blocks > 1:
        plans += [RowBlocks(p, even_blocks(N, blocks)) for p in inner]
    return plans

# (N, T, D, H) reaching the fast LSTM's layouts when chosen by shape: gate
# scales folded into the weights (D + 1 + H < T N) with one fused product per
# step (4 (D+1) <= H) or the input product for all steps; few rows (scaled
# pre-activations); 4H = 128 float64 columns (1024-byte rows, padded before
# their transposed copy).
SHAPES = {
    "scaled, fused": (4, 5, 1, 8),
    "scaled, input product": (3, 5, 4, 6),
    "few rows, small input": (2, 3, 1, 8),
    "one row, two steps": (1, 2, 3, 4),
    "one step": (3, 1, 2, 5),
    "padded rows": (6, 6, 1, 32),
}


def make_case(xp, rng, kind, N, T, D, H, scale=0.5, dtype=np.float64):
    cell = KINDS[kind]
    G = cell.gates * H
    params = [randn(xp, rng, D, G) * scale, randn(xp, rng, H, G) * scale,
              randn(xp, rng, G) * scale]
    if cell.reset_after:
        params.append(randn(xp, rng, G) * scale)
    states = [randn(xp, rng, N, H) * 0.5 for _ in range(2 if cell.has_cell_state else 1)]
    xs = randn(xp, rng, N, T, D)
    return ([p.astype(dtype) for p in params], xs.astype(dtype),
            tuple(s.astype(dtype) for s in states))


def run_plan(plan, params, xs, states, dhs):
    """Forward and backward of ``plan``; everything it returns, as a flat list."""
    xp = np if isinstance(xs, np.ndarray) else __import__("cupy")
    hs, last, cache = plan.forward(params, xs, states)
    grads = [xp.full_like(p, np.nan) for p in params]        # every element must be written
    dxs, dstates = plan.backward(params, grads, dhs, cache)
    return [hs, *last, dxs, *dstates, *grads]


TOLERANCES = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-4, atol=1e-4)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_plan_equals_the_reference(xp, rng, kind, shape, dtype):
    N, T, D, H = SHAPES[shape]
    params, xs, states = make_case(xp, rng, kind, N, T, D, H, dtype=dtype)
    dhs = randn(xp, rng, N, T, H).astype(dtype)
    cell = KINDS[kind]
    expected = run_plan(ReferencePlan(cell), params, xs, states, dhs)
    for plan in every_plan(cell, N, xp)[1:]:
        got = run_plan(plan, params, xs, states, dhs)
        assert len(got) == len(expected)
        for name, a, b in zip(("hs", "last", "dxs", "dstates", "grads"), got, expected):
            assert a.shape == b.shape and a.dtype == dtype, (plan, name)
            assert_close(a, b, **TOLERANCES[dtype])


def test_every_plan_counts():
    """48 fast-LSTM variants (fused only with prescaled weights; each keeping its
    steps for backward or not), each also on row blocks, and the reference."""
    assert len(every_plan(LSTM, 5)) == 1 + 48 + 48
    assert len(every_plan(LSTM, 1)) == 1 + 48
    assert [type(p) for p in every_plan(GRU, 4)] == [ReferencePlan, BatchedGRU, RowBlocks]
    assert [type(p) for p in every_plan(RNN, 4)] == [ReferencePlan, BatchedRNN, RowBlocks]
    with pytest.raises(ValueError, match="fused"):
        FastLSTM(prescaled=False, fused=True, transposed=False, transposed_backward=False,
                 stepwise_backward=False)


LAYERS = {"rnn": TimeRNN, "lstm": TimeLSTM, "gru": TimeGRU,
          "gru_ra": lambda *p, **kw: TimeGRU(*p[:3], reset_after=True, bh=p[3], **kw)}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("plan", ["reference", "chosen"])
def test_layer_gradcheck(xp, rng, kind, plan):
    N, T, D, H = 3, 4, 2, 3
    params, xs, states = make_case(xp, rng, kind, N, T, D, H)
    layer = LAYERS[kind](*params, plan="reference" if plan == "reference" else None)
    layer.set_state(*states)
    assert_gradcheck(layer, xs, dout=randn(xp, rng, N, T, H))


@pytest.mark.parametrize("kind", list(KINDS))
def test_stateful_layer_with_each_plan_follows_the_reference(xp, rng, kind):
    """Two stateful forwards (truncated BPTT) give the reference layer's outputs,
    states and gradients with every plan."""
    N, T, D, H = 4, 3, 2, 5
    params, xs, _ = make_case(xp, rng, kind, N, T, D, H)
    xs2 = randn(xp, rng, N, T, D)
    dhs = [randn(xp, rng, N, T, H) for _ in range(2)]

    def run(plan):
        layer = LAYERS[kind](*params, stateful=True, plan=plan)
        out = []
        for x, d in zip((xs, xs2), dhs):
            out += [layer.forward(x), layer.h, layer.backward(d), layer.dh]
            out += [g.copy() for g in layer.grads]
            if kind == "lstm":
                out += [layer.c, layer.dc]
        return out

    cell = KINDS[kind]
    expected = run("reference")
    for plan in every_plan(cell, N, xp)[1:] + [None]:
        for a, b in zip(run(plan), expected):
            assert_close(a, b, rtol=1e-11, atol=1e-12)


def test_plan_argument_is_checked(rng):
    params, _, _ = make_case(np, rng, "lstm", 2, 2, 2, 3)
    with pytest.raises(ValueError, match="TimeLSTM: argument 'plan' expected None, 'reference'"):
        TimeLSTM(*params, plan="fast")
    assert TimeLSTM(*params, plan="reference").plan == ReferencePlan(LSTM)


# ----------------------------------------------------------------------------- choices

@pytest.fixture
def threads():
    """Run with a given thread count, restoring the previous one afterwards."""
    before = get_num_threads()
    yield set_num_threads
    set_num_threads(before)


def params_for(gates, D, H, dtype=np.float32):
    return [np.zeros((D, gates * H), dtype), np.zeros((H, gates * H), dtype),
            np.zeros(gates * H, dtype)]


def test_choices_for_the_models_shapes(threads):
    """BetterRnnlm's training batches (20 x 35, D = H = 650): fewer rows (700)
    than weight rows (1301), so unscaled, with transposed products (few rows);
    at 64 rows prescaled, plain products, backward step by step; its generation
    (one row, one step): nothing prepared. The seq2seq encoders' character
    embeddings (D 16, H 256): fused products."""
    threads(1)
    better = choose_plan(LSTM, params_for(4, 650, 650), (20, 35, 650))
    assert better == FastLSTM(prescaled=False, fused=False, transposed=True,
                              transposed_backward=True, stepwise_backward=False)
    better_large = choose_plan(LSTM, params_for(4, 650, 650), (64, 35, 650))
    assert better_large == FastLSTM(prescaled=True, fused=False, transposed=False,
                                    transposed_backward=False, stepwise_backward=True)
    generate = choose_plan(LSTM, params_for(4, 650, 650), (1, 1, 650), training=False)
    assert generate == FastLSTM(prescaled=False, fused=False, transposed=False,
                                transposed_backward=True, stepwise_backward=False,
                                keep_steps=False)
    assert choose_plan(LSTM, params_for(4, 650, 650), (1, 1, 650)).keep_steps
    seq2seq = choose_plan(LSTM, params_for(4, 16, 256), (128, 29, 16))
    assert seq2seq.fused and seq2seq.prescaled and not seq2seq.transposed
    assert choose_plan(GRU, params_for(3, 5, 7), (4, 3, 5)) == BatchedGRU()
    assert FusedLSTM() not in every_plan(LSTM, 4)           # CuPy only
    assert FusedGRU() not in every_plan(GRU, 4) and FusedRNN() not in every_plan(RNN, 4)
    assert choose_plan(RNN, params_for(1, 5, 7), (4, 3, 5)) == BatchedRNN()
    assert choose_plan(KINDS["gru_ra"], params_for(3, 5, 7), (4, 3, 5)) == BatchedGRU(True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_in_evaluation_mode(xp, rng, kind):
    """Out of training the LSTM's chosen plan keeps no steps; the outputs, states
    and a backward after it (it runs the forward again) equal training mode's."""
    N, T, D, H = 4, 3, 2, 5
    params, xs, states = make_case(xp, rng, kind, N, T, D, H)
    dhs = randn(xp, rng, N, T, H)

    def run(training):
        layer = LAYERS[kind](*params, stateful=True)
        layer.train_flg = training
        layer.set_state(*states)
        out = [layer.forward(xs), layer.forward(xs[:, ::-1]), layer.h, layer.backward(dhs),
               layer.dh] + [g.copy() for g in layer.grads]
        plan = layer._plan.inner if isinstance(layer._plan, RowBlocks) else layer._plan
        return out, plan

    expected, train_plan = run(True)
    got, eval_plan = run(False)
    for a, b in zip(got, expected):
        assert_close(a, b, rtol=1e-12, atol=1e-12)
    if kind == "lstm" and xp is np:
        assert train_plan.keep_steps and not eval_plan.keep_steps
    else:
        assert eval_plan == train_plan


def test_row_blocks_only_where_they_pay(threads):
    pytest.importorskip("threadpoolctl")
    threads(2)
    seq2seq = choose_plan(LSTM, params_for(4, 16, 256), (128, 29, 16))
    assert isinstance(seq2seq, RowBlocks)
    assert [(s.start, s.stop) for s in seq2seq.blocks] == [(0, 64), (64, 128)]
    assert seq2seq.inner == FastLSTM.for_shape(64, 29, 16, 256)   # chosen for one block
    assert not isinstance(choose_plan(LSTM, params_for(4, 650, 650), (20, 35, 650)),
                          RowBlocks)                                # 10 rows a block
    threads(1)
    assert not isinstance(choose_plan(LSTM, params_for(4, 16, 256), (128, 29, 16)),
                          RowBlocks)


def test_row_blocks_prepare_once_and_keep_buffers(rng, threads):
    """The inner plan's weights are prepared once per call and shared by the
    blocks (here 3 rows and 2); a layer keeps an equal plan, and its buffers."""
    pytest.importorskip("threadpoolctl")
    threads(2)
    calls = []

    class Spy(FastLSTM):
        def prepare_forward(self, params):
            calls.append("forward")
            return super().prepare_forward(params)

        def prepare_backward(self, params):
            calls.append("backward")
            return super().prepare_backward(params)

    params, xs, _ = make_case(np, rng, "lstm", 5, 4, 3, 6)
    plan = RowBlocks(Spy(True, False, True, False, True), 2)
    layer = TimeLSTM(*params, plan=plan)
    layer.forward(xs)
    layer.backward(randn(np, rng, 5, 4, 6))
    assert calls == ["forward", "backward"]
    buffers = plan._block_grads
    assert len(buffers) == 1 and [b.shape for b in buffers[0]] == [p.shape for p in params]
    layer.forward(xs)
    layer.backward(randn(np, rng, 5, 4, 6))
    assert plan._block_grads is buffers


def test_layer_keeps_an_equal_chosen_plan(rng, threads):
    pytest.importorskip("threadpoolctl")
    threads(2)
    params, _, _ = make_case(np, rng, "lstm", 64, 2, 3, 256, dtype=np.float32)
    layer = TimeLSTM(*params)
    xs = np.zeros((64, 2, 3), np.float32)
    layer.forward(xs)
    first = layer._plan
    assert isinstance(first, RowBlocks)
    layer.backward(np.ones((64, 2, 256), np.float32))
    layer.forward(xs)
    assert layer._plan is first


# ----------------------------------------------------------------------------- numerics

@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "padded rows"])
def test_fast_lstm_large_preactivations_no_warnings(rng, shape):
    """|a| up to hundreds: saturated gates must not warn, and the result is as
    close to float64 as the reference's own float32 result is (weights this large
    amplify each step's rounding; the float32 reference differs by up to 1.2e-5)."""
    N, T, D, H = SHAPES[shape]
    params, xs, states = make_case(np, rng, "lstm", N, T, D, H, scale=60.0, dtype=np.float32)
    expected = ReferencePlan(LSTM).forward([p.astype(np.float64) for p in params],
                                             xs.astype(np.float64),
                                             tuple(s.astype(np.float64) for s in states))[0]
    with np.errstate(over="ignore"):                  # the reference's exp(-a) = inf
        reference_error = np.abs(ReferencePlan(LSTM).forward(params, xs, states)[0]
                                 - expected).max()
    for plan in every_lstm_variant():
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            hs, last, cache = plan.forward(params, xs, states)
            grads = [np.empty_like(p) for p in params]
            dxs, _ = plan.backward(params, grads, np.ones_like(hs), cache)
        assert np.isfinite(hs).all() and np.isfinite(dxs).all()
        np.testing.assert_allclose(hs, expected, atol=max(1e-5, 2 * reference_error))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 128), (64, 256), (3, 256), (5, 7), (1, 256)])
def test_transposed_copy_pads_aliasing_rows(rng, dtype, shape):
    a = rng.standard_normal(shape).astype(dtype)
    t = lstm_fast.transposed_copy(a)
    assert t.flags.c_contiguous and np.array_equal(t, a.T)
    assert np.array_equal(lstm_fast.transposed_copy(t), a)
    buf = lstm_fast.padded_empty(shape, dtype, np)
    assert buf.shape == shape and buf.dtype == dtype
    aliasing = shape[0] > 1 and (shape[1] * np.dtype(dtype).itemsize) % 1024 == 0
    assert (buf.strides[0] != shape[1] * np.dtype(dtype).itemsize) == aliasing


def test_cuda_kernels_compile():
    """The CUDA sources compile with NVRTC for both dtypes (no GPU needed, only
    CuPy and its NVRTC; the GPU suite runs them against the reference)."""
    compiler = pytest.importorskip("cupy.cuda.compiler")  # not in the CuPy stand-in

    from timelayers.cuda import optim as optim_cuda, random as device_random, softmax as softmax_cuda
    from timelayers.layers.plans import fused as cuda

    for module, kernels in ((cuda, 10), (device_random, 2), (softmax_cuda, 4), (optim_cuda, 6)):
        for dtype in ("float32", "float64"):
            program = compiler._NVRTCProgram(module.kernel_source(dtype), "kernels.cu")
            ptx, _ = program.compile(options=("-arch=compute_90",))
            assert ptx.count(b".entry") == kernels


@pytest.fixture
def fused_kernels_on_cpu(monkeypatch):
    """The fused plans' kernels compiled for the CPU and launched on NumPy arrays."""
    from support.devices import CpuKernels, cxx_compiler
    from timelayers.layers.plans import fused as cuda

    if cxx_compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels for the CPU")
    kernels = CpuKernels(cuda.kernel_source)
    monkeypatch.setattr(cuda, "_launch", lambda name, dtype, N, H, *arrays: kernels.launch(
        name, dtype.name, N * H, [*arrays, np.int32(N), np.int32(H)]))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", ["scaled, input product", "one row, two steps", "one step",
                                   "padded rows"])
def test_fused_plans_run_on_cpu_equal_the_reference(rng, fused_kernels_on_cpu, kind, shape):
    """The GPU plans' kernels and launches, run on the CPU: the reference's
    results in float64, and to float32 rounding in float32."""
    N, T, D, H = SHAPES[shape]
    cell = KINDS[kind]
    plan = {"rnn": FusedRNN(), "lstm": FusedLSTM(), "gru": FusedGRU(cell.reset_after)}[cell.step]
    params, xs, states = make_case(np, rng, kind, N, T, D, H)
    dhs = randn(np, rng, N, T, H)
    expected = run_plan(ReferencePlan(cell), params, xs, states, dhs)
    for a, b in zip(run_plan(plan, params, xs, states, dhs), expected):
        assert_close(a, b, rtol=1e-11, atol=1e-12)
    as32 = [[p.astype(np.float32) for p in params], xs.astype(np.float32),
            tuple(s.astype(np.float32) for s in states), dhs.astype(np.float32)]
    for a, b in zip(run_plan(plan, *as32), expected):
        assert a.dtype == np.float32
        assert_close(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))


@needs_cupy
def test_row_blocks_remake_their_buffers_for_another_array_module():
    """A plan is not moved with its model (Model.to_gpu leaves plans alone): the
    buffers RowBlocks keeps are made again for gradients of another module."""
    import cupy

    plan = RowBlocks(BatchedRNN(), 2)
    grads = [np.zeros((3, 4)), np.zeros(4)]
    on_host = plan._gradient_buffers(grads, 1)
    assert plan._gradient_buffers(grads, 1) is on_host
    on_device = plan._gradient_buffers([cupy.asarray(g) for g in grads], 1)
    assert all(isinstance(b, cupy.ndarray) for b in on_device[0])

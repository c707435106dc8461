"""The code paths added for speed (issue 9) give the results of the plain ones.

- ``functions.parallel_rows`` and the thread count settings;
- the softmax cross entropy split over row blocks and threads equals the
  one-thread result to the bit, and float64 math;
- optimizers updating block by block (on threads) equal whole-array updates to
  the bit;
- TimeLSTM's forward variants (gate scales folded into the weights, with one
  fused product per step for small inputs or the input product for all steps at
  once; or, for few rows, scaled pre-activations): each against the book's
  equations and central differences, and without overflow warnings for large
  pre-activations;
- TimeLSTM's two backward variants (local derivatives in full-width passes, or
  step by step) and its per-step products plain or transposed (few rows),
  against central differences and each other; weight copies whose rows would
  alias in the cache go through padded rows, and the row blocks share one
  weight preparation per call;
- ``functions.run_parallel`` (results in order, errors, nested calls, the BLAS
  thread count restored) and the recurrent layers run on row blocks in parallel
  threads: the same outputs, states and gradients as one block, and central
  differences, for the layers and for whole encoder-decoder and language models;
- the sorted scatter-add of the embedding gradients equals ``add.at``;
- TimeAffine with a Fortran-ordered (tied, transposed) ``W`` equals the
  C-ordered one and keeps its grads' layout.
"""

import threading

import numpy as np
import pytest

from helpers import assert_close, assert_gradcheck, randn
from test_recurrent import reference_forward
from timelayers import parallel as functions
from timelayers.parallel import get_num_threads, parallel_rows, set_num_threads
from timelayers.layers import TimeAffine, TimeSoftmaxWithLoss
from timelayers.layers import losses as losses_module
from timelayers.layers.core import _scatter_rows
from timelayers.layers import recurrent as recurrent_module
from timelayers.layers.recurrent import TimeGRU, TimeLSTM, TimeRNN
from timelayers.optim import OPTIMIZERS


@pytest.fixture
def threads():
    """Run with a given thread count, restoring the previous one afterwards."""
    before = get_num_threads()
    yield set_num_threads
    set_num_threads(before)


# ----------------------------------------------------------------------------- pool

def test_parallel_rows_covers_every_row_once(threads):
    threads(3)
    seen = np.zeros(1000, dtype=np.int64)
    names = set()

    def fn(a, b):
        seen[a:b] += 1
        names.add(threading.current_thread().name)

    parallel_rows(fn, 1000, min_rows=10)
    assert (seen == 1).all()
    assert len(names) >= 1


@pytest.mark.parametrize("n_threads", [1, 3])
def test_parallel_rows_max_block_caps_every_block(threads, n_threads):
    threads(n_threads)
    seen = np.zeros(1000, dtype=np.int64)
    sizes = []

    def fn(a, b):
        seen[a:b] += 1
        sizes.append(b - a)

    parallel_rows(fn, 1000, min_rows=10, max_block=64)
    assert (seen == 1).all()
    assert max(sizes) <= 64


def test_parallel_rows_small_or_one_thread_runs_inline(threads):
    calls = []
    threads(4)
    parallel_rows(lambda a, b: calls.append((a, b)), 5, min_rows=10)  # too few rows
    threads(1)
    parallel_rows(lambda a, b: calls.append((a, b)), 1000)
    parallel_rows(lambda a, b: calls.append((a, b)), 0)
    assert calls == [(0, 5), (0, 1000)]


def test_parallel_rows_raises_and_nested_calls_run_inline(threads):
    threads(2)

    def bad(a, b):
        if a > 0:
            raise KeyError("block")

    with pytest.raises(KeyError):
        parallel_rows(bad, 100)

    out = np.zeros(100)

    def outer(a, b):
        parallel_rows(lambda c, d: out.__setitem__(slice(a + c, a + d), 1), b - a)

    parallel_rows(outer, 100)
    assert (out == 1).all()


def test_set_num_threads_checks(threads):
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(0)
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(1.5)
    threads(3)
    assert get_num_threads() == 3


def test_default_threads_from_environment(monkeypatch):
    monkeypatch.setenv("TIMELAYERS_NUM_THREADS", "5")
    assert functions._default_num_threads() == 5
    monkeypatch.setenv("TIMELAYERS_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="TIMELAYERS_NUM_THREADS"):
        functions._default_num_threads()
    monkeypatch.delenv("TIMELAYERS_NUM_THREADS")
    assert 1 <= functions._default_num_threads() <= functions._MAX_DEFAULT_THREADS


# ----------------------------------------------------------------------------- softmax

@pytest.mark.parametrize("ignore", [False, True])
def test_threaded_softmax_loss_equals_one_thread(rng, threads, monkeypatch, ignore):
    monkeypatch.setattr(losses_module, "_BLOCK_ELEMENTS", 3000)  # several blocks per thread
    monkeypatch.setattr(losses_module, "_MIN_ELEMENTS_PER_THREAD", 5000)
    N, T, V = 4, 9, 1000
    xs = (rng.standard_normal((N, T, V)) * 3).astype(np.float32)
    ts = rng.integers(0, V, (N, T))
    if ignore:
        ts[0, :4] = -1
    out = {}
    for n in (1, 3):
        threads(n)
        layer = TimeSoftmaxWithLoss()
        out[n] = (layer.forward(xs, ts), layer.backward(1.0))
    assert out[1][0] == out[3][0]
    np.testing.assert_array_equal(out[1][1], out[3][1])
    # against float64 math
    x = xs.astype(np.float64).reshape(N * T, V)
    t = ts.reshape(-1)
    keep = t != -1
    logp = x - x.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    loss = -logp[np.arange(N * T)[keep], t[keep]].mean()
    dx = np.exp(logp)
    dx[np.arange(N * T)[keep], t[keep]] -= 1
    dx *= keep[:, None] / keep.sum()
    assert out[3][0] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(out[3][1].reshape(N * T, V), dx, rtol=1e-4, atol=1e-8)


# ----------------------------------------------------------------------------- optim

@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_blockwise_update_equals_whole_array(rng, threads, name):
    threads(2)
    shapes = [(300, 500), (70000,), (3, 4)]  # two large (several blocks), one small
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ref = [p.copy() for p in params]
    blocked, whole = OPTIMIZERS[name](), OPTIMIZERS[name]()
    whole._by_blocks = False
    for _ in range(3):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        blocked.update(params, grads)
        whole.update(ref, grads)
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p, r)


def test_blockwise_skips_non_contiguous(rng, threads):
    threads(2)
    base = rng.standard_normal((400, 400)).astype(np.float32)
    p = base.T  # Fortran order: updated as one array, in place
    g = np.ones_like(p)
    opt = OPTIMIZERS["Adam"]()
    ref = p.copy()
    OPTIMIZERS["Adam"]().update([ref], [g])
    opt.update([p], [g])
    np.testing.assert_array_equal(base.T, ref)


# ----------------------------------------------------------------------------- LSTM

# (N, T, D, H): gate scales folded into the weights (D + 1 + H < T N) with one
# fused product per step (4 (D+1) <= H) or the input product for all steps, or
# few rows (scaled pre-activations, no weight copies).
LSTM_SHAPES = {
    "scaled weights, fused": (4, 5, 1, 8),
    "scaled weights, input product": (3, 5, 4, 6),
    "few rows, small input": (2, 3, 1, 8),
    "few rows": (1, 2, 3, 4),
    # 4H = 128 float64 columns: 1024-byte rows, copied into padded rows before
    # they are transposed (recurrent._padded_empty, _transposed_copy)
    "scaled weights, fused, padded rows": (6, 6, 1, 32),
    "few rows, padded rows": (2, 3, 1, 32),
}


def lstm_case(xp, rng, N, T, D, H, scale=0.5):
    params = [randn(xp, rng, D, 4 * H) * scale, randn(xp, rng, H, 4 * H) * scale,
              randn(xp, rng, 4 * H) * scale]
    return params, randn(xp, rng, N, T, D), randn(xp, rng, N, H) * 0.5, randn(xp, rng, N, H) * 0.5


@pytest.mark.parametrize("transposed", [True, False], ids=["steps transposed", "steps plain"])
@pytest.mark.parametrize("case", list(LSTM_SHAPES))
def test_lstm_layouts_forward_and_gradients(xp, rng, monkeypatch, case, transposed):
    monkeypatch.setattr(recurrent_module, "_TRANSPOSED_STEP_MAX_ROWS", 10**9 if transposed else 0)
    N, T, D, H = LSTM_SHAPES[case]
    params, xs, h0, c0 = lstm_case(xp, rng, N, T, D, H)
    layer = TimeLSTM(*params)
    layer.set_state(h0, c0)
    ref_hs, ref_h, ref_c = reference_forward("lstm", params, xs, h0, c0)
    assert_close(layer.forward(xs), ref_hs, rtol=1e-12, atol=1e-13)
    assert_close(layer.h, ref_h, rtol=1e-12, atol=1e-13)
    assert_close(layer.c, ref_c, rtol=1e-12, atol=1e-13)
    assert_gradcheck(layer, xs, dout=randn(xp, rng, N, T, H))


# (H = 32 sums pre-activations of thousands here, whose float32 rounding exceeds
# the tolerance near a gate's switch: the small shapes check the warnings)
@pytest.mark.parametrize("case", [c for c in LSTM_SHAPES if "padded" not in c])
def test_lstm_large_preactivations_no_warnings(rng, case):
    N, T, D, H = LSTM_SHAPES[case]
    params, xs, h0, c0 = lstm_case(np, rng, N, T, D, H, scale=60.0)  # |a| up to hundreds
    params = [p.astype(np.float32) for p in params]
    xs = xs.astype(np.float32)
    layer = TimeLSTM(*params)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a warning would raise
        hs = layer.forward(xs)
        dxs = layer.backward(np.ones_like(hs))
    ref_hs, _, _ = reference_forward("lstm", params, xs, np.zeros((N, H)), np.zeros((N, H)))
    assert np.isfinite(hs).all() and np.isfinite(dxs).all()
    np.testing.assert_allclose(hs, ref_hs, atol=1e-5)


@pytest.mark.parametrize("transposed", [True, False], ids=["steps transposed", "steps plain"])
@pytest.mark.parametrize("stepwise", [False, True])
@pytest.mark.parametrize("case", ["scaled weights, fused", "scaled weights, input product",
                                  "few rows"])
def test_lstm_backward_variants(xp, rng, monkeypatch, case, stepwise, transposed):
    monkeypatch.setattr(recurrent_module, "_STEPWISE_BACKWARD_MIN", 0 if stepwise else 10**9)
    monkeypatch.setattr(recurrent_module, "_TRANSPOSED_STEP_MAX_ROWS", 10**9 if transposed else 0)
    N, T, D, H = LSTM_SHAPES[case]
    params, xs, h0, c0 = lstm_case(xp, rng, N, T, D, H)
    layer = TimeLSTM(*params)
    layer.set_state(h0, c0)
    assert_gradcheck(layer, xs, dout=randn(xp, rng, N, T, H))


def test_lstm_backward_variants_agree(rng, monkeypatch):
    N, T, D, H = 5, 6, 3, 7
    params, xs, h0, c0 = lstm_case(np, rng, N, T, D, H)
    dhs = randn(np, rng, N, T, H)
    results = []
    for threshold, rows in ((0, 0), (10**9, 0), (0, 10**9), (10**9, 10**9)):
        monkeypatch.setattr(recurrent_module, "_STEPWISE_BACKWARD_MIN", threshold)
        monkeypatch.setattr(recurrent_module, "_TRANSPOSED_STEP_MAX_ROWS", rows)
        layer = TimeLSTM(*params)
        layer.set_state(h0, c0)
        layer.forward(xs)
        dxs = layer.backward(dhs)
        results.append([dxs, layer.dh, layer.dc] + [g.copy() for g in layer.grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 128), (64, 256), (3, 256), (5, 7), (1, 256)])
def test_transposed_copy_pads_aliasing_rows(rng, dtype, shape):
    a = rng.standard_normal(shape).astype(dtype)
    t = recurrent_module._transposed_copy(a)
    assert t.flags.c_contiguous and np.array_equal(t, a.T)
    assert np.array_equal(recurrent_module._transposed_copy(t), a)
    buf = recurrent_module._padded_empty(shape, dtype, np)
    assert buf.shape == shape and buf.dtype == dtype
    aliasing = shape[0] > 1 and (shape[1] * np.dtype(dtype).itemsize) % 1024 == 0
    assert (buf.strides[0] != shape[1] * np.dtype(dtype).itemsize) == aliasing


def test_lstm_row_blocks_share_one_weight_preparation(rng, small_blocks):
    """The weights are prepared once per call, for the largest block, and every
    block (here 3 rows and 2) computes with them."""
    calls = []
    for name in ("_lstm_step_weights", "_lstm_hidden_weights"):
        original = getattr(recurrent_module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, args[3] if _name == "_lstm_step_weights" else args[1]))
            return _original(*args, **kwargs)

        small_blocks.setattr(recurrent_module, name, spy)
    make, xs = recurrent_case(rng, "lstm", 5, 4, 3, 6)
    layer = make()
    layer.forward(xs)
    layer.backward(randn(np, rng, 5, 4, 6))
    assert len(layer._blocks) == 2
    assert calls == [("_lstm_step_weights", 3), ("_lstm_hidden_weights", 3)]


# ----------------------------------------------------------------------------- row blocks

def blas_threads():
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_run_parallel_results_errors_and_blas_threads(threads):
    pytest.importorskip("threadpoolctl")
    threads(2)
    before = blas_threads()
    seen = []

    def job(k):
        seen.append((k, threading.current_thread().name, blas_threads()))
        return k * k

    assert functions.run_parallel([lambda k=k: job(k) for k in range(2)]) == [0, 1]
    assert {name.startswith("timelayers") for _, name, _ in seen} == {False, True}
    if before:
        assert all(t == [1] * len(before) for _, _, t in seen)  # one BLAS thread inside
    assert blas_threads() == before                             # restored after

    def boom():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        functions.run_parallel([boom, lambda: 1])
    assert blas_threads() == before
    # a job that calls run_parallel again runs the inner jobs in its own thread
    inner = functions.run_parallel([lambda: functions.run_parallel([lambda: 1, lambda: 2])] * 2)
    assert inner == [[1, 2], [1, 2]]
    threads(1)
    assert functions.run_parallel([lambda: threading.current_thread().name] * 2) == \
        [threading.current_thread().name] * 2


def test_run_parallel_without_blas_control_runs_serially(threads, monkeypatch):
    """Without threadpoolctl (or a BLAS it can drive) two jobs would call a
    multi-threaded BLAS at once: they run one after the other instead."""
    threads(2)
    monkeypatch.setattr(functions, "_blas_libs", [])
    assert not functions.can_run_parallel()
    names = functions.run_parallel([lambda: threading.current_thread().name] * 2)
    assert names == [threading.current_thread().name] * 2


RECURRENT = {
    "rnn": (TimeRNN, 1, {}),
    "lstm": (TimeLSTM, 4, {}),
    "gru": (TimeGRU, 3, {}),
    "gru_ra": (TimeGRU, 3, {"reset_after": True}),
}


def recurrent_case(rng, kind, N, T, D, H, dtype=np.float64):
    cls, gates, kwargs = RECURRENT[kind]
    params = [randn(np, rng, D, gates * H) * 0.5, randn(np, rng, H, gates * H) * 0.5,
              randn(np, rng, gates * H) * 0.5]
    if kind == "gru_ra":
        kwargs = dict(kwargs, bh=randn(np, rng, gates * H) * 0.5)
    params = [p.astype(dtype) for p in params]
    kwargs = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    return (lambda stateful=False: cls(*params, stateful=stateful, **kwargs),
            randn(np, rng, N, T, D).astype(dtype))


@pytest.fixture
def small_blocks(monkeypatch, threads):
    """Split batches of any size into row blocks on 2 threads."""
    pytest.importorskip("threadpoolctl")
    threads(2)
    monkeypatch.setattr(recurrent_module, "_MIN_ROWS_PER_BLOCK", 1)
    monkeypatch.setattr(recurrent_module, "_MIN_ELEMENTS_PER_BLOCK", 1)
    return monkeypatch


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_row_blocks_equal_one_block(rng, small_blocks, kind):
    N, T, D, H = 5, 4, 3, 6
    make, xs = recurrent_case(rng, kind, N, T, D, H)
    xs2 = randn(np, rng, N, T, D)
    dhs = [randn(np, rng, N, T, H) for _ in range(2)]
    results = []
    for split in (True, False):
        small_blocks.setattr(recurrent_module, "_MIN_ROWS_PER_BLOCK", 1 if split else 10**9)
        layer = make(stateful=True)
        out = []
        for x, d in zip((xs, xs2), dhs):  # two stateful blocks of the same sequences
            out.append(layer.forward(x))
            out.append(layer.backward(d))
            out += [layer.h, layer.dh] + [g.copy() for g in layer.grads]
            if kind == "lstm":
                out += [layer.c, layer.dc]
        assert len(layer._blocks) == (2 if split else 1)
        results.append(out)
    for a, b in zip(*results):
        assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_row_blocks_gradcheck(rng, small_blocks, kind):
    N, T, D, H = 3, 3, 2, 3
    make, xs = recurrent_case(rng, kind, N, T, D, H)
    layer = make()
    assert_gradcheck(layer, xs, dout=randn(np, rng, N, T, H))
    assert len(layer._blocks) == 2


def test_row_blocks_float32_and_small_batches_stay_whole(rng, threads):
    pytest.importorskip("threadpoolctl")
    threads(2)
    make, xs = recurrent_case(rng, "lstm", 128, 3, 4, 256, dtype=np.float32)
    layer = make()
    hs = layer.forward(xs)
    dxs = layer.backward(np.ones_like(hs))
    assert len(layer._blocks) == 2                    # 64 rows x 256 units per block
    assert hs.dtype == dxs.dtype == layer.grads[0].dtype == np.float32
    threads(1)
    layer.forward(xs)
    assert len(layer._blocks) == 1
    threads(2)
    make, xs = recurrent_case(rng, "lstm", 20, 3, 4, 650, dtype=np.float32)
    layer = make()
    layer.forward(xs)
    assert len(layer._blocks) == 1                    # 10 rows a block: not worth it


# ----------------------------------------------------------------------------- affine

def test_time_affine_fortran_w_equals_c_w(rng):
    D, V = 5, 7
    E = rng.standard_normal((V, D))  # an embedding; W = E.T is Fortran-ordered
    b = rng.standard_normal(V)
    tied, plain = TimeAffine(E.T, b), TimeAffine(np.ascontiguousarray(E.T), b.copy())
    assert tied.params[0].flags.f_contiguous and tied.grads[0].flags.f_contiguous
    x = rng.standard_normal((2, 3, D))
    dout = rng.standard_normal((2, 3, V))
    for _ in range(2):
        assert_close(tied.forward(x), plain.forward(x), rtol=1e-14, atol=1e-14)
        assert_close(tied.backward(dout), plain.backward(dout), rtol=1e-14, atol=1e-14)
        for g1, g2 in zip(tied.grads, plain.grads):
            assert_close(g1, g2, rtol=1e-14, atol=1e-14)
        E += 0.1  # W changes in place between calls, as after an optimizer step
        plain.params[0][...] = E.T
    assert tied.grads[0].flags.f_contiguous


# ----------------------------------------------------------------------------- embedding

@pytest.mark.parametrize("M", [0, 1, 7, 500])
def test_scatter_rows_equals_add_at(rng, M):
    V, D = 40, 6
    idx = rng.integers(0, V, M)
    if M > 10:
        idx[::5] = 3  # many repeats of one id
    values = rng.standard_normal((M, D))
    dW = rng.standard_normal((V, D))  # stale values must be cleared
    _scatter_rows(dW, idx, values)
    ref = np.zeros((V, D))
    np.add.at(ref, idx, values)
    np.testing.assert_allclose(dW, ref, rtol=1e-12, atol=1e-12)
    ids = rng.permutation(V)[:min(M, V)]  # no repeats: exact
    _scatter_rows(dW, ids, values[:ids.size])
    ref = np.zeros((V, D))
    ref[ids] = values[:ids.size]
    np.testing.assert_array_equal(dW, ref)


@pytest.mark.parametrize("name", ["Rnnlm", "BetterRnnlm", "Seq2seq", "PeekySeq2seq",
                                  "AttentionSeq2seq"])
def test_models_gradcheck_on_row_blocks(small_blocks, name):
    """Whole models with their recurrent layers split into row blocks: the
    decoders' initial states and the gradients handed back to the encoders
    cross the blocks correctly."""
    from test_models import FACTORIES, _freeze_randomness, _scale_params
    from timelayers.gradcheck import check_layer

    make, data = FACTORIES[name]
    rng = np.random.default_rng(1)
    model = make()
    _scale_params(model, rng)
    inputs = data(rng)
    errors = check_layer(model, *inputs, setup=_freeze_randomness(model), eps=1e-5)
    assert max(errors.values()) < 1e-6, errors
    recurrent = [layer for layer in _walk(model) if isinstance(layer, (TimeLSTM, TimeGRU, TimeRNN))]
    assert recurrent and all(len(layer._blocks) == 2 for layer in recurrent)


def _walk(obj, seen=None):
    """Every layer object reachable from a model's attributes."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if hasattr(item, "params") and hasattr(item, "forward"):
                yield from _walk(item, seen)


@pytest.mark.parametrize("preset", [None, "25"])
def test_import_shortens_openblas_spin_unless_set(preset):
    """``import timelayers`` sets OPENBLAS_THREAD_TIMEOUT=22 for the BLAS that
    NumPy loads after it, and keeps a value the user set."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = "import timelayers, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == (preset or "22")

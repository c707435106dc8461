"""The code paths added for speed give the results of the plain ones (the
recurrent plans have their own tests, tests/layers/test_recurrent_plans.py).

- ``parallel.parallel_rows`` and the thread count settings;
- the softmax cross entropy split over row blocks and threads equals the
  one-thread result to the bit, and float64 math;
- optimizers updating block by block (on threads) equal whole-array updates to
  the bit;
- ``parallel.run_parallel`` (results in order, errors, nested calls, the BLAS
  thread count restored); whole encoder-decoder and language models with their
  recurrent layers on row blocks pass gradient checks;
- the sorted scatter-add of the embedding gradients equals ``add.at``;
- TimeAffine with a Fortran-ordered (tied, transposed) ``W`` equals the
  C-ordered one and keeps its grads' layout;
- importing timelayers shortens OpenBLAS's idle spin.
"""

import threading

import numpy as np
import pytest

from support.assertions import assert_close, assert_gradcheck, randn
from timelayers import threads as functions
from timelayers.threads import get_num_threads, parallel_rows, set_num_threads
from timelayers.layers import TimeAffine, TimeSoftmaxWithLoss
from timelayers.layers import losses as losses_module
from timelayers.layers.core import _scatter_rows
from timelayers.layers.plans import BatchedGRU, BatchedRNN, FastLSTM, RowBlocks
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
    """3 threads: the rows are cut into 4 blocks a thread, taken in turn, and
    each row is done once."""
    threads(3)
    seen = np.zeros(1000, dtype=np.int64)
    blocks = []

    def fn(a, b):
        seen[a:b] += 1
        blocks.append((a, b))

    parallel_rows(fn, 1000, min_rows=10)
    assert (seen == 1).all()
    assert len(blocks) == 12


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

# ----------------------------------------------------------------------------- row blocks

def blas_threads():
    """The thread counts of NumPy's BLAS (the one the row blocks call; torch and
    SciPy, loaded by other tests, bring BLAS libraries of their own)."""
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas" and "numpy" in i["filepath"]]


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


def test_jobs_start_no_threads_and_leave_the_count(threads, monkeypatch):
    """Inside a job, the calling thread's included, work runs in the job's thread
    and adapt_to_load neither reads the load nor resizes the pool (the pool is
    busy with the other jobs)."""
    pytest.importorskip("threadpoolctl")
    threads(2)
    monkeypatch.setattr(functions, "_fixed", False)
    monkeypatch.delenv("TIMELAYERS_NUM_THREADS", raising=False)
    monkeypatch.setattr(functions, "_load_sample", None)
    monkeypatch.setattr(functions, "_sample_load", lambda now: pytest.fail("read the load"))

    def job():
        name = threading.current_thread().name
        inner = functions.run_parallel([lambda: threading.current_thread().name] * 2)
        return functions.in_parallel_job(), name, inner, functions.adapt_to_load()

    results = functions.run_parallel([job, job])
    assert {name.startswith("timelayers") for _, name, _, _ in results} == {False, True}
    for inside, name, inner, n in results:
        assert inside and inner == [name, name] and n == 2
    assert not functions.in_parallel_job()


def test_run_parallel_without_blas_control_runs_serially(threads, monkeypatch):
    """Without threadpoolctl (or a BLAS it can drive) two jobs would call a
    multi-threaded BLAS at once: they run one after the other instead."""
    threads(2)
    monkeypatch.setattr(functions, "_blas_libs", [])
    assert not functions.can_run_parallel()
    names = functions.run_parallel([lambda: threading.current_thread().name] * 2)
    assert names == [threading.current_thread().name] * 2


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
def test_models_gradcheck_on_row_blocks(threads, name):
    """Whole models with their recurrent layers split into row blocks: the
    decoders' initial states and the gradients handed back to the encoders
    cross the blocks correctly."""
    from support.tiny_models import MODEL_FACTORIES, freeze_randomness, scale_params
    from timelayers.gradcheck import check_layer

    pytest.importorskip("threadpoolctl")
    threads(2)
    make, data = MODEL_FACTORIES[name]
    rng = np.random.default_rng(1)
    model = make()
    recurrent = [layer for layer in _walk(model) if isinstance(layer, (TimeLSTM, TimeGRU, TimeRNN))]
    for layer in recurrent:
        inner = {TimeLSTM: FastLSTM(True, False, True, False, True),
                 TimeGRU: BatchedGRU(layer.cell.reset_after), TimeRNN: BatchedRNN()}[type(layer)]
        layer.plan = RowBlocks(inner, 2)
    scale_params(model, rng)
    inputs = data(rng)
    errors = check_layer(model, *inputs, setup=freeze_randomness(model), eps=1e-5)
    assert max(errors.values()) < 1e-6, errors
    assert recurrent and all(len(layer._cache.slices) == 2 for layer in recurrent)


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

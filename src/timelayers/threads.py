"""Threads for large NumPy passes: a small pool, and the BLAS held to one
thread while the pool runs independent jobs.

NumPy's ufuncs release the GIL, so one large elementwise pass (the softmax over
``(N*T, V)`` scores, for example) can be cut into blocks of rows that several
threads work on at once. :func:`parallel_rows` does that for NumPy arrays on a
small pool of threads (the calling thread takes one block itself);
:func:`set_num_threads` / :func:`get_num_threads` set and read its size. The
default is the number of CPUs this process may run on (at most 8), or the
``TIMELAYERS_NUM_THREADS`` environment variable. Matrix products are left to the
BLAS, which has its own threads (``OPENBLAS_NUM_THREADS`` or ``threadpoolctl``).

:func:`run_parallel` runs a few independent jobs -- the row blocks of a batch
in a recurrent layer -- on the same pool, with the BLAS held to one thread
meanwhile (through ``threadpoolctl``), so that each job's small matrix
products and elementwise passes run on a core of their own instead of the
BLAS's threads taking turns with the elementwise work.

OpenBLAS's idle threads spin for about 2**28 CPU cycles (~0.1 s) after each
multi-threaded product before they sleep, taking a core from the pool's threads.
This module sets ``OPENBLAS_THREAD_TIMEOUT=22`` (2**22 cycles, ~2 ms: still
longer than the gap between two per-step products of a recurrent loop) unless
it is already set. OpenBLAS reads it when it starts, so it acts only when this
module is imported before NumPy: ``timelayers/__init__.py`` imports it first.

CuPy arrays never go through the pool.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")

import threading  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

__all__ = ["parallel_rows", "run_parallel", "can_run_parallel", "set_num_threads",
           "get_num_threads"]


_MAX_DEFAULT_THREADS = 8
_BLOCKS_PER_THREAD = 4
_num_threads = None   # None: not decided yet (see _default_num_threads)
_pool = None          # ThreadPoolExecutor with _num_threads - 1 workers, made on first use
_pool_lock = threading.Lock()
_in_worker = threading.local()


def _default_num_threads() -> int:
    env = os.environ.get("TIMELAYERS_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"TIMELAYERS_NUM_THREADS expected a positive integer, "
                             f"got {env!r}") from None
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _MAX_DEFAULT_THREADS))


def get_num_threads() -> int:
    """Threads that :func:`parallel_rows` uses, the caller's included."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (the caller's included) for large row-wise passes;
    1 turns the pool off. Does not change the BLAS's threads."""
    global _num_threads, _pool
    if int(n) != n or n < 1:
        raise ValueError(f"set_num_threads: argument 'n' expected a positive integer, got {n!r}")
    with _pool_lock:
        if _pool is not None and int(n) != _num_threads:
            _pool.shutdown(wait=True)
            _pool = None
        _num_threads = int(n)


def _reset_pool_in_child():
    """After fork the pool's threads are gone: make a new pool on next use."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_in_child)


def _get_pool(workers):
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="timelayers",
                                       initializer=_mark_worker)
        return _pool


def _mark_worker():
    _in_worker.active = True


# BLAS thread control (threadpoolctl): found once; [] when unavailable.
_blas_libs = None
_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = []


def _blas_controllers():
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_libs = [lib for lib in ThreadpoolController().lib_controllers
                          if lib.user_api == "blas"]
        except Exception:  # not installed, or a BLAS it cannot drive
            _blas_libs = []
    return _blas_libs


def can_run_parallel() -> bool:
    """True when :func:`run_parallel` would use more than one thread: more than one
    thread is allowed, the caller is not a pool thread, and the BLAS's threads
    can be held to one (two jobs calling a multi-threaded BLAS at once would
    take turns)."""
    return (get_num_threads() > 1 and not getattr(_in_worker, "active", False)
            and bool(_blas_controllers()))


class _OneBlasThread:
    """Hold the BLAS to one thread; nested and concurrent uses restore the
    setting found by the first one when the last one leaves."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                _blas_saved = [lib.get_num_threads() for lib in _blas_libs]
                for lib in _blas_libs:
                    lib.set_num_threads(1)
            _blas_depth += 1

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for lib, n in zip(_blas_libs, _blas_saved):
                    if n is not None:  # None: a library that cannot report it
                        lib.set_num_threads(n)


def run_parallel(jobs):
    """Call every job of ``jobs`` (callables without arguments) and return their
    results in order, the first one in the calling thread and the others on the
    pool, with the BLAS held to one thread until all have finished (the setting
    is the process's: products that other threads of the program make meanwhile
    run on one thread too).

    Without more than one thread (see :func:`can_run_parallel`) the jobs run one
    after the other in the calling thread. Expects at most
    :func:`get_num_threads` jobs (more wait for a free thread). The first
    exception raised by a job is raised here, after every job has finished.
    """
    jobs = list(jobs)
    if len(jobs) <= 1 or not can_run_parallel():
        return [job() for job in jobs]
    with _OneBlasThread():
        return _run_on_pool(jobs)


def _run_on_pool(jobs):
    """The first job in the calling thread, the others on the pool; their results
    in order, or the first exception raised, once every job has finished."""
    pool = _get_pool(get_num_threads() - 1)
    futures = [pool.submit(job) for job in jobs[1:]]
    results, error = [None] * len(jobs), None
    try:
        results[0] = jobs[0]()
    except BaseException as exc:  # wait for the others before raising
        error = exc
    for k, f in enumerate(futures, start=1):
        exc = f.exception()
        if exc is None:
            results[k] = f.result()
        elif error is None:
            error = exc
    if error is not None:
        raise error
    return results


def parallel_rows(fn, n_rows: int, min_rows: int = 1, max_block: int | None = None) -> None:
    """Call ``fn(start, stop)`` on contiguous blocks of rows covering
    ``range(n_rows)``, on up to :func:`get_num_threads` threads at once; with
    ``max_block``, no block has more rows than that (blocks small enough to stay
    in the cache while ``fn`` makes several passes over them).

    ``fn`` must only touch its own rows of the arrays it writes, and should spend
    its time in NumPy calls that release the GIL. Each thread gets at least
    ``min_rows`` rows, so small inputs run in the calling thread alone (as do
    calls made from inside a worker). The rows are cut into a few blocks per
    thread that the threads take in turn, so a thread slowed down by another
    process (or by the BLAS's own threads, which spin for a while after a
    matrix product) takes fewer blocks instead of holding the others up. The
    first exception raised by a block is raised here, after every block has
    finished.
    """
    if max_block is not None:
        whole = fn

        def fn(start, stop):
            for a in range(start, stop, max_block):
                whole(a, min(a + max_block, stop))

    n = min(get_num_threads(), n_rows // max(1, min_rows))
    if n <= 1 or getattr(_in_worker, "active", False):
        if n_rows > 0:
            fn(0, n_rows)
        return
    n_blocks = min(n_rows, _BLOCKS_PER_THREAD * n)
    bounds = [n_rows * i // n_blocks for i in range(n_blocks + 1)]
    blocks = iter(list(zip(bounds[:-1], bounds[1:])))  # shared: next() is atomic

    def work():
        for start, stop in blocks:
            fn(start, stop)

    _run_on_pool([work] * n)

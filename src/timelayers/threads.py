"""Threads for large NumPy passes: a small pool, and the BLAS held to one
thread while the pool runs independent jobs.

NumPy's ufuncs release the GIL, so one large elementwise pass (the softmax over
``(N*T, V)`` scores, for example) can be cut into blocks of rows that several
threads work on at once. :func:`parallel_rows` does that for NumPy arrays on a
small pool of threads (the calling thread takes one block itself);
:func:`set_num_threads` / :func:`get_num_threads` set and read its size. The
default is the number of CPUs this process may use -- its CPU affinity, capped
by a container's CPU quota (:func:`cpu_limit`), at most 8 -- or the
``TIMELAYERS_NUM_THREADS`` environment variable. Matrix products are left to the
BLAS, which has its own threads (``OPENBLAS_NUM_THREADS`` or ``threadpoolctl``).

On a machine that is busy with something else, threads that wait for each
other lose: a matrix product split over two threads waits for the slower one,
and a thread whose core another process holds is the slower one. Unless the
count was fixed (``TIMELAYERS_NUM_THREADS``, :func:`set_num_threads`), the
trainers call :func:`adapt_to_load` at every step: at most once a second it
reads how many of this process's CPUs other processes kept busy
(``/proc/stat`` against this process's own CPU time) and sizes both the pool
and the BLAS to the CPUs left, at least one, at most the limit.

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

import math  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from .errors import OptionError  # noqa: E402  (it imports nothing: NumPy still unloaded)

__all__ = ["parallel_rows", "run_parallel", "can_run_parallel", "in_parallel_job", "even_blocks",
           "set_num_threads", "get_num_threads", "cpu_limit", "adapt_to_load"]


_MAX_DEFAULT_THREADS = 8
_BLOCKS_PER_THREAD = 4
_num_threads = None   # None: not decided yet (see _default_num_threads)
_fixed = False        # the count was set by the user: adapt_to_load leaves it
_pool = None          # ThreadPoolExecutor with _num_threads - 1 workers, made on first use
_pool_lock = threading.Lock()
_in_worker = threading.local()


NUM_THREADS_VARIABLE = "TIMELAYERS_NUM_THREADS"


def num_threads_from_environment():
    """``$TIMELAYERS_NUM_THREADS`` as a positive int, None when it is unset or empty.

    Raises
    ------
    OptionError
        For any other value (``0``, ``-1``, ``1.5``, ``abc``), naming the variable
        and what it accepts.
    """
    text = os.environ.get(NUM_THREADS_VARIABLE, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise OptionError(f"${NUM_THREADS_VARIABLE} expected a positive integer (1, 2, ...) or "
                          f"nothing, got {text[:40]!r}")
    return int(text)


def _default_num_threads() -> int:
    env = num_threads_from_environment()
    if env is not None:
        return env
    return min(cpu_limit(), _MAX_DEFAULT_THREADS)


def _allowed_cpus() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def cgroup_cpu_quota(root="/sys/fs/cgroup"):
    """The CPUs a container's CPU quota allows (a float: 1.5 is 150 ms of CPU
    time every 100 ms), or None without a quota. Reads cgroup v2's ``cpu.max``,
    else v1's ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``."""
    def read(*names):
        try:
            with open(os.path.join(root, *names)) as f:
                return f.read().split()
        except (OSError, ValueError):
            return None

    v2 = read("cpu.max")
    quota_period = (v2 if v2 and len(v2) == 2 else
                    [(read("cpu", n) or [""])[0] for n in ("cpu.cfs_quota_us", "cpu.cfs_period_us")])
    try:
        quota, period = (float(x) for x in quota_period)
    except ValueError:  # "max", missing files
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_limit() -> int:
    """The CPUs this process may use: its affinity, capped by a CPU quota
    rounded up (a container limited to 1 CPU gets 1), at least 1."""
    n = len(_allowed_cpus())
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def get_num_threads() -> int:
    """Threads that :func:`parallel_rows` uses, the caller's included."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (the caller's included) for large row-wise passes;
    1 turns the pool off; the count then stays fixed (:func:`adapt_to_load`
    leaves it). Does not change the BLAS's threads."""
    global _fixed
    if int(n) != n or n < 1:
        raise ValueError(f"set_num_threads: argument 'n' expected a positive integer, got {n!r}")
    _fixed = True
    _resize_pool(int(n))


def _resize_pool(n: int) -> None:
    global _num_threads, _pool
    with _pool_lock:
        if _pool is not None and n != _num_threads:
            _pool.shutdown(wait=True)
            _pool = None
        _num_threads = n


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


def in_parallel_job() -> bool:
    """True in a job of :func:`run_parallel` or a block of :func:`parallel_rows`,
    whether on a pool thread or in the calling thread: work started there runs
    in that thread alone, and the thread count stays as it is."""
    return getattr(_in_worker, "active", False)


def can_run_parallel() -> bool:
    """True when :func:`run_parallel` would use more than one thread: more than one
    thread is allowed, the caller is not a pool thread, and the BLAS's threads
    can be held to one (two jobs calling a multi-threaded BLAS at once would
    take turns)."""
    return get_num_threads() > 1 and not in_parallel_job() and bool(_blas_controllers())


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
    _in_worker.active = True  # the calling thread is one of the jobs' threads meanwhile
    try:
        results[0] = jobs[0]()
    except BaseException as exc:  # wait for the others before raising
        error = exc
    finally:
        _in_worker.active = False
    for k, f in enumerate(futures, start=1):
        exc = f.exception()
        if exc is None:
            results[k] = f.result()
        elif error is None:
            error = exc
    if error is not None:
        raise error
    return results


def even_blocks(N, n):
    """``n`` contiguous slices of ``range(N)`` whose sizes differ by at most one."""
    bounds = [N * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


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
    if n <= 1 or in_parallel_job():
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


# -- sharing the machine --------------------------------------------------------------------
ADAPT_INTERVAL = 1.0   # seconds between two readings of the machine's load
FIRST_ADAPT_INTERVAL = 0.25  # the first window, from the reading at import: a short
                             # training should not run its first second on a guess
_load_sample = None    # (wall time, busy seconds of the allowed CPUs, this process's CPU seconds)
_adapted = False       # a reading has been compared with the one before it
_blas_ceiling = None   # the BLAS's threads when first adapted: never raised above it


def _busy_seconds(cpus) -> float | None:
    """Seconds the CPUs ``cpus`` spent on anything but idling since boot
    (``/proc/stat``; None where it cannot be read)."""
    wanted = {f"cpu{c}" for c in cpus}
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
    except OSError:
        return None
    ticks = 0
    for fields in lines:
        if fields[0] in wanted:
            values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def threads_for_load(limit: int, others: float) -> int:
    """The threads to run when other processes keep ``others`` of this process's
    ``limit`` CPUs busy: the CPUs left, rounded to the nearest, between 1 and
    ``limit``."""
    return max(1, min(limit, int(limit - others + 0.5)))


def _sample_load(now: float):
    """(``now``, busy seconds of the allowed CPUs, this process's CPU seconds), or
    None where ``/proc/stat`` cannot be read."""
    busy = _busy_seconds(_allowed_cpus())
    return None if busy is None else (now, busy, _own_cpu_seconds())


def adapt_to_load(now: float | None = None) -> int:
    """Fit the pool's and the BLAS's threads to the CPUs other processes leave
    free, at most once every :data:`ADAPT_INTERVAL` seconds (the first time once
    :data:`FIRST_ADAPT_INTERVAL` has passed since the reading at import); returns the thread
    count. Does nothing when the count was fixed by ``TIMELAYERS_NUM_THREADS``
    or :func:`set_num_threads`, or where the load cannot be read."""
    global _load_sample, _blas_ceiling, _adapted
    if _fixed or os.environ.get("TIMELAYERS_NUM_THREADS", "").strip() or in_parallel_job():
        return get_num_threads()
    now = time.monotonic() if now is None else now
    interval = ADAPT_INTERVAL if _adapted else FIRST_ADAPT_INTERVAL
    if _load_sample is not None and now - _load_sample[0] < interval:
        return get_num_threads()
    sample, previous = _sample_load(now), _load_sample
    if sample is None:
        return get_num_threads()
    _load_sample = sample
    if previous is None:
        return get_num_threads()
    _adapted = True
    wall = sample[0] - previous[0]
    others = max(0.0, (sample[1] - previous[1]) - (sample[2] - previous[2])) / wall
    limit = min(cpu_limit(), _MAX_DEFAULT_THREADS)
    n = threads_for_load(limit, others)
    if n != get_num_threads():
        _resize_pool(n)
    libs = _blas_controllers()
    if libs:
        if _blas_ceiling is None:
            _blas_ceiling = max(1, max(lib.get_num_threads() or 1 for lib in libs))
        if _blas_depth == 0:
            for lib in libs:
                lib.set_num_threads(min(n, _blas_ceiling))
    return n


# The first reading is taken at import: a training's first step (after its data and
# model are ready) already compares with it, instead of running its first second
# with a thread count made for an idle machine.
_load_sample = _sample_load(time.monotonic())

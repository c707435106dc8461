"""Small timing helpers shared by the benchmark scripts (not part of the library)."""

import statistics
import time


def median_time(fn, repeat=7, warmup=2):
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_times(fns: dict, repeat=7, warmup=2, lead_in=0, gap=0.0) -> dict:
    """Per-call wall times of several functions run in turn (a, b, a, b, ...), so
    that machine noise hits them alike.

    Before each timed call the same function runs ``lead_in`` times untimed.
    The thread pools of NumPy's BLAS (OpenBLAS) and of torch (OpenMP) keep
    spinning for a while after their last job, so one library's idle threads
    would otherwise take the cores from the other's next call; with a lead-in,
    every timed call runs as it does in a training loop, right after a call of
    its own library. ``gap`` seconds of sleep before each timed call is the
    other way out (but a core left idle slows down, which lengthens short calls).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            for _ in range(lead_in):
                fn()
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def interleaved_medians(fns: dict, repeat=7, warmup=2):
    """Median times of :func:`interleaved_times`."""
    return {k: statistics.median(v) for k, v in interleaved_times(fns, repeat, warmup).items()}


def table(rows, headers):
    """Format rows as a Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)

"""Small timing helpers shared by the benchmark scripts (not part of the library)."""

import math
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


def median_interval(values, level=0.95):
    """A distribution-free confidence interval for the median of ``values`` (the
    order statistics whose ranks a binomial(n, 1/2) puts ``level`` between), or
    None when there are too few values for that level (fewer than 6 at 95%).
    Rounds of a noisy machine are not normal, but each round is as likely to fall
    above the true median as below it, which is all this interval assumes."""
    x = sorted(values)
    n = len(x)
    tail, k, below = (1 - level) / 2, 0, 0.0
    while True:  # the largest k with P(Binomial(n, 1/2) < k) <= tail
        below_next = below + math.comb(n, k) / 2 ** n
        if below_next > tail:
            break
        below, k = below_next, k + 1
    return None if k == 0 else (x[k - 1], x[n - k])


def table(rows, headers):
    """Format rows as a Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


class PartTimes:
    """The time each step spends in its parts -- every leaf layer's forward and
    backward (:meth:`wrap_model`) and whatever else is wrapped (:meth:`wrap`) --
    by wrapping them. Host seconds always; given CuPy's module, the GPU's too,
    from CUDA events recorded around each call and read only at :meth:`end`, so
    that the step does not wait inside (a part's GPU time then runs from the
    moment the GPU reaches its first event to its last: idle gaps between its
    kernels count, as they do in the step).

    ``steps`` holds one ``{part: (host seconds, GPU seconds or None)}`` per step
    between :meth:`begin` and :meth:`end`."""

    def __init__(self, cupy=None):
        self.cupy = cupy
        self.steps = []
        self._host, self._events = {}, []

    def wrap(self, fn, key):
        """``fn``, timed as part ``key`` (calls within one step add up)."""
        def timed(*args, **kwargs):
            if self.cupy is not None:
                start = self.cupy.cuda.Event()
                start.record()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self._host[key] = self._host.get(key, 0.0) + time.perf_counter() - t0
            if self.cupy is not None:
                stop = self.cupy.cuda.Event()
                stop.record()
                self._events.append((key, start, stop))
            return out
        return timed

    def wrap_model(self, model):
        """Wrap every leaf layer's ``forward`` and ``backward`` (``model.named_layers()``)."""
        for key, layer in model.named_layers():
            layer.forward = self.wrap(layer.forward, f"{key}.forward")
            layer.backward = self.wrap(layer.backward, f"{key}.backward")

    def begin(self):
        self._host, self._events = {}, []

    def end(self):
        gpu = {}
        for key, start, stop in self._events:
            stop.synchronize()
            gpu[key] = gpu.get(key, 0.0) + self.cupy.cuda.get_elapsed_time(start, stop) / 1e3
        self.steps.append({key: (host, gpu.get(key)) for key, host in self._host.items()})

    def medians(self, steps=None):
        """``{part: (median host seconds, median GPU seconds or None)}`` over ``steps``
        (default all), in the order of the first step."""
        steps = self.steps if steps is None else steps
        out = {}
        for key in steps[0]:
            host = [s[key][0] for s in steps if key in s]
            gpu = [s[key][1] for s in steps if key in s and s[key][1] is not None]
            out[key] = (statistics.median(host), statistics.median(gpu) if gpu else None)
        return out

"""``cupyx.profiler.benchmark`` of the stand-in: host times, and the same as the
device's (there is no device)."""

import time

import numpy as np


class _Result:
    def __init__(self, name, cpu_times):
        self.name = name
        self.cpu_times = np.asarray(cpu_times)
        self.gpu_times = self.cpu_times[None, :]


def benchmark(func, args=(), kwargs=None, n_repeat=10000, name=None, n_warmup=10,
              max_duration=np.inf, devices=None):
    kwargs = kwargs or {}
    for _ in range(n_warmup):
        func(*args, **kwargs)
    times = []
    for _ in range(n_repeat):
        start = time.perf_counter()
        func(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return _Result(name or getattr(func, "__name__", "func"), times)

"""What a recurrent layer's per-step product costs in NumPy's BLAS.

Usage::

    python benchmarks/bench_thin_products.py            # H = 650 (BetterRnnlm), 2 threads
    python benchmarks/bench_thin_products.py --H 256 --threads 1

Times ``(4H, H) @ (H, N)`` -- the LSTM's per-step ``Wh^T h^T`` -- for N = 1 to
64 rows. With N = 1 NumPy calls a matrix-vector product, which reads the weight
once; from N = 2 on, OpenBLAS's matrix product first copies the whole weight
into its packed layout, at every call. The time at N = 2 to 8 is then mostly
that copy, the rest grows with N at the product's rate. Also times a
transposed copy of ``Wh (H, 4H)`` as NumPy makes it and through rows padded by
64 bytes (``timelayers.layers.plans.lstm_fast.transposed_copy``), which matters when
a row is a multiple of 1 KiB. Medians over ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# NumPy's BLAS reads its thread count when it is loaded.
if __name__ == "__main__" and "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import timelayers  # noqa: E402,F401  (before NumPy: OpenBLAS's spin, see timelayers/__init__.py)
import numpy as np  # noqa: E402

from timelayers.layers.plans.lstm_fast import transposed_copy  # noqa: E402


def median_us(fn, repeats):
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--H", type=int, default=650)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: NumPy's)")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args(argv)
    H = args.H
    rng = np.random.default_rng(0)
    W_T = rng.standard_normal((4 * H, H)).astype(np.float32)
    print(f"(4H, H) @ (H, N) float32, H = {H} ({W_T.nbytes / 2 ** 20:.1f} MiB of weights), "
          f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"median of {args.repeats}")
    print(f"{'N':>4s} {'us':>8s} {'GFLOP/s':>8s}")
    for N in (1, 2, 4, 8, 16, 20, 32, 64):
        h = rng.standard_normal((H, N)).astype(np.float32)
        out = np.empty((4 * H, N), dtype=np.float32)
        us = median_us(lambda: np.matmul(W_T, h, out=out), args.repeats)
        print(f"{N:4d} {us:8.0f} {2 * 4 * H * H * N / us / 1e3:8.1f}")
    Wh = np.ascontiguousarray(W_T.T)  # (H, 4H)
    plain = median_us(lambda: np.ascontiguousarray(Wh.T), max(20, args.repeats // 10))
    padded = median_us(lambda: transposed_copy(Wh), max(20, args.repeats // 10))
    print(f"transposed copy of Wh ({H}, {4 * H}), rows of {Wh.strides[0]} bytes: "
          f"numpy {plain:.0f} us, through padded rows {padded:.0f} us")


if __name__ == "__main__":
    main()

"""Speed of TimeLSTM (forward + backward) against PyTorch's nn.LSTM on the CPU and
against a step-by-step reference that computes ``x_t @ Wx`` inside the time loop.

Usage::

    python benchmarks/bench_recurrent.py                 # N=20, T=35, D=H=650, float32
    python benchmarks/bench_recurrent.py --threads 1     # BLAS and torch on one thread
    python benchmarks/bench_recurrent.py --repeats 9 --H 200

The issue's targets: ``ours / torch <= 1.0`` and ``step-by-step / ours >= 2``.
torch also runs with oneDNN off (``torch.backends.mkldnn.flags``): its LSTM then
makes one BLAS product per step, as ours does, instead of oneDNN's RNN
primitive (weights packed once per sequence, fused gate kernels).
Every implementation runs the same inputs; the timings are interleaved (one call
of each per round), and the ratios are printed from the median and from the
best of ``--repeats`` rounds after ``--warmup`` rounds (on a shared machine the
best is the steadier estimate; a note is printed when the spread shows that the
machine was busy). PyTorch is given as many threads as NumPy's BLAS uses. The
default run takes about 15 seconds."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

# NumPy's BLAS reads its thread count when it is loaded: --threads must be applied
# before numpy is imported.
if __name__ == "__main__" and "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

# timelayers before NumPy, as its users get it (see timelayers/__init__.py).
import timelayers  # noqa: E402
import numpy as np  # noqa: E402

from timelayers.layers.recurrent import TimeLSTM  # noqa: E402


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (threadpoolctl when installed, else the usual
    environment variables, else the CPU count)."""
    try:
        from threadpoolctl import threadpool_info

        n = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if n:
            return int(n[0])
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


class StepwiseLSTM:
    """The baseline: the book's loop of per-step cells, with ``x_t @ Wx`` and all
    gradient products (``dWx``, ``dWh``, ``db``, ``dx_t``) done step by step."""

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        h = np.zeros((N, H), dtype=Wx.dtype)
        c = np.zeros((N, H), dtype=Wx.dtype)
        hs = np.empty((N, T, H), dtype=Wx.dtype)
        self.cache = []
        for t in range(T):
            x = xs[:, t]
            A = x @ Wx + h @ Wh + b
            f, g, i, o = (_sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H]),
                          _sigmoid(A[:, 2 * H:3 * H]), _sigmoid(A[:, 3 * H:]))
            c_next = f * c + g * i
            tc = np.tanh(c_next)
            h_next = o * tc
            self.cache.append((x, h, c, f, g, i, o, tc))
            hs[:, t] = h_next
            h, c = h_next, c_next
        return hs

    def backward(self, dhs):
        Wx, Wh, _ = self.params
        N, T, H = dhs.shape
        for g in self.grads:
            g[...] = 0
        dxs = np.empty((N, T, Wx.shape[0]), dtype=Wx.dtype)
        dh = np.zeros((N, H), dtype=Wx.dtype)
        dc = np.zeros((N, H), dtype=Wx.dtype)
        for t in reversed(range(T)):
            x, h_prev, c_prev, f, g, i, o, tc = self.cache[t]
            dh_t = dhs[:, t] + dh
            ds = dc + dh_t * o * (1 - tc * tc)
            dA = np.concatenate([ds * c_prev * f * (1 - f), ds * i * (1 - g * g),
                                 ds * g * i * (1 - i), dh_t * tc * o * (1 - o)], axis=1)
            self.grads[0] += x.T @ dA
            self.grads[1] += h_prev.T @ dA
            self.grads[2] += dA.sum(axis=0)
            dxs[:, t] = dA @ Wx.T
            dh = dA @ Wh.T
            dc = ds * f
        return dxs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=20)
    ap.add_argument("--T", type=int, default=35)
    ap.add_argument("--D", type=int, default=650)
    ap.add_argument("--H", type=int, default=650)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS, timelayers and torch threads (default: what NumPy's BLAS uses)")
    ap.add_argument("--no-stepwise", action="store_true", help="skip the slow baseline")
    args = ap.parse_args(argv)

    N, T, D, H, dtype = args.N, args.T, args.D, args.H, np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    s = 1 / np.sqrt(H)
    Wx = (rng.standard_normal((D, 4 * H)) * s).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) * s).astype(dtype)
    b = np.zeros(4 * H, dtype=dtype)
    xs = rng.standard_normal((N, T, D)).astype(dtype)
    dhs = rng.standard_normal((N, T, H)).astype(dtype)
    threads = blas_threads() if args.threads is None else args.threads
    timelayers.threads.set_num_threads(threads)

    impls = {}
    ours = TimeLSTM(Wx, Wh, b)

    def run_ours():
        ours.forward(xs)
        ours.backward(dhs)

    impls["timelayers TimeLSTM"] = run_ours

    if not args.no_stepwise:
        step = StepwiseLSTM(Wx, Wh, b)

        def run_step():
            step.forward(xs)
            step.backward(dhs)

        impls["step-by-step x@Wx (baseline)"] = run_step

    torch_version = None
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch_version = torch.__version__
        torch.set_num_threads(threads)
        tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype.type]
        m = torch.nn.LSTM(D, H, batch_first=True, dtype=tdtype)
        tx = torch.tensor(xs, requires_grad=True)
        tdhs = torch.tensor(dhs)

        def run_torch():
            for p in m.parameters():
                p.grad = None
            tx.grad = None
            out, _ = m(tx)
            out.backward(tdhs)

        impls["torch nn.LSTM"] = run_torch

        def run_torch_native():  # its own per-step products and gate kernels
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a TF32 notice about Intel GPUs
                with torch.backends.mkldnn.flags(enabled=False):
                    run_torch()

        impls["torch nn.LSTM, oneDNN off"] = run_torch_native

    for fn in impls.values():  # warm-up
        for _ in range(args.warmup):
            fn()
    times = {k: [] for k in impls}
    for _ in range(args.repeats):  # interleaved rounds: load changes hit every implementation
        for k, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}

    print(f"TimeLSTM forward+backward, N={N} T={T} D={D} H={H} {dtype}, "
          f"median of {args.repeats} after {args.warmup} warm-up")
    print(f"numpy {np.__version__}, torch {torch_version}, BLAS/torch threads {threads}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'implementation':32s} {'median ms':>10s} {'min ms':>8s}")
    for k in impls:
        print(f"{k:32s} {med[k] * 1e3:10.1f} {min(times[k]) * 1e3:8.1f}")
    best = {k: min(v) for k, v in times.items()}
    ours = "timelayers TimeLSTM"
    for label, stat in (("median", med), ("min", best)):
        if "torch nn.LSTM" in stat:
            r = stat[ours] / stat["torch nn.LSTM"]
            print(f"ratio ours / torch        ({label:6s}) = {r:.2f}  "
                  f"(target <= 1.0: {'ok' if r <= 1.0 else 'MISSED'})")
        if "torch nn.LSTM, oneDNN off" in stat:
            r = stat[ours] / stat["torch nn.LSTM, oneDNN off"]
            print(f"ratio ours / torch, oneDNN off ({label:6s}) = {r:.2f}")
        if "step-by-step x@Wx (baseline)" in stat:
            r = stat["step-by-step x@Wx (baseline)"] / stat[ours]
            print(f"speed-up vs step-by-step  ({label:6s}) = {r:.2f}x (target >= 2: "
                  f"{'ok' if r >= 2 else 'MISSED'})")
    spread = max(med[k] / best[k] for k in med)
    if spread > 1.25:
        print(f"note: median/min up to {spread:.2f}: the machine was busy during this run "
              "(the timings, and the ratios, are unreliable; run again)")
    return med


if __name__ == "__main__":
    main()

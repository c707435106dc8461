"""Training steps on a GPU: timelayers (CuPy) against the same models in PyTorch
(cuDNN; ``timelayers.export.to_torch``) and, when its path is given, the book's
own code (CuPy), interleaved in one run.

Usage::

    python benchmarks/bench_gpu.py                         # the five cases below
    python benchmarks/bench_gpu.py --book-code ~/deep-learning-from-scratch-2
    python benchmarks/bench_gpu.py --cases better-128 --profile --parts 10
    python benchmarks/bench_gpu.py --device cpu --quick --cases rnnlm-20   # the harness on a CPU

A step is the one of ``benchmarks/bench_models.py`` (forward, backward, clip,
update; the same random batches, the torch modules made by ``to_torch`` from our
weights), followed by a device synchronisation, so that each timed step is the
GPU's work and not only its launch. The steps of the libraries run in turn
(ours, torch, book, ours, ...), each timed one right after ``--lead-in`` untimed
ones of its own; the table gives the medians over ``--repeats`` rounds after
``--warmup``, in ms per step, and the ratios.

==============  =====================================================================
rnnlm-20        Rnnlm (V 10000, D = H = 100), batch 20, T 35, SGD(20), clip 0.25
rnnlm-128       the same, batch 128
better-20       BetterRnnlm (V 10000, D = H = 650, 2 layers, dropout 0.5, tied), batch 20
better-128      the same, batch 128
attention-128   AttentionSeq2seq on dates (D 16, H 256), batch 128, Adam(1e-3), clip 5
==============  =====================================================================

``--profile`` adds, for our step, the host time and the GPU time of
``cupyx.profiler.benchmark``: a host time as long as the GPU time means the
host waits on the device (a host read) or launches kernels as fast as the GPU
runs them. ``--parts STEPS`` then splits our step into its parts, every layer's
forward and backward, the clipping and the update, with the host time of each
and its GPU time from CUDA events around it (``_timing.PartTimes``), medians
over STEPS steps: where the step's time goes, part by part.

The book's code: ``--book-code PATH`` is the root of the book's repository
(``common/``, ``ch06/``, ``ch08/``); its ``common.config.GPU`` is set before its
modules load, as its GPU scripts do. Its models start from their own random
weights (only the time is compared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import timelayers as tl  # noqa: F401  (before NumPy, see bench_models.py)
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import PartTimes, interleaved_times, table  # noqa: E402
from bench_models import AttentionCase, BetterRnnlmCase, RnnlmCase  # noqa: E402

CASES = {
    "rnnlm-20": (RnnlmCase, 20),
    "rnnlm-128": (RnnlmCase, 128),
    "better-20": (BetterRnnlmCase, 20),
    "better-128": (BetterRnnlmCase, 128),
    "attention-128": (AttentionCase, 128),
}


class Device:
    """Moving arrays and torch modules to the benchmark's device, and waiting for it."""

    def __init__(self, name, torch):
        self.name, self.torch = name, torch
        if name == "gpu":
            import cupy

            self.cupy = cupy
            props = cupy.cuda.runtime.getDeviceProperties(0)
            self.description = (f"{props['name'].decode()} ({props['totalGlobalMem'] / 2**30:.0f} "
                                f"GiB), CuPy {cupy.__version__}, CUDA runtime "
                                f"{cupy.cuda.runtime.runtimeGetVersion()}")
        else:
            self.description = "CPU"

    def array(self, a):
        return self.cupy.asarray(a) if self.name == "gpu" else a

    def tensor(self, t):
        return t.cuda() if self.name == "gpu" else t

    def synchronized(self, step):
        """``step`` followed by waiting for the device (CuPy's and torch's work)."""
        if self.name != "gpu":
            return step
        cupy, torch = self.cupy, self.torch

        def run():
            step()
            cupy.cuda.Device().synchronize()
            if torch is not None:
                torch.cuda.synchronize()

        return run


def make_case(name, device, torch):
    """The case of ``bench_models`` at this batch size, on ``device``."""
    base, N = CASES[name]
    case = type(base.__name__, (base,), {"N": N})(torch)   # built and checked on the CPU
    if device.name == "gpu":
        case.model.to_gpu()
        case.batches = [tuple(device.array(a) for a in b) for b in case.batches]
        if torch is not None:
            case.twin.cuda()
            case.topt = case.make_torch_optimizer()         # on the moved parameters
            case.tbatches = [tuple(device.tensor(t) for t in b) for b in case.tbatches]
    return case


# ----------------------------------------------------------------------------- the book

class BookStep:
    """One training step of the book's own model for a case (its code on CuPy)."""

    def __init__(self, path, case):
        import importlib

        root = os.path.abspath(os.path.expanduser(path))
        for sub in ("", "ch06", "ch08"):
            sys.path.insert(0, os.path.join(root, sub))
        config = importlib.import_module("common.config")
        config.GPU = True
        optimizer = importlib.import_module("common.optimizer")
        self.clip_grads = importlib.import_module("common.util").clip_grads
        if isinstance(case, BetterRnnlmCase):
            model_cls = importlib.import_module("better_rnnlm").BetterRnnlm
            self.model = model_cls(case.V, case.D, case.H, 0.5)
            self.optimizer = optimizer.SGD(lr=20.0)
        elif isinstance(case, RnnlmCase):
            self.model = importlib.import_module("rnnlm").Rnnlm(case.V, case.D, case.H)
            self.optimizer = optimizer.SGD(lr=20.0)
        else:
            model_cls = importlib.import_module("attention_seq2seq").AttentionSeq2seq
            self.model = model_cls(case.V, case.D, case.H)
            self.optimizer = optimizer.Adam(lr=1e-3)
        self.max_grad = case.max_grad
        self.batches = case.batches
        self.i = 0

    def __call__(self):
        xs, ts = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = self.model.forward(xs, ts)
        self.model.backward()
        self.clip_grads(self.model.grads, self.max_grad)
        self.optimizer.update(self.model.params, self.model.grads)
        return loss


def part_ms(case, device, steps):
    """Our step of ``case`` split into its parts (every layer's forward and
    backward, the clipping, the update): ``{part: [host ms, GPU ms or None]}``,
    medians over ``steps`` steps after one more, and the step's own."""
    import bench_models

    timer = PartTimes(device.cupy if device.name == "gpu" else None)
    timer.wrap_model(case.model)
    update, clip = case.optimizer.update, bench_models.clip_grads
    case.optimizer.update = timer.wrap(update, "update")
    bench_models.clip_grads = timer.wrap(clip, "clip_grads")
    step = timer.wrap(device.synchronized(case.step_ours), "(the whole step)")
    try:
        for _ in range(steps):
            timer.begin()
            step()
            timer.end()
    finally:
        case.optimizer.update, bench_models.clip_grads = update, clip
    return {key: [host * 1e3, None if gpu is None else gpu * 1e3]
            for key, (host, gpu) in timer.medians(timer.steps[1:]).items()}


def host_and_gpu_ms(step, n_repeat=20):
    """Median host and GPU milliseconds of ``step`` (``cupyx.profiler.benchmark``)."""
    from cupyx.profiler import benchmark

    result = benchmark(step, n_repeat=n_repeat, n_warmup=3)
    return (float(np.median(result.cpu_times)) * 1e3,
            float(np.median(result.gpu_times[0])) * 1e3)


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    ap.add_argument("--book-code", metavar="PATH", help="root of the book's repository")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--lead-in", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="--warmup 1 --repeats 3")
    ap.add_argument("--no-torch", action="store_true", help="time ours (and the book's) only")
    ap.add_argument("--profile", action="store_true",
                    help="host and GPU time of our step (cupyx.profiler.benchmark)")
    ap.add_argument("--parts", type=int, default=0, metavar="STEPS",
                    help="also time our step's parts (each layer's forward and backward, the "
                         "clipping, the update: host ms and GPU ms from CUDA events) over STEPS "
                         "steps after the timing")
    ap.add_argument("--json", metavar="PATH", help="write the results there as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 3
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")

    torch = None
    if not args.no_torch:
        import torch
    device = Device(args.device, torch)
    print(f"device: {device.description}; numpy {np.__version__}, timelayers {tl.__version__}, "
          f"torch {torch.__version__ if torch else '-'}"
          + (f" (cuDNN {torch.backends.cudnn.version()})" if torch and args.device == "gpu"
             else ""))
    print(f"median of {args.repeats} interleaved synchronized steps after {args.warmup} warm-up, "
          f"each after {args.lead_in} untimed step(s) of its own; ms per step")

    rows, results = [], {"device": device.description}
    for name in names:
        case = make_case(name, device, torch)
        fns = {"ours": device.synchronized(case.step_ours)}
        if torch is not None:
            fns["torch"] = device.synchronized(case.step_torch)
        if args.book_code:
            fns["book"] = device.synchronized(BookStep(args.book_code, case))
        times = interleaved_times(fns, args.repeats, args.warmup, args.lead_in)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        r = {f"{k}_ms": v for k, v in med.items()}
        row = [name, f"{med['ours']:.2f}", f"{med['torch']:.2f}" if "torch" in med else "-",
               f"{med['book']:.2f}" if "book" in med else "-"]
        if "torch" in med:
            r["ours_over_torch"] = med["ours"] / med["torch"]
        if "book" in med:
            r["ours_over_book"] = med["ours"] / med["book"]
        row += [f"{r['ours_over_torch']:.2f}" if "torch" in med else "-",
                f"{r['ours_over_book']:.2f}" if "book" in med else "-"]
        if args.profile and args.device == "gpu":
            r["host_ms"], r["gpu_ms"] = host_and_gpu_ms(case.step_ours)
            row += [f"{r['host_ms']:.2f}", f"{r['gpu_ms']:.2f}"]
        rows.append(row)
        results[name] = r
        if args.parts:
            r["parts_ms"] = part_ms(case, device, args.parts + 1)
            print(table([[f"{name} {key}", f"{host:.3f}", "-" if gpu is None else f"{gpu:.3f}"]
                         for key, (host, gpu) in r["parts_ms"].items()],
                        ["part", "host ms", "GPU ms"]), flush=True)
        del case
        print("  " + "  ".join(row), flush=True)   # each case as it ends (a timeout keeps them)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
    headers = ["case", "timelayers", "PyTorch", "book", "ours / torch", "ours / book"]
    if args.profile and args.device == "gpu":
        headers += ["ours host ms", "ours GPU ms"]
    print(table(rows, headers))
    return results


if __name__ == "__main__":
    main()

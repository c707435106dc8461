"""How many operations our training step asks of a GPU, counted without one.

On a GPU our step is bound by its launches, not its arithmetic (issue 14): CuPy
pays some microseconds of host time for each operation it launches. This script
counts them, for the five cases of ``bench_gpu.py``, on the CuPy stand-in of
``tests/cupy_standin`` (NumPy underneath; it counts every operation CuPy would
run as a kernel, a cuBLAS call or a copy, and leaves out views and ``empty``):
the total a step, where in the step they are (every leaf layer's forward and
backward, the clipping, the update), and of what kind. The counts do not depend
on the machine; they tell where launches can still be saved, and how many a
change saves, between the runs on a real GPU that time them.

Usage::

    python benchmarks/count_gpu_operations.py [--cases better-20,rnnlm-20] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cupy_standin"))  # before any cupy import
sys.path.insert(0, HERE)

import cupy  # noqa: E402  (the stand-in)
import timelayers as tl  # noqa: E402,F401

import bench_models  # noqa: E402
from _timing import table  # noqa: E402
from bench_gpu import CASES, Device, make_case  # noqa: E402


def counted(fn, key, parts):
    """``fn``, with the operations it asks for added to ``parts[key]``."""
    def call(*args, **kwargs):
        before = sum(cupy.operations.values())
        out = fn(*args, **kwargs)
        parts[key] += sum(cupy.operations.values()) - before
        return out
    return call


def count_case(name):
    """``(total, {part: count}, {kind: count})`` of one training step of ``name``
    (after two, which allocate the optimizer's state)."""
    case = make_case(name, Device("gpu", None), None)
    for _ in range(2):
        case.step_ours()
    parts = collections.Counter()
    for key, layer in case.model.named_layers():
        layer.forward = counted(layer.forward, f"{key}.forward", parts)
        layer.backward = counted(layer.backward, f"{key}.backward", parts)
    update, clip = case.optimizer.update, bench_models.clip_grads
    case.optimizer.update = counted(update, "update", parts)
    bench_models.clip_grads = counted(clip, "clip_grads", parts)
    try:
        cupy.operations.clear()
        case.step_ours()
    finally:
        case.optimizer.update, bench_models.clip_grads = update, clip
    kinds = collections.Counter(cupy.operations)
    return sum(kinds.values()), parts, kinds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json", metavar="PATH", help="write the counts there")
    args = ap.parse_args(argv)
    results = {}
    for name in args.cases.split(","):
        total, parts, kinds = count_case(name)
        results[name] = {"total": total, "parts": dict(parts), "kinds": dict(kinds)}
        print(f"\n{name}: {total} operations a step")
        print(table([(k, v) for k, v in parts.items()], ["part", "operations"]))
        print(table(kinds.most_common(12), ["kind", "operations"]))
    print("\n" + table([(n, r["total"]) for n, r in results.items()], ["case", "operations a step"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Can CuPy capture our training step as a CUDA graph? (issue 14, goal 5)

On a GPU, with BetterRnnlm at the book's sizes (``bench_models``' case, batch 20):

1. **The whole step** (forward, backward, clip, SGD update) under stream
   capture: whether CuPy takes it, and the exception when it does not. CuPy
   14 refuses every cuBLAS call while a stream captures (its cuBLAS wrappers
   raise ``NotImplementedError`` when ``cudaStreamIsCapturing``; CuPy's own
   test ``test_stream_capture_failure_cublas`` asserts it), and every layer
   with weights makes a product, so we expect a refusal naming cuBLAS.
2. **The part of the step without cuBLAS**, the SGD update of every parameter,
   captured alone: whether a replay gives the eager update's parameters bit
   for bit, and the milliseconds of one update eager and replayed (CUDA
   events, median of ``--repeats`` runs of 20 updates).

Usage (on the GPU machine, after ``pip install -e .``)::

    python benchmarks/probe_cuda_graph.py [--json probe_cuda_graph.json]
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
from bench_gpu import Device, make_case  # noqa: E402


def one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def capture(cupy, stream, fn):
    """``fn()`` captured on ``stream``: the graph. Raises what ``fn`` or the
    capture raised, with the stream out of capture mode."""
    with stream:
        stream.begin_capture()
        try:
            fn()
        except BaseException:
            try:
                stream.end_capture()
            except cupy.cuda.runtime.CUDARuntimeError:
                pass  # the capture was invalidated by the error itself
            raise
        return stream.end_capture()


def ms_per_call(cupy, stream, fn, calls=20, repeats=15):
    """Median milliseconds of one ``fn()`` on ``stream``, from CUDA events
    around ``calls`` calls, over ``repeats`` runs after one."""
    times = []
    with stream:
        for _ in range(repeats + 1):
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record(stream)
            for _ in range(calls):
                fn()
            end.record(stream)
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end) / calls)
    return statistics.median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="write the results there")
    args = parser.parse_args(argv)
    if not tl.backend.cupy_available():
        print("probe_cuda_graph: needs CuPy and a GPU; none here", file=sys.stderr)
        return 2
    import cupy

    device = Device("gpu", None)
    case = make_case("better-20", device, None)
    for _ in range(3):                      # compiles the kernels, allocates the state
        case.step_ours()
    cupy.cuda.Device().synchronize()
    result = {"device": device.description, "case": "BetterRnnlm, batch 20"}

    stream = cupy.cuda.Stream(non_blocking=True)
    try:
        capture(cupy, stream, case.step_ours)
        result["whole_step"] = "captured"
    except Exception as error:  # what CuPy or CUDA raised: the finding
        result["whole_step"] = f"refused: {one_line(error)}"
        from timelayers import _checks

        _checks._pending.clear()  # id checks queued inside the capture never ran: not to be read
    print("whole step:", result["whole_step"])

    model, optimizer = case.model, case.optimizer
    update = lambda: optimizer.update(model.params, model.grads)  # noqa: E731
    start = [p.copy() for p in model.params]
    update_stream = cupy.cuda.Stream(non_blocking=True)
    try:
        graph = capture(cupy, update_stream, update)
    except Exception as error:
        result["update"] = f"refused: {one_line(error)}"
        print("SGD update:", result["update"])
    else:
        for p, p0 in zip(model.params, start):  # capture ran nothing: start again
            p[...] = p0
        for _ in range(3):
            update()
        eager = [p.copy() for p in model.params]
        for p, p0 in zip(model.params, start):
            p[...] = p0
        with update_stream:
            for _ in range(3):
                graph.launch(update_stream)
        update_stream.synchronize()
        same = all(bool((p == e).all()) for p, e in zip(model.params, eager))
        eager_ms = ms_per_call(cupy, cupy.cuda.Stream.null, update, repeats=args.repeats)
        graph_ms = ms_per_call(cupy, update_stream, lambda: graph.launch(update_stream),
                               repeats=args.repeats)
        result["update"] = {"captured": True, "replay_equals_eager_bitwise": same,
                            "eager_ms": eager_ms, "graph_ms": graph_ms,
                            "parameters": len(model.params)}
        print(f"SGD update of {len(model.params)} parameters: replay equals eager bit for bit: "
              f"{same}; eager {eager_ms:.3f} ms, graph {graph_ms:.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

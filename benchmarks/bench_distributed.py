"""Data-parallel training over MPI: tokens per second of Rnnlm and BetterRnnlm at
1, 2, ... processes, with a fixed batch per process, and the time spent in the
gradient reduction.

Usage::

    python benchmarks/bench_distributed.py                  # 1 and 2 processes
    python benchmarks/bench_distributed.py --ranks 1,2,4,8  # a machine with >= 8 cores
    python benchmarks/bench_distributed.py --quick          # small models, few steps
    python benchmarks/bench_distributed.py --repeats 5      # 5 interleaved rounds, medians

For each model and process count K the script starts ``mpiexec -n K`` on itself
(one BLAS thread a process: OMP/OPENBLAS/MKL_NUM_THREADS=1). Every process trains
on ``--batch`` rows of its own (the global batch is ``K * batch``) with
``RnnlmTrainer.train_step`` (forward, backward, the reduction, clipping, SGD);
1 process runs the plain model, K > 1 the :class:`timelayers.distributed.DataParallel`
one. After ``--warmup`` steps, ``--steps`` steps are timed between two barriers
(the slowest process's time counts). Reported: tokens per second (global batch x
T x steps / time), the speed-up over 1 process, milliseconds per step, and the
milliseconds per step spent in the reduction (weighting the rank's share, the
``Allreduce`` over the flat buffer that holds the gradients; nothing is copied,
see ``distributed.flat_buffers.flatten_grads``), measured on rank 0. With ``--repeats R``
the process counts take turns R times (1, 2, 1, 2, ...) and each figure is the
median of its R runs, so that a busy moment of a shared machine does not decide
a speed-up. With ``--ceiling``, each K > 1 is also run as K independent
one-process runs started together (no MPI, no reduction; their timed steps start
together, after a barrier of files): their summed tokens per
second are what K processes get from the machine's cores, caches and memory
alone, the ceiling of the data-parallel speed-up there.

Cases: Rnnlm V=10000, D=H=100; BetterRnnlm V=10000, D=H=650, 2 LSTM layers,
dropout 0.5, tied; T=35, 20 rows a process, SGD(lr=20), clip 0.25 (the book's).
``--quick``: V=2000, D=H=200 for BetterRnnlm, T=20, 10 rows, 5 timed steps.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import table  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def sizes(quick):
    if quick:
        return dict(vocab=2000, hidden={"rnnlm": 100, "better": 200}, time=20, batch=10,
                    steps=5, warmup=1)
    return dict(vocab=10000, hidden={"rnnlm": 100, "better": 650}, time=35, batch=20, steps=10,
                warmup=2)


def worker(args):
    """One process of a run: train, time, and (rank 0) print a JSON line."""
    from timelayers import models, optim
    from timelayers.distributed import mpi_world, parallelize
    from timelayers.training import RnnlmTrainer

    s = sizes(args.quick)
    comm = mpi_world()
    ranks = 1 if comm is None else comm.Get_size()
    V, H, T, N = s["vocab"], s["hidden"][args.worker], s["time"], s["batch"] * ranks
    if args.worker == "rnnlm":
        model = models.Rnnlm(V, H, H, rng=0)
    else:
        model = models.BetterRnnlm(V, H, H, dropout_ratio=0.5, rng=0)
    trainer = RnnlmTrainer(model, optim.SGD(lr=20.0), max_grad=0.25, progress=False)
    wrapper = parallelize(trainer, comm, seed=0) if comm is not None else None
    rng = np.random.default_rng(1)
    batches = [(rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)))
               for _ in range(s["warmup"] + s["steps"])]
    trainer.model.train()
    for xs, ts in batches[:s["warmup"]]:
        trainer.train_step(xs, ts, 0.25)
    if comm is not None:
        comm.Barrier()
    else:
        wait_for_the_others()
    reduce_before = wrapper.reduce_seconds if wrapper else 0.0
    start = time.perf_counter()
    for xs, ts in batches[s["warmup"]:]:
        trainer.train_step(xs, ts, 0.25)
    seconds = time.perf_counter() - start
    reduce_seconds = (wrapper.reduce_seconds - reduce_before) if wrapper else 0.0
    if comm is not None:
        from mpi4py import MPI

        seconds = comm.allreduce(seconds, op=MPI.MAX)
        if comm.Get_rank() != 0:
            return
    steps = s["steps"]
    print(json.dumps({"model": args.worker, "ranks": ranks, "global_batch": N,
                      "tokens_per_s": N * T * steps / seconds,
                      "ms_per_step": 1e3 * seconds / steps,
                      "reduce_ms_per_step": 1e3 * reduce_seconds / steps}))


def wait_for_the_others():
    """An independent run's barrier (no MPI there): mark this process ready in
    the folder $BENCH_BARRIER and wait until $BENCH_BARRIER_COUNT are, so that
    the timed steps of the independent runs overlap as an MPI run's do."""
    folder, count = os.environ.get("BENCH_BARRIER"), int(os.environ.get("BENCH_BARRIER_COUNT", 1))
    if not folder:
        return
    Path(folder, str(os.getpid())).touch()
    while len(os.listdir(folder)) < count:
        time.sleep(0.001)


def launch(model, ranks, quick, independent=False):
    """Run ``ranks`` processes of the worker (under ``mpiexec``, or with
    ``independent`` as that many one-process runs at once) and return the JSON
    line of rank 0 (or of the independent runs together)."""
    command = [sys.executable, __file__, "--worker", model] + (["--quick"] if quick else [])
    if ranks > 1 and not independent:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks)] + command
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "MV2_", "HYDRA_"))}
    barrier = tempfile.TemporaryDirectory()
    if independent:
        env.update(BENCH_BARRIER=barrier.name, BENCH_BARRIER_COUNT=str(ranks))
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env, **ONE_THREAD})
            for _ in range(ranks if independent else 1)]
    results = []
    with barrier:
        outputs = [run.communicate() for run in runs]
    for run, (out, err) in zip(runs, outputs):
        if run.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    if not independent:
        return results[0]
    return {"global_batch": sum(r["global_batch"] for r in results),
            "tokens_per_s": sum(r["tokens_per_s"] for r in results),
            "ms_per_step": max(r["ms_per_step"] for r in results), "reduce_ms_per_step": 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", default="1,2", help="process counts (default 1,2)")
    parser.add_argument("--models", default="rnnlm,better")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved rounds; medians are reported (default 1)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also run each K > 1 as K independent one-process runs at once")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    counts = [int(r) for r in args.ranks.split(",")]
    cases = [(k, False) for k in counts] + [(k, True) for k in counts if k > 1 and args.ceiling]
    rows = []
    for model in args.models.split(","):
        runs = {case: [] for case in cases}
        for _ in range(args.repeats):
            for ranks, independent in cases:
                runs[ranks, independent].append(launch(model, ranks, args.quick, independent))
        base = None
        for case in cases:
            median = {key: float(np.median([r[key] for r in runs[case]]))
                      for key in ("tokens_per_s", "ms_per_step", "reduce_ms_per_step")}
            base = base or median["tokens_per_s"]
            ranks, independent = case
            rows.append([model, f"{ranks} independent" if independent else ranks,
                         runs[case][0]["global_batch"],
                         f"{median['tokens_per_s']:.0f}",
                         f"{median['tokens_per_s'] / base:.2f}x", f"{median['ms_per_step']:.1f}",
                         f"{median['reduce_ms_per_step']:.1f}"])
    print(table(rows, ["model", "processes", "global batch", "tokens/s", "speed-up",
                       "ms/step", "reduction ms/step"]))


if __name__ == "__main__":
    main()

"""Training steps on a machine that is busy with something else.

Usage::

    python benchmarks/bench_contention.py                  # every case, ~10 s a measurement
    python benchmarks/bench_contention.py --quick          # fewer cases, shorter
    python benchmarks/bench_contention.py --cases attention --seconds 20

Each measurement runs in processes of its own, so that the thread settings are
those a user gets from the environment, for:

==============  ==========================================================================
variant         what runs
==============  ==========================================================================
ours            timelayers with its defaults: threads fitted to the free CPUs
                (``timelayers.threads.adapt_to_load``, as ``Trainer.train_step`` calls it)
ours-static     the previous default: as many threads as CPUs, whatever the load
                (``TIMELAYERS_NUM_THREADS`` = the CPU count)
ours-1          one thread: ``TIMELAYERS_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``
torch           the PyTorch twin (``bench_models.py``) with PyTorch's default threads
ours-spin28     (only when asked for, ``--variants``) ours with OpenBLAS's own idle spin,
                ``OPENBLAS_THREAD_TIMEOUT=28`` (2**28 cycles), instead of the 22 that
                ``import timelayers`` sets
==============  ==========================================================================

under three conditions:

- ``quiet``: nothing else running;
- ``numpy-job``: beside one other NumPy process multiplying 1024 x 1024 float32
  matrices in a loop with its BLAS's default threads (the competing job);
- ``two-runs``: two processes of the same variant started together (the
  figure is their steps per second added up).

A worker times training steps (forward, backward, clip, update; the cases and
sizes of ``bench_models.py``) for ``--seconds`` after a warm-up and reports its
median step and its steps per second. Reported per case: the median step of
every variant under every condition, and the ratios the goals are stated in:
``ours / ours-1`` under the competing job (at most 1.1: the default never loses
to the simplest setting), ``two-runs / quiet`` in steps per second for ours (at
least 1.0: two runs started together train at least as much as one alone).

``--rounds R`` measures every variant R times under each condition, taking turns
(ours, ours-1, ours, ours-1, ... beside the same kind of job), and reports the
median of the R medians with, for ``ours / ours-1``, the range of the per-round
ratios: a machine whose speed drifts over minutes then shows as a wide range
instead of a wrong ratio. ``--conditions`` limits the conditions run.

The ``cli`` case times ``timelayers train transformer-seq2seq`` on generated
dates for ``--cli-iters`` iterations (``--max-iters``), as a user would run it,
whole process included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STEP_CASES = ("rnnlm", "better", "attention", "transformer")
VARIANTS = ("ours", "ours-static", "ours-1", "torch", "ours-spin28")
CONDITIONS = ("quiet", "numpy-job", "two-runs")


def variant_env(variant: str) -> dict:
    env = dict(os.environ)
    for var in ("TIMELAYERS_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env.pop(var, None)
    if variant == "ours-static":
        env["TIMELAYERS_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))
    elif variant == "ours-spin28":
        env["OPENBLAS_THREAD_TIMEOUT"] = "28"
    elif variant == "ours-1":
        env["TIMELAYERS_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    return env


# ----------------------------------------------------------------------------- processes

def compete() -> None:
    """The competing job: NumPy matrix products in a loop, default BLAS threads."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    while True:
        a = a @ a
        a /= np.abs(a).max()


def worker(case: str, library: str, seconds: float) -> None:
    """Time ``case``'s training steps for ``seconds``; print one JSON line."""
    import timelayers as tl  # before NumPy, as users get it
    sys.path.insert(0, HERE)
    import bench_models

    torch = None
    if library == "torch":
        import torch
    c = bench_models.CASE_CLASSES[case](torch)
    if library == "torch":
        step = c.step_torch
    else:
        def step():
            tl.threads.adapt_to_load()
            return c.step_ours()
    for _ in range(3):
        step()
    times, counts, start = [], [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        counts.append(tl.threads.get_num_threads())
    elapsed = time.perf_counter() - start
    print(json.dumps({"median": statistics.median(times), "steps_per_s": len(times) / elapsed,
                      "threads": max(set(counts), key=counts.count),
                      "steps_at": {n: counts.count(n) for n in sorted(set(counts))}}))


def dates_file(folder: str) -> str:
    import numpy as np
    from timelayers.datasets.sequence import make_dates, write_sequence

    path = os.path.join(folder, "date.txt")
    write_sequence(path, make_dates(20000, np.random.default_rng(0)))
    return path


def start(args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(case: str, variant: str, condition: str, seconds: float, cli_args=None) -> dict:
    """Run ``case`` as ``variant`` under ``condition``: the worker's median step and
    steps per second (summed over the two workers of ``two-runs``)."""
    env = variant_env(variant)
    library = "torch" if variant == "torch" else "ours"
    competitor = None
    if condition == "numpy-job":
        competitor = start(["--compete"], variant_env("none"))
        time.sleep(1.0)
    try:
        n = 2 if condition == "two-runs" else 1
        if case == "cli":
            workers = [start(["--cli", *cli_args, str(k)], env) for k in range(n)]
        else:
            workers = [start(["--worker", case, library, str(seconds)], env) for _ in range(n)]
        results = []
        for w in workers:
            out, err = w.communicate()
            if w.returncode != 0:
                raise RuntimeError(f"{case} {variant} {condition}: {err.strip()[-400:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return {"median": statistics.mean(r["median"] for r in results),
            "steps_per_s": sum(r["steps_per_s"] for r in results),
            "threads": [r["threads"] for r in results],
            "steps_at": [r.get("steps_at") for r in results]}


def combine(rounds: list) -> dict:
    """One cell from the measurements of several rounds: their medians."""
    return {"median": statistics.median(r["median"] for r in rounds),
            "steps_per_s": statistics.median(r["steps_per_s"] for r in rounds),
            "threads": rounds[0]["threads"], "rounds": rounds}


def cli_run(data: str, iters: int, index: str) -> None:
    """One ``timelayers train transformer-seq2seq`` cut short; print its wall time."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "timelayers", "train", "transformer-seq2seq",
                        "--data", data, "--epochs", "1", "--max-iters", str(iters),
                        "--out", os.path.join(out, f"run{index}")],
                       check=True, capture_output=True)
        wall = time.perf_counter() - t0
    print(json.dumps({"median": wall / iters, "steps_per_s": iters / wall, "threads": 0}))


def cli_supported() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "timelayers", "train", "--help"],
                               capture_output=True, text=True).stdout
    return "--max-iters" in help_text


# ----------------------------------------------------------------------------- report

def report(case: str, table: dict) -> list:
    lines = [f"### {case}", "",
             "| variant | " + " | ".join(f"{c} (ms)" for c in CONDITIONS) + " | threads (busy) |",
             "|---|" + "---:|" * len(CONDITIONS) + "---|"]
    for variant in VARIANTS:
        if not any((variant, c) in table for c in CONDITIONS):
            continue
        cells = [f"{table[variant, c]['median'] * 1e3:.1f}" if (variant, c) in table else "-"
                 for c in CONDITIONS]
        busy = table.get((variant, "numpy-job"), {}).get("threads", "-")
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {busy} |")
    lines.append("")
    if ("ours", "numpy-job") in table and ("ours-1", "numpy-job") in table:
        ours, one = table["ours", "numpy-job"], table["ours-1", "numpy-job"]
        r = ours["median"] / one["median"]
        per_round = sorted(a["median"] / b["median"] for a, b in zip(ours.get("rounds", []),
                                                                       one.get("rounds", [])))
        spread = (f"; per round {', '.join(f'{x:.2f}' for x in per_round)}"
                  if len(per_round) > 1 else "")
        lines.append(f"- beside a NumPy job, ours / ours-1: {r:.2f} (goal <= 1.1){spread}")
    if ("ours-static", "numpy-job") in table and ("ours", "numpy-job") in table:
        r = table["ours-static", "numpy-job"]["median"] / table["ours", "numpy-job"]["median"]
        lines.append(f"- beside a NumPy job, ours-static / ours: {r:.2f} (the adaptation's gain)")
    if ("ours", "two-runs") in table and ("ours", "quiet") in table:
        r = table["ours", "two-runs"]["steps_per_s"] / table["ours", "quiet"]["steps_per_s"]
        lines.append(f"- two runs together / one alone, steps per second: {r:.2f} (goal >= 1.0)")
    if ("ours", "quiet") in table and ("ours-static", "quiet") in table:
        r = table["ours", "quiet"]["median"] / table["ours-static", "quiet"]["median"]
        lines.append(f"- quiet, ours / ours-static: {r:.2f} (the adaptation costs nothing: ~1.0)")
    if ("ours", "quiet") in table and ("torch", "quiet") in table:
        for c in CONDITIONS:
            if ("torch", c) in table and ("ours", c) in table:
                r = table["ours", c]["median"] / table["torch", c]["median"]
                lines.append(f"- {c}, ours / torch: {r:.2f}")
    return lines + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(STEP_CASES + ("cli",)))
    ap.add_argument("--variants", default=",".join(VARIANTS[:4]))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cli-iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each variant this many times, taking turns")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--quick", action="store_true", help="attention and rnnlm, 4 s each")
    ap.add_argument("--compete", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "LIB", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--cli", nargs=3, metavar=("DATA", "ITERS", "INDEX"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compete:
        compete()
        return 0
    if args.worker:
        worker(args.worker[0], args.worker[1], float(args.worker[2]))
        return 0
    if args.cli:
        cli_run(args.cli[0], int(args.cli[1]), args.cli[2])
        return 0
    cases = args.cases.split(",")
    seconds = args.seconds
    if args.quick:
        cases, seconds = ["rnnlm", "attention"], 4.0
    variants = args.variants.split(",")
    print(f"# {len(os.sched_getaffinity(0))} CPUs; {seconds:g} s a measurement")
    with tempfile.TemporaryDirectory() as folder:
        cli_args = None
        if "cli" in cases:
            if cli_supported():
                cli_args = [dates_file(folder), str(args.cli_iters)]
            else:
                print("# cli: skipped (this timelayers has no --max-iters)")
                cases.remove("cli")
        for case in cases:
            runs = {}
            for condition in args.conditions.split(","):
                for _ in range(args.rounds):
                    for variant in variants:
                        if case == "cli" and variant == "torch":
                            continue
                        m = measure(case, variant, condition, seconds, cli_args)
                        runs.setdefault((variant, condition), []).append(m)
                        print(f"# {case} {variant:11s} {condition:9s} "
                              f"{m['median'] * 1e3:8.1f} ms {m['steps_per_s']:7.2f} steps/s "
                              f"threads {m['threads']} (steps at each count: "
                              f"{m['steps_at']})", flush=True)
            table = {key: combine(rounds) for key, rounds in runs.items()}
            print("\n".join(report(case, table)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The learning-rate rule for data-parallel training, checked on Penn Treebank.

K processes with a fixed batch each train on a K times larger global batch, so an
epoch has K times fewer steps. This script trains the ``rnnlm`` recipe (one LSTM,
D = H = 100, T 35, SGD, clip 0.25) for one epoch through the command line:

- one process, batch 20, lr 20 (the book's recipe: the reference);
- one process, batch 40, lr 20 and lr 40;
- ``mpiexec -n 2``, 20 rows a process (global batch 40), lr 20 and lr 40;

and reports the validation perplexity after the epoch. Two processes must match
one process with the same global batch and lr (within 5%: same arithmetic up to
float32 rounding); the lr rule is read off against the reference.

    python benchmarks/results_distributed_ptb.py [--quick]

Each process uses one BLAS thread; needs ``mpiexec`` (pip install 'timelayers[mpi]').
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, save_result, use_shared_ptb  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TIMELAYERS_NUM_THREADS": "1"}
RUNS = [  # (processes, global batch, lr)
    (1, 20, 20.0), (1, 40, 20.0), (2, 40, 20.0), (1, 40, 40.0), (2, 40, 40.0)]


def train(processes, batch, lr, out, seed, data_args):
    bindir = Path(sys.executable).parent
    timelayers = str(bindir / "timelayers")
    cmd = [timelayers, "train", "rnnlm", "--epochs", "1", "--batch-size", str(batch), "--lr",
           str(lr), "--seed", str(seed), "--out", str(out), "--force", *data_args]
    if processes > 1:
        mpiexec = shutil.which("mpiexec", path=str(bindir)) or shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit("mpiexec not found: pip install 'timelayers[mpi]'")
        cmd = [mpiexec, "-n", str(processes), *cmd]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ, **ONE_THREAD),
                   stdout=subprocess.DEVNULL)
    history = json.loads((Path(out) / "history.json").read_text())
    return {"processes": processes, "global_batch": batch, "lr": lr,
            "val_perplexity": history["val_perplexity"][-1],
            "iterations": history["iteration"][-1], "seconds": history["seconds"][-1]}


def main():
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    use_shared_ptb()
    with tempfile.TemporaryDirectory() as tmp:
        data_args = []
        if args.quick:  # the first 60,000 words of the training text
            words = (Path(os.environ["TIMELAYERS_DATA"]) / "ptb.train.txt").read_text().split(" ")
            small = Path(tmp) / "small.txt"
            small.write_text(" ".join(words[:60000]))
            data_args = ["--data", str(small)]
        runs = [train(k, n, lr, Path(tmp) / f"run{i}", args.seed, data_args)
                for i, (k, n, lr) in enumerate(RUNS)]
    by_key = {(r["processes"], r["global_batch"], r["lr"]): r["val_perplexity"] for r in runs}
    same_batch = {f"lr {lr:g}": abs(by_key[(2, 40, lr)] - by_key[(1, 40, lr)]) / by_key[(1, 40, lr)]
                  for lr in (20.0, 40.0)}
    reference = by_key[(1, 20, 20.0)]
    result = {"model": "Rnnlm", "epochs": 1, "runs": runs,
              "two_processes_vs_one_same_global_batch": same_batch,
              "vs_reference_batch_20_lr_20": {f"2 processes, lr {lr:g}":
                                              by_key[(2, 40, lr)] / reference for lr in (20.0, 40.0)},
              "target": "2 processes within 5% of 1 process with the same global batch"}
    path = save_result("distributed_ptb", result, quick=args.quick)
    for r in runs:
        print(f"{r['processes']} process(es), batch {r['global_batch']}, lr {r['lr']:g}: "
              f"val perplexity {r['val_perplexity']:.1f} ({r['iterations']} steps, "
              f"{r['seconds']:.0f} s)")
    print(f"2 vs 1 process, same global batch: {same_batch}; wrote {path}")


if __name__ == "__main__":
    main()

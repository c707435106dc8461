"""One training step of Rnnlm with each recurrent cell, interleaved in one run.

The time-per-epoch column of ``results_gru_ptb.py`` comes from three runs one
after the other, so a busy machine can bend it; this measures the same step
(the rnnlm recipe: V 10000, D = H = 100, batch 20, T 35, SGD lr 20, clip 0.25)
for ``lstm``, ``gru`` (the book's) and ``gru-reset-after`` in turn, so that noise
hits them alike. Reported: median ms per step and the ratio to the LSTM.

    python benchmarks/bench_rnnlm_cells.py [--repeats 31]
"""

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import interleaved_times, table  # noqa: E402

import timelayers as tl  # noqa: E402

CELLS = ("lstm", "gru", "gru-reset-after")


def make_step(cell, batches):
    model = tl.models.Rnnlm(10000, 100, 100, cell=cell, rng=0)
    opt = tl.SGD(lr=20.0)
    count = [0]

    def step():
        xs, ts = batches[count[0] % len(batches)]
        count[0] += 1
        model.forward(xs, ts)
        model.backward()
        tl.clip_grads(model.grads, 0.25)
        opt.update(model.params, model.grads)

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 10000, (20, 35)), rng.integers(0, 10000, (20, 35)))
               for _ in range(4)]
    times = interleaved_times({c: make_step(c, batches) for c in CELLS}, args.repeats,
                              args.warmup, lead_in=1)
    lstm = statistics.median(times["lstm"])
    rows = [[c, f"{statistics.median(times[c]) * 1e3:.1f}",
             f"{statistics.median(times[c]) / lstm:.2f}"] for c in CELLS]
    print(f"{os.cpu_count()} CPUs; median of {args.repeats} interleaved steps")
    print(table(rows, ["cell", "ms per step", "/ lstm"]))


if __name__ == "__main__":
    main()

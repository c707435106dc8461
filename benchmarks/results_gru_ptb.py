"""GRU language models against the LSTM on Penn Treebank, with the rnnlm recipe
(chapter 6: D = H = 100, batch 20, time size 35, SGD lr 20, clip 0.25, 4 epochs):
Rnnlm with cell "lstm", "gru" (the book's GRU) and "gru-reset-after" (the
cuDNN/PyTorch GRU), trained one after the other on the same batches from the same
seed; validation perplexity per epoch, test perplexity, seconds per epoch (training
only) and parameter count, in one table.

    python benchmarks/results_gru_ptb.py           # full run (three 4-epoch trainings)
    python benchmarks/results_gru_ptb.py --quick   # 100 steps of each, to check the script
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, ptb_splits, save_result  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.runs.recipes import RECIPES  # noqa: E402

CELLS = ("lstm", "gru", "gru-reset-after")
QUICK_STEPS = 100


def train_one(cell, vocab_size, data, recipe, epochs, seed):
    """Train Rnnlm with ``cell`` on ``data`` (train, valid, test id arrays) with the
    recipe's sizes and optimizer; returns (its row of the result, its history)."""
    train, valid, test = data
    sizes, opts = recipe.model_args, recipe.train_args
    model = tl.models.Rnnlm(vocab_size, sizes["wordvec_size"], sizes["hidden_size"], cell=cell,
                            rng=seed)
    trainer = tl.RnnlmTrainer(model, tl.SGD(lr=opts["lr"]), max_grad=opts["max_grad"], rng=seed)
    t0 = time.perf_counter()
    trainer.fit(train[:-1], train[1:], max_epoch=epochs, batch_size=opts["batch_size"],
                time_size=opts["time_size"],
                eval_fn=lambda m: {"val_perplexity": tl.perplexity(m, valid, batch_size=10,
                                                                   time_size=35)})
    train_seconds = time.perf_counter() - t0
    history = trainer.history
    row = {"test_perplexity": tl.perplexity(model, test, batch_size=10, time_size=35),
           "val_perplexity": history["val_perplexity"],
           "train_perplexity": history["perplexity"],
           "seconds_per_epoch": history["seconds"],
           "mean_seconds_per_epoch": sum(history["seconds"]) / len(history["seconds"]),
           "train_seconds": train_seconds,
           "parameters": int(sum(p.size for p in model.params))}
    return row, history


def table(rows):
    """The rows as a Markdown table, one line per cell."""
    lines = ["| cell | test perplexity | last validation perplexity | s/epoch | parameters |",
             "|---|---:|---:|---:|---:|"]
    for cell, r in rows.items():
        lines.append(f"| {cell} | {r['test_perplexity']:.1f} | {r['val_perplexity'][-1]:.1f} | "
                     f"{r['mean_seconds_per_epoch']:.1f} | {r['parameters']:,} |")
    return "\n".join(lines)


def main():
    recipe = RECIPES["rnnlm"]
    if recipe.train_args["optimizer"] != "SGD":
        raise SystemExit(f"results_gru_ptb.py trains with SGD; the rnnlm recipe now says "
                         f"{recipe.train_args['optimizer']}")
    parser = argument_parser(__doc__, recipe.train_args["epochs"])
    args = parser.parse_args()
    steps = recipe.train_args["batch_size"] * recipe.train_args["time_size"] * QUICK_STEPS
    train, valid, test, vocab = ptb_splits(steps if args.quick else None)
    epochs = 1 if args.quick else args.epochs

    rows, curves = {}, {}
    for cell in CELLS:
        row, history = train_one(cell, len(vocab), (train, valid, test), recipe, epochs,
                                 args.seed)
        rows[cell] = row
        curves.setdefault("epoch", history["epoch"])
        curves[f"loss ({cell})"] = history["loss"]
        curves[f"val_perplexity ({cell})"] = history["val_perplexity"]
        print(f"{cell}: test perplexity {row['test_perplexity']:.1f}, "
              f"{row['mean_seconds_per_epoch']:.1f} s/epoch", flush=True)

    summary = table(rows)
    result = {"model": "Rnnlm", "recipe": "rnnlm", "epochs": epochs,
              "model_args": {k: v for k, v in recipe.model_args.items() if k != "cell"},
              "train_args": dict(recipe.train_args, epochs=epochs),
              "cells": rows, "table": summary,
              "note": "same seed for every cell: the same batches; gru and gru-reset-after "
                      "start from the same Wx, Wh, b (gru-reset-after's bh at zero); seconds "
                      "per epoch count training only, not the validation pass"}
    path = save_result("gru_ptb", result, curves, quick=args.quick)
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""TransformerLM (beyond the book) on Penn Treebank with its recipe (`timelayers
train transformer-lm`: D 256, 4 heads, 2 blocks, feed-forward 1024, dropout 0.2,
windows of 64 tokens, batch 32, AdamW lr 1e-3 with weight decay 0.01, 200 warm-up
iterations then a cosine to 0 at the last one, clip 1) within a wall-clock budget:
validation perplexity after each epoch, test perplexity, time per epoch; against
BetterRnnlm, from docs/results/better_rnnlm.json (one epoch) or, with --with-better,
trained here with its recipe (the book's: 40 epochs, lr / 4 on a plateau) within the
same budget.

    python benchmarks/results_transformer_lm.py [--quick] [--minutes M] [--with-better]

The budget counts training and the validation after each epoch. The cosine must
end with the last epoch, so the number of epochs is fixed before training: the
time of a few training steps (on a copy of the model) gives the time of an epoch,
and the run takes as many as fit. Either model stops early if its next epoch
would not end within the budget. Writes transformer_lm.json and .png; the run
folders go to runs/results/ (`timelayers generate runs/results/transformer-lm`).
"""

import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, ROOT, argument_parser, save_result, use_shared_ptb  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.runs import recipes  # noqa: E402

RECIPE = recipes.RECIPES["transformer-lm"]
OPTIONS = {**RECIPE.model_args, **RECIPE.train_args}
VALIDATION_SHARE = 0.1  # of an epoch's training time, spent on the validation perplexity


class StopAtBudget:
    """Callback: stop after an epoch when another one of the mean length so far
    would end after ``seconds`` from the first epoch's start."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.start = None

    def __call__(self, trainer, event, info):
        if event == "fit_start":
            self.start = time.perf_counter()
        elif event == "epoch_end":
            elapsed = time.perf_counter() - self.start
            done = len(trainer.history["epoch"])
            if elapsed + elapsed / max(done, 1) > self.seconds:
                trainer.stop_training = True


def seconds_per_step(steps=4):
    """Median seconds of one training step of the recipe's model (random ids, a
    throwaway copy of the model, after one untimed step)."""
    kwargs = {RECIPE.model_arg_names.get(k, k): OPTIONS[k]
              for k in [*RECIPE.model_args, *RECIPE.model_arg_names]}
    model = tl.models.TransformerLM(10000, **kwargs, rng=0)
    optimizer = tl.optim.AdamW(lr=OPTIONS["lr"], weight_decay=OPTIONS["weight_decay"])
    ids = np.random.default_rng(0).integers(0, 10000, (2, OPTIONS["batch_size"],
                                                       OPTIONS["time_size"]))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        model.forward(ids[0], ids[1])
        model.backward()
        tl.clip_grads(model.grads, OPTIONS["max_grad"])
        optimizer.update(model.params, model.grads)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def quick_corpus(folder, tokens=30000):
    """The first ``tokens`` words of PTB's training text as a text file (the quick
    run's data: split 90/10 by the recipe, with its own vocabulary)."""
    ids, vocab = tl.datasets.load_ptb("train")
    text = " ".join(vocab.decode(ids[:tokens])).replace(" <eos> ", "\n")
    path = Path(folder) / "ptb_head.txt"
    path.write_text(text + "\n")
    return path


def run(recipe, out, data, budget_s, epochs):
    """Train ``recipe`` with ``epochs`` (or its own) within ``budget_s``; its
    history, test perplexity and wall time."""
    overrides = {"epochs": epochs} if epochs is not None else {}
    t0 = time.perf_counter()
    result = recipes.train(recipe, out, data=data, overrides=overrides, force=True,
                           progress="log", callbacks=[StopAtBudget(budget_s)])
    h = result.history
    return {"epochs": len(h["epoch"]), "val_perplexity": h.get("val_perplexity"),
            "train_perplexity": h["perplexity"], "test_perplexity": result.metrics["perplexity"],
            "seconds_per_epoch": h["seconds"], "wall_seconds": time.perf_counter() - t0}, h


def better_reference():
    path = RESULTS / "better_rnnlm.json"
    if not path.exists():
        return {"note": f"{path} is absent: run results_better_rnnlm.py or --with-better"}
    saved = json.loads(path.read_text())
    return {"source": str(path.relative_to(ROOT)), "epochs": saved["iterations"]
            / saved["epoch_iterations"], "val_perplexity": [saved["val_perplexity_ours"]],
            "seconds_per_epoch": [saved["seconds_ours"] * saved["epoch_iterations"]
                                  / saved["iterations"]],
            "test_perplexity": None, "note": "one epoch of results_better_rnnlm.py (no test "
                                             "perplexity measured there)"}


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="wall-clock budget of each model (default 60)")
    parser.add_argument("--with-better", action="store_true",
                        help="also train BetterRnnlm within the same budget")
    args = parser.parse_args()
    logger = logging.getLogger("timelayers")
    logger.addHandler(logging.StreamHandler(sys.stdout))
    logger.setLevel(logging.INFO)
    use_shared_ptb()
    runs = ROOT / "runs" / ("results-quick" if args.quick else "results")
    budget_s = (0.5 if args.quick else args.minutes) * 60
    with tempfile.TemporaryDirectory() as tmp:
        data = quick_corpus(tmp) if args.quick else None
        step_s = seconds_per_step(1 if args.quick else 4)
        corpus_tokens = (int(len(recipes.read_text_corpus(data)[0]) * 0.9) if args.quick
                         else len(tl.datasets.load_ptb("train")[0]))
        iterations = (corpus_tokens - 1) // (OPTIONS["batch_size"] * OPTIONS["time_size"])
        epoch_s = step_s * iterations * (1 + VALIDATION_SHARE)
        epochs = max(1, math.floor(budget_s / epoch_s))
        print(f"one step {step_s:.2f} s, {iterations} steps an epoch: about {epoch_s:.0f} s "
              f"an epoch with its validation; {epochs} epoch(s) in {budget_s / 60:.1f} min")
        ours, history = run("transformer-lm", runs / "transformer-lm", data, budget_s, epochs)
        better = (run("better-rnnlm", runs / "better-rnnlm", data, budget_s, None)[0]
                  if args.with_better else better_reference())
    result = {"model": "TransformerLM", "recipe_options": OPTIONS, "budget_minutes":
              budget_s / 60, "planned_epochs": epochs, "iterations_per_epoch": iterations,
              "seconds_per_step_measured": step_s, **ours, "better_rnnlm": better,
              "target": "test perplexity against BetterRnnlm's in the same wall-clock budget"}
    path = save_result("transformer_lm", result, history, quick=args.quick)
    if better.get("test_perplexity") is not None:
        theirs = (f"test perplexity {better['test_perplexity']:.1f} after {better['epochs']} "
                  f"epoch(s)")
    else:
        theirs = f"validation perplexity {better.get('val_perplexity')} after one epoch (saved)"
    print(f"TransformerLM: test perplexity {ours['test_perplexity']:.1f} after {ours['epochs']} "
          f"epoch(s), {ours['wall_seconds']:.0f} s; BetterRnnlm: {theirs}; wrote {path}")


if __name__ == "__main__":
    main()

"""Seq2seq on generated addition with the book's recipe (chapter 7): D 16, H 128,
batch 128, Adam lr 0.001, clip 5, 25 epochs; the plain model, reversed input, and
Peeky with reversed input, to show what each trick brings.

The data is the book's format and mix (``make_addition``: 50,000 distinct pairs,
the last 10% the test split). The last 2,500 lines of the training split are held
out as a validation split, reported next to the test split, so that a choice made
on a curve (the stabiliser, a checkpoint) need not look at the test split. One
stabiliser is added to the book's recipe (``--schedule``):

- ``plateau`` (default): halve the learning rate whenever the validation accuracy
  does not beat its best so far (``ReduceOnPlateau``, factor 2, patience 0);
- ``cosine``: half a cosine from 0.001 towards 0 over the epochs (``WarmupCosine``
  with no warm-up, reaching 0 one epoch after the last);
- ``constant``: none, the book's recipe as it is.

Goal: Peeky + reversed >= 98% test accuracy after the last epoch and no epoch
after the 20th below 97%.

    python benchmarks/results_seq2seq_addition.py [--quick] [--epochs 25]
        [--variants plain reversed peeky+reversed] [--schedule plateau|cosine|constant]

A run of only some variants, or with another schedule, writes
seq2seq_addition_<variants>_<schedule>.json/.png, so it never replaces the full
result.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, save_result  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.datasets import load_addition, reverse_questions  # noqa: E402

VARIANTS = {"plain": (tl.models.Seq2seq, False), "reversed": (tl.models.Seq2seq, True),
            "peeky+reversed": (tl.models.PeekySeq2seq, True)}
VALIDATION = 2500  # lines taken from the end of the training split
GOAL_VARIANT, GOAL_FINAL, GOAL_FLOOR, GOAL_FLOOR_AFTER = "peeky+reversed", 0.98, 0.97, 20


def split_validation(x, t, size):
    """The last ``size`` training examples as the validation split:
    ``(x_train, t_train), (x_val, t_val)``."""
    return (x[:-size], t[:-size]), (x[-size:], t[-size:])


SCHEDULES = {
    "plateau": lambda opt, epochs: tl.schedules.ReduceOnPlateau(
        opt, factor=2.0, monitor="val_accuracy", mode="max"),
    # total_steps = epochs + 1: the cosine's zero falls after the last epoch, which still learns
    "cosine": lambda opt, epochs: tl.schedules.WarmupCosine(opt, 0, epochs + 1),
    "constant": lambda opt, epochs: None,
}
STABILISERS = {
    "plateau": "lr halved when the validation accuracy does not beat its best "
               "(ReduceOnPlateau(optimizer, 2.0, monitor='val_accuracy', mode='max'))",
    "cosine": "cosine decay of the lr from 0.001 towards 0 "
              "(WarmupCosine(optimizer, 0, epochs + 1))",
    "constant": "none (the book's constant lr)",
}


def train_variant(name, data, epochs, seed, schedule_name):
    """Train one variant; its per-epoch record and summary as a dict."""
    (x_train, t_train), (x_val, t_val), (x_test, t_test), vocab = data
    cls, reverse = VARIANTS[name]
    if reverse:
        x_train, x_val, x_test = map(reverse_questions, (x_train, x_val, x_test))
    model = cls(len(vocab), 16, 128, rng=seed)
    optimizer = tl.Adam(lr=0.001)
    schedule = SCHEDULES[schedule_name](optimizer, epochs)
    trainer = tl.Trainer(model, optimizer, max_grad=5.0, rng=seed, schedule=schedule)

    def evaluate(m):
        return {"val_accuracy": tl.sequence_accuracy(m, x_val, t_val),
                "test_accuracy": tl.sequence_accuracy(m, x_test, t_test)}

    t0 = time.perf_counter()
    trainer.fit(x_train, t_train, max_epoch=epochs, batch_size=128, eval_fn=evaluate)
    h = trainer.history
    test, val = h["test_accuracy"], h["val_accuracy"]
    best = max(range(len(val)), key=lambda i: (val[i], i))  # the latest of equal bests
    return {"test_accuracy": test, "validation_accuracy": val, "loss": h["loss"], "lr": h["lr"],
            "final_test_accuracy": test[-1], "final_validation_accuracy": val[-1],
            "best_validation_epoch": best + 1, "test_accuracy_at_best_validation": test[best],
            "train_seconds": time.perf_counter() - t0}


def goal(record, epochs):
    """Whether Peeky + reversed meets the goal, with the numbers it is judged on."""
    test = record["test_accuracy"]
    late = test[GOAL_FLOOR_AFTER:]
    result = {"text": f"{GOAL_VARIANT} >= {GOAL_FINAL:.0%} test accuracy after the last epoch "
                      f"and no epoch after the {GOAL_FLOOR_AFTER}th below {GOAL_FLOOR:.0%}",
              "final_test_accuracy": test[-1],
              "lowest_test_accuracy_after_epoch_20": min(late) if late else None}
    result["holds"] = bool(epochs > GOAL_FLOOR_AFTER and test[-1] >= GOAL_FINAL
                           and min(late) >= GOAL_FLOOR)
    return result


def plot(variants, path, title):
    """Test and validation accuracy per epoch of every variant, side by side, and
    the learning rate; a PNG at ``path``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(13.5, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for name, record in variants.items():
        epochs = range(1, len(record["test_accuracy"]) + 1)
        axes[0].plot(epochs, record["test_accuracy"], marker="o", markersize=3, label=name)
        axes[1].plot(epochs, record["validation_accuracy"], marker="o", markersize=3, label=name)
        axes[2].plot(epochs, record["lr"], label=name)
    for ax, label in zip(axes, ("test accuracy", "validation accuracy", "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[:2]:
        ax.axhline(GOAL_FINAL, color="0.5", linestyle="--", linewidth=1)
        ax.set_ylim(0, 1)
    fig.suptitle(title)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


def main():
    parser = argument_parser(__doc__, 25)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--schedule", choices=list(SCHEDULES), default="plateau",
                        help="the stabiliser (default plateau)")
    args = parser.parse_args()
    n, epochs, validation = (3000, 2, 300) if args.quick else (50000, args.epochs, VALIDATION)
    (x_train, t_train), test, vocab = load_addition(n=n)
    train, val = split_validation(x_train, t_train, validation)
    data = (train, val, test, vocab)
    variants = {}
    for name in [v for v in VARIANTS if v in args.variants]:
        variants[name] = train_variant(name, data, epochs, args.seed, args.schedule)
        print(f"{name}: test accuracy {variants[name]['final_test_accuracy']:.4f}, "
              f"validation {variants[name]['final_validation_accuracy']:.4f}")
    result = {"epochs": epochs, "examples": n,
              "splits": {"train": len(train[0]), "validation": len(val[0]), "test": len(test[0])},
              "data": "make_addition: distinct pairs a+b of 0..999 in the book's mix; test = the "
                      "last 10%, validation = the last lines of the rest",
              "recipe": {"wordvec_size": 16, "hidden_size": 128, "batch_size": 128,
                         "optimizer": "Adam", "lr": 0.001, "max_grad": 5.0},
              "stabiliser": STABILISERS[args.schedule],
              "variants": variants}
    if GOAL_VARIANT in variants:
        result["goal"] = goal(variants[GOAL_VARIANT], epochs)
        print(f"goal holds: {result['goal']['holds']}")
    name = "seq2seq_addition"
    if len(variants) < len(VARIANTS) or args.schedule != "plateau":
        name += "".join(f"_{v}" for v in variants) + f"_{args.schedule}"
    path = save_result(name, result, quick=args.quick)
    plot(variants, path.with_suffix(".png"), name)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

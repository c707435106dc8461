"""Seq2seq on generated addition with the book's recipe (chapter 7): D 16, H 128,
batch 128, Adam, clip 5, 25 epochs; the plain model, reversed input, and Peeky
with reversed input, to show what each trick brings.

    python benchmarks/results_seq2seq_addition.py [--quick]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, save_result  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.datasets import load_addition, reverse_questions  # noqa: E402

VARIANTS = [("plain", tl.models.Seq2seq, False), ("reversed", tl.models.Seq2seq, True),
            ("peeky+reversed", tl.models.PeekySeq2seq, True)]


def main():
    parser = argument_parser(__doc__, 25)
    args = parser.parse_args()
    n, epochs = (3000, 2) if args.quick else (50000, args.epochs)
    (x_train, t_train), (x_test, t_test), vocab = load_addition(n=n)
    results, histories = {}, {}
    for name, cls, reverse in VARIANTS:
        xtr, xte = (reverse_questions(x_train), reverse_questions(x_test)) if reverse else (x_train, x_test)
        model = cls(len(vocab), 16, 128, rng=args.seed)
        trainer = tl.Trainer(model, tl.Adam(), max_grad=5.0, rng=args.seed)
        t0 = time.perf_counter()
        trainer.fit(xtr, t_train, max_epoch=epochs, batch_size=128,
                    eval_fn=lambda m, xte=xte: {"val_accuracy": tl.sequence_accuracy(m, xte, t_test)})
        results[name] = {"test_accuracy": trainer.history["val_accuracy"],
                         "final_test_accuracy": trainer.history["val_accuracy"][-1],
                         "train_seconds": time.perf_counter() - t0}
        histories[name] = trainer.history
        print(f"{name}: final test accuracy {results[name]['final_test_accuracy']:.4f}")
    merged = {f"{name} val_accuracy": h["val_accuracy"] for name, h in histories.items()}
    merged["epoch"] = histories["plain"]["epoch"]
    merged["loss"] = histories["peeky+reversed"]["loss"]
    result = {"epochs": epochs, "examples": n, "variants": results,
              "target": "peeky+reversed >= 98% test accuracy after 25 epochs"}
    path = save_result("seq2seq_addition", result, merged, quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""AttentionSeq2seq on generated dates with the book's recipe (chapter 8): D 16,
H 256, batch 128, Adam, clip 5, reversed input, 3 epochs; test accuracy and an
attention map.

    python benchmarks/results_attention_dates.py [--quick]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, argument_parser, save_result  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.datasets import load_dates, reverse_questions  # noqa: E402


def main():
    parser = argument_parser(__doc__, 3)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    n, epochs, hidden = (3000, 1, 32) if args.quick else (50000, args.epochs, args.hidden)
    (x_train, t_train), (x_test, t_test), vocab = load_dates(n=n)
    x_train, x_test = reverse_questions(x_train), reverse_questions(x_test)
    model = tl.models.AttentionSeq2seq(len(vocab), 16, hidden, rng=args.seed)
    trainer = tl.Trainer(model, tl.Adam(), max_grad=5.0, rng=args.seed)
    t0 = time.perf_counter()
    trainer.fit(x_train, t_train, max_epoch=epochs, batch_size=128,
                eval_fn=lambda m: {"val_accuracy": tl.sequence_accuracy(m, x_test, t_test)})
    seconds = time.perf_counter() - t0
    folder = RESULTS / "quick" if args.quick else RESULTS
    ids, weights = model.attention_map(x_test[:1], int(t_test[0, 0]), t_test.shape[1] - 1)
    # the model reads the question reversed; show it in reading order
    tl.plot.plot_attention(weights[0][:, ::-1], vocab.decode(x_test[0][::-1]), vocab.decode(ids[0]),
                           folder / "attention_dates_map.png", title="AttentionSeq2seq on dates")
    acc = trainer.history["val_accuracy"]
    result = {"model": "AttentionSeq2seq", "hidden": hidden, "epochs": epochs, "examples": n,
              "test_accuracy": acc, "seconds_per_epoch": trainer.history["seconds"],
              "train_seconds": seconds, "target": ">= 99.9% test accuracy within 3 epochs"}
    path = save_result("attention_dates", result, trainer.history, quick=args.quick)
    print(f"test accuracy per epoch {acc}, {seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()

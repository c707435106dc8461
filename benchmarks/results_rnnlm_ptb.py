"""Rnnlm on Penn Treebank with the book's recipe (chapter 6): one LSTM, D = H = 100,
batch 20, time size 35, SGD lr 20, clip 0.25, 4 epochs; test perplexity.

    python benchmarks/results_rnnlm_ptb.py           # full run (minutes)
    python benchmarks/results_rnnlm_ptb.py --quick   # a few hundred steps
"""

import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, ptb_splits, save_result  # noqa: E402

import timelayers as tl  # noqa: E402


def main():
    parser = argument_parser(__doc__, 4)
    args = parser.parse_args()
    corpus, valid, test, vocab = ptb_splits(20 * 35 * 300 if args.quick else None)
    epochs = 1 if args.quick else args.epochs

    model = tl.models.Rnnlm(len(vocab), 100, 100, rng=args.seed)
    trainer = tl.RnnlmTrainer(model, tl.SGD(lr=20.0), max_grad=0.25, rng=args.seed)
    t0 = time.perf_counter()
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=epochs, batch_size=20, time_size=35,
                eval_fn=lambda m: {"val_perplexity": tl.perplexity(m, valid, batch_size=10,
                                                                   time_size=35)})
    train_seconds = time.perf_counter() - t0
    test_ppl = tl.perplexity(model, test, batch_size=10, time_size=35)
    result = {"model": "Rnnlm", "epochs": epochs, "test_perplexity": test_ppl,
              "val_perplexity": trainer.history["val_perplexity"],
              "train_perplexity": trainer.history["perplexity"],
              "seconds_per_epoch": trainer.history["seconds"], "train_seconds": train_seconds,
              "target": "test perplexity <= 136 (book readers report about 135.7)"}
    path = save_result("rnnlm_ptb", result, trainer.history, quick=args.quick)
    print(f"test perplexity {test_ppl:.1f} after {epochs} epoch(s), {train_seconds:.0f} s; "
          f"wrote {path}")


if __name__ == "__main__":
    main()

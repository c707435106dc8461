"""CBOW with negative sampling on Penn Treebank (the book's chapter 4 recipe: window
5, hidden 100, batch 100, 5 negatives, Adam), then nearest neighbours and analogies.

    python benchmarks/results_cbow_ptb.py [--epochs 3] [--quick]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, save_result, use_shared_ptb  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.text import analogy, create_contexts_target, most_similar  # noqa: E402

QUERIES = ["you", "year", "car", "toyota"]
ANALOGIES = [("king", "man", "queen"), ("take", "took", "go"), ("car", "cars", "child"),
             ("good", "better", "bad")]


def main():
    parser = argument_parser(__doc__, 3)
    args = parser.parse_args()
    use_shared_ptb()
    corpus, vocab = tl.datasets.load_ptb("train")
    epochs = 1 if args.quick else args.epochs
    contexts, target = create_contexts_target(corpus, window_size=5)
    if args.quick:
        contexts, target = contexts[:30000], target[:30000]
    model = tl.models.CBOW(len(vocab), 100, 5, corpus, rng=args.seed)
    trainer = tl.Trainer(model, tl.Adam(), rng=args.seed)
    t0 = time.perf_counter()
    trainer.fit(contexts, target, max_epoch=epochs, batch_size=100, eval_interval=1000)
    seconds = time.perf_counter() - t0
    vecs = tl.to_cpu(model.word_vecs)
    neighbours = {q: [(w, round(s, 3)) for w, s in most_similar(q, vocab, vecs, top=5)]
                  for q in QUERIES}
    answers = {f"{a}:{b} = {c}:?": [(w, round(s, 3)) for w, s in analogy(a, b, c, vocab, vecs, top=4)]
               for a, b, c in ANALOGIES}
    result = {"model": "CBOW", "epochs": epochs, "loss": trainer.history["loss"],
              "seconds_per_epoch": trainer.history["seconds"], "train_seconds": seconds,
              "neighbours": neighbours, "analogies": answers}
    path = save_result("cbow_ptb", result, trainer.history, quick=args.quick)
    for q, ns in neighbours.items():
        print(f"{q}: " + ", ".join(f"{w} {s:.2f}" for w, s in ns))
    for q, ns in answers.items():
        print(f"{q} " + ", ".join(f"{w} {s:.2f}" for w, s in ns))
    print(f"{epochs} epoch(s) in {seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()

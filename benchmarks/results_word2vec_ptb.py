"""Word vectors on Penn Treebank, three ways: CBOW and skip-gram with negative sampling
(the book's chapter 4 recipe, ``ch04/train.py``: window 5, hidden 100, batch 100,
5 negatives, Adam, 10 epochs) and PPMI + truncated SVD (window 2, 100 dimensions,
the book's ``count_method_big.py``).

For each: the top 5 neighbours of the book's queries (you, year, car, toyota), its
four analogies with the rank of the book's answer among all words (woman, went,
children, worse), and the accuracy on benchmarks/data/ptb_analogies.txt per
section and overall (a question is right when its answer ranks first, the three
query words left out). Each model is written to docs/results/word2vec_ptb_NAME.json
(with the learning curve for the trained ones), so the three can be run apart.

    python benchmarks/results_word2vec_ptb.py [--models cbow skipgram ppmi]
        [--epochs 10] [--skipgram-epochs 10] [--quick]

Skip-gram scores ten context words per target where CBOW scores one, and took
1.6 to 2.2 times as long per step here (CBOW about 107 s per epoch on the 2 cores
when they are free, so the full run takes about an hour); ``--quick`` trains each
on 30,000 windows for one epoch.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import ROOT, argument_parser, save_result, use_shared_ptb  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.text import (analogy, analogy_accuracy, analogy_ranks,  # noqa: E402
                             create_co_matrix, create_contexts_target, most_similar, ppmi,
                             read_analogy_questions, truncated_svd)

QUESTIONS = Path(__file__).resolve().parent / "data" / "ptb_analogies.txt"
QUERIES = ["you", "year", "car", "toyota"]
BOOK_ANALOGIES = [("king", "man", "queen", "woman"), ("take", "took", "go", "went"),
                  ("car", "cars", "child", "children"), ("good", "better", "bad", "worse")]
MODELS = ["cbow", "skipgram", "ppmi"]
WINDOW, HIDDEN, BATCH, NEGATIVES = 5, 100, 100, 5
PPMI_WINDOW = 2
QUICK_WINDOWS = 30000


def train_word2vec(name, corpus, vocab, epochs, quick, seed):
    """Train CBOW or SkipGram with the book's recipe; (word vectors (V, H), record, history)."""
    contexts, target = create_contexts_target(corpus, window_size=WINDOW)
    if quick:
        contexts, target = contexts[:QUICK_WINDOWS], target[:QUICK_WINDOWS]
    model_class = tl.models.CBOW if name == "cbow" else tl.models.SkipGram
    model = model_class(len(vocab), HIDDEN, WINDOW, corpus, sample_size=NEGATIVES, rng=seed)
    trainer = tl.Trainer(model, tl.Adam(), rng=seed)
    start = time.perf_counter()
    trainer.fit(contexts, target, max_epoch=epochs, batch_size=BATCH, eval_interval=1000)
    seconds = time.perf_counter() - start
    record = {"epochs": epochs, "windows": int(len(target)), "loss": trainer.history["loss"],
              "seconds_per_epoch": trainer.history["seconds"], "train_seconds": seconds,
              "recipe": {"window": WINDOW, "hidden": HIDDEN, "batch": BATCH,
                         "negatives": NEGATIVES, "optimizer": "Adam"}}
    return tl.to_cpu(model.word_vecs), record, trainer.history


def ppmi_svd(corpus, vocab):
    """PPMI of the window-2 co-occurrence matrix, reduced to 100 dimensions."""
    start = time.perf_counter()
    vecs = truncated_svd(ppmi(create_co_matrix(corpus, len(vocab), window_size=PPMI_WINDOW)),
                         HIDDEN)
    return vecs, {"window": PPMI_WINDOW, "dims": HIDDEN,
                  "train_seconds": time.perf_counter() - start}


def evaluate(vecs, vocab, questions):
    """Neighbours, the book's analogies with ranks, and the question-set accuracy."""
    neighbours = {q: [(w, round(s, 3)) for w, s in most_similar(q, vocab, vecs, top=5)]
                  for q in QUERIES}
    ranks = analogy_ranks(BOOK_ANALOGIES, vocab, vecs)
    analogies = {f"{a}:{b} = {c}:?": {
        "top": [(w, round(s, 3)) for w, s in analogy(a, b, c, vocab, vecs, top=4)],
        "expected": d, "rank": int(rank)} for (a, b, c, d), rank in zip(BOOK_ANALOGIES, ranks)}
    accuracy = analogy_accuracy(questions, vocab, vecs)
    return {"neighbours": neighbours, "analogies": analogies,
            "accuracy": accuracy.as_dict()}, accuracy


def report(name, result):
    print(f"\n== {name}")
    for q, ns in result["neighbours"].items():
        print(f"{q}: " + ", ".join(f"{w} {s:.2f}" for w, s in ns))
    for q, a in result["analogies"].items():
        print(f"{q} " + ", ".join(f"{w} {s:.2f}" for w, s in a["top"])
              + f"   ({a['expected']}: rank {a['rank']})")


def accuracy_table(accuracies):
    """Accuracy per section (rows) and model (columns), as text."""
    names = list(accuracies)
    sections = list(next(iter(accuracies.values())).sections)
    lines = [f"{'section':20s}" + "".join(f"{n:>10s}" for n in names) + "  questions"]
    for section in sections + ["total"]:
        scores = [a.total if section == "total" else a.sections[section]
                  for a in accuracies.values()]
        lines.append(f"{section:20s}" + "".join(f"{s.accuracy:10.1%}" for s in scores)
                     + f"  {scores[0].answered:5d} (+{scores[0].skipped} skipped)")
    return "\n".join(lines)


def main():
    parser = argument_parser(__doc__, 10)
    parser.add_argument("--skipgram-epochs", type=int, default=10,
                        help="epochs of skip-gram (default: the book's 10)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS,
                        help="which to run (default: all three)")
    args = parser.parse_args()
    use_shared_ptb()
    corpus, vocab = tl.datasets.load_ptb("train")
    questions = read_analogy_questions(QUESTIONS)
    accuracies = {}
    for name in args.models:
        if name == "ppmi":
            vecs, record = ppmi_svd(corpus, vocab)
            history = None
        else:
            epochs = 1 if args.quick else (args.epochs if name == "cbow" else
                                           args.skipgram_epochs)
            vecs, record, history = train_word2vec(name, corpus, vocab, epochs, args.quick,
                                                   args.seed)
        result, accuracies[name] = evaluate(vecs, vocab, questions)
        result = dict({"model": name, "questions": str(QUESTIONS.relative_to(ROOT))},
                      **record, **result)
        path = save_result(f"word2vec_ptb_{name}", result, history, quick=args.quick)
        report(name, result)
        seconds = record.get("seconds_per_epoch")
        timing = (f"{record['epochs']} epoch(s), " + ", ".join(f"{s:.0f}" for s in seconds)
                  + " s each" if seconds else f"{record['train_seconds']:.1f} s")
        print(f"{timing}; accuracy {accuracies[name].total.accuracy:.1%}; wrote {path}")
    print("\nanalogy accuracy (answer ranked first, query words left out)")
    print(accuracy_table(accuracies))


if __name__ == "__main__":
    main()

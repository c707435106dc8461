"""Word vectors on Penn Treebank, three ways: CBOW and skip-gram with negative sampling
(the book's chapter 4 recipe, ``ch04/train.py``: window 5, hidden 100, batch 100,
5 negatives, Adam, 10 epochs) and PPMI + truncated SVD (window 2, 100 dimensions,
the book's ``count_method_big.py``).

For each: the top 5 neighbours of the book's queries (you, year, car, toyota), and,
under each analogy scoring method (``--methods``, default all three of
``timelayers.text.ANALOGY_METHODS``: 3cosadd, 3cosmul, book), its four analogies
with the rank of the book's answer among all words (woman, went, children, worse),
and the accuracy on benchmarks/data/ptb_analogies.txt per section and overall (a
question is right when its answer ranks first, the three query words left out).
Each model is written to docs/results/word2vec_ptb_NAME.json (NAME_TAG.json with
``--tag TAG``; with the learning curve for the trained ones), so the three can be
run apart. ``--models pretrained --book-vectors ch04/cbow_params.pkl`` evaluates the
book's own pretrained word vectors the same way (read with the restricted
unpickler, with the file's vocabulary).

    python benchmarks/results_word2vec_ptb.py [--models cbow skipgram ppmi pretrained]
        [--epochs 10] [--skipgram-epochs 10] [--methods 3cosadd 3cosmul book]
        [--book-vectors FILE.pkl] [--tag TAG] [--quick]

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
from timelayers.text import (ANALOGY_METHODS, analogy, analogy_accuracy,  # noqa: E402
                             analogy_ranks, create_co_matrix, create_contexts_target,
                             most_similar, ppmi, read_analogy_questions, truncated_svd)

QUESTIONS = Path(__file__).resolve().parent / "data" / "ptb_analogies.txt"
QUERIES = ["you", "year", "car", "toyota"]
BOOK_ANALOGIES = [("king", "man", "queen", "woman"), ("take", "took", "go", "went"),
                  ("car", "cars", "child", "children"), ("good", "better", "bad", "worse")]
MODELS = ["cbow", "skipgram", "ppmi"]  # the default; "pretrained" needs --book-vectors
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


def book_vectors(path):
    """The word vectors and vocabulary of the book's pickle (ch04's train.py writes them)."""
    from timelayers.book import read_book_model

    model = read_book_model("cbow", path)
    return tl.to_cpu(model.word_vecs), model.vocab, {"file": str(path)}


def evaluate(vecs, vocab, questions, methods):
    """Neighbours and, per method, the book's analogies with ranks and the
    question-set accuracy; (result, {method: AnalogyAccuracy})."""
    neighbours = {q: [(w, round(s, 3)) for w, s in most_similar(q, vocab, vecs, top=5)]
                  for q in QUERIES}
    analogies, accuracies = {}, {}
    for method in methods:
        ranks = analogy_ranks(BOOK_ANALOGIES, vocab, vecs, method=method)
        analogies[method] = {f"{a}:{b} = {c}:?": {
            "top": [(w, round(s, 3))
                    for w, s in analogy(a, b, c, vocab, vecs, top=4, method=method)],
            "expected": d, "rank": int(rank)}
            for (a, b, c, d), rank in zip(BOOK_ANALOGIES, ranks)}
        accuracies[method] = analogy_accuracy(questions, vocab, vecs, method=method)
    return {"neighbours": neighbours, "methods": list(methods), "analogies": analogies,
            "accuracy": {m: a.as_dict() for m, a in accuracies.items()}}, accuracies


def report(name, result):
    print(f"\n== {name}")
    for q, ns in result["neighbours"].items():
        print(f"{q}: " + ", ".join(f"{w} {s:.2f}" for w, s in ns))
    for method, analogies in result["analogies"].items():
        print(f"-- analogies, {method}")
        for q, a in analogies.items():
            print(f"{q} " + ", ".join(f"{w} {s:.2f}" for w, s in a["top"])
                  + f"   ({a['expected']}: rank {a['rank']})")


def accuracy_table(accuracies):
    """Accuracy per section (rows) and column (model or model/method), as text."""
    names = list(accuracies)
    width = max(10, max(len(n) for n in names) + 2)
    sections = list(next(iter(accuracies.values())).sections)
    lines = [f"{'section':20s}" + "".join(f"{n:>{width}s}" for n in names) + "  questions"]
    for section in sections + ["total"]:
        scores = [a.total if section == "total" else a.sections[section]
                  for a in accuracies.values()]
        lines.append(f"{section:20s}" + "".join(f"{s.accuracy:{width}.1%}" for s in scores)
                     + f"  {scores[0].answered:5d} (+{scores[0].skipped} skipped)")
    return "\n".join(lines)


def main():
    parser = argument_parser(__doc__, 10)
    parser.add_argument("--skipgram-epochs", type=int, default=10,
                        help="epochs of skip-gram (default: the book's 10)")
    parser.add_argument("--models", nargs="+", choices=MODELS + ["pretrained"], default=MODELS,
                        help="which to run (default: cbow skipgram ppmi)")
    parser.add_argument("--methods", nargs="+", choices=ANALOGY_METHODS,
                        default=list(ANALOGY_METHODS),
                        help="analogy scoring methods (default: all three)")
    parser.add_argument("--tag", default="",
                        help="write word2vec_ptb_NAME_TAG.json, leaving other runs' files")
    parser.add_argument("--book-vectors", type=Path, metavar="FILE.pkl",
                        help="the book's word-vector pickle, for --models pretrained")
    args = parser.parse_args()
    if "pretrained" in args.models and args.book_vectors is None:
        parser.error("--models pretrained needs --book-vectors FILE.pkl")
    use_shared_ptb()
    corpus, vocab = tl.datasets.load_ptb("train")
    questions = read_analogy_questions(QUESTIONS)
    accuracies = {}
    for name in args.models:
        words, history = vocab, None
        if name == "ppmi":
            vecs, record = ppmi_svd(corpus, vocab)
        elif name == "pretrained":
            vecs, words, record = book_vectors(args.book_vectors)
        else:
            epochs = 1 if args.quick else (args.epochs if name == "cbow" else
                                           args.skipgram_epochs)
            vecs, record, history = train_word2vec(name, corpus, vocab, epochs, args.quick,
                                                   args.seed)
        result, by_method = evaluate(vecs, words, questions, args.methods)
        accuracies.update({f"{name}/{m}": a for m, a in by_method.items()})
        result = dict({"model": name, "questions": str(QUESTIONS.relative_to(ROOT))},
                      **record, **result)
        tag = f"_{args.tag}" if args.tag else ""
        path = save_result(f"word2vec_ptb_{name}{tag}", result, history, quick=args.quick)
        report(name, result)
        seconds = record.get("seconds_per_epoch")
        timing = (f"{record['epochs']} epoch(s), " + ", ".join(f"{s:.0f}" for s in seconds)
                  + " s each" if seconds else
                  f"{record['train_seconds']:.1f} s" if "train_seconds" in record else
                  record["file"])
        print(f"{timing}; accuracy " + ", ".join(f"{m} {a.total.accuracy:.1%}"
                                                 for m, a in by_method.items())
              + f"; wrote {path}")
    print("\nanalogy accuracy (answer ranked first, query words left out)")
    print(accuracy_table(accuracies))


if __name__ == "__main__":
    main()

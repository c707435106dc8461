"""Count-based word vectors from the Penn Treebank: co-occurrence matrix, PPMI
and truncated SVD (the book's ``count_method_big.py``), with the time of each
step and the nearest neighbours of a few words.

The training split is read from ``$TIMELAYERS_DATA`` or ``../shared/datasets/ptb``
(beside the repository) when ``ptb.train.txt`` is there, otherwise through
:func:`timelayers.datasets.load_ptb` (which may download it)::

    python benchmarks/bench_ppmi.py
    python benchmarks/bench_ppmi.py --window 2 --dim 100 --method randomized
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from timelayers.text import create_co_matrix, most_similar, ppmi, truncated_svd
from timelayers.vocab import Vocabulary

QUERIES = ["you", "year", "car", "toyota"]


def ptb_text_dir():
    for c in (os.environ.get("TIMELAYERS_DATA"),
              Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ptb"):
        if c and (Path(c) / "ptb.train.txt").exists():
            return Path(c)
    return None


def load_train():
    """(corpus ids (T,), Vocabulary, where it came from)."""
    folder = ptb_text_dir()
    if folder is not None:  # read directly: nothing is written next to shared data
        text = (folder / "ptb.train.txt").read_text(encoding="utf-8")
        words = text.replace("\n", " <eos> ").split()
        vocab = Vocabulary(words)
        return vocab.encode(words), vocab, str(folder)
    from timelayers.datasets import load_ptb  # imported lazily: may download

    corpus, vocab = load_ptb("train")
    return corpus, vocab, "timelayers.datasets.load_ptb"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--method", default="auto", choices=["auto", "full", "randomized", "scipy"])
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    corpus, vocab, source = load_train()
    V = len(vocab)
    t_load = time.perf_counter() - t0
    print(f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"PTB train from {source}: {corpus.size:,} tokens, {V:,} words ({t_load:.2f} s)")

    t0 = time.perf_counter()
    C = create_co_matrix(corpus, V, window_size=args.window)
    t_co = time.perf_counter() - t0
    print(f"co-occurrence matrix ({V}, {V}), window {args.window}: {t_co:.2f} s")

    t0 = time.perf_counter()
    M = ppmi(C)
    t_ppmi = time.perf_counter() - t0
    print(f"PPMI: {t_ppmi:.2f} s ({np.count_nonzero(M) / M.size:.2%} non-zero)")
    del C

    t0 = time.perf_counter()
    vecs = truncated_svd(M, args.dim, rng=np.random.default_rng(0), method=args.method)
    t_svd = time.perf_counter() - t0
    print(f"truncated SVD to {args.dim} dims (method {args.method!r}): {t_svd:.2f} s")
    print(f"total (without loading): {t_co + t_ppmi + t_svd:.2f} s")

    for q in QUERIES:
        pairs = most_similar(q, vocab, vecs, top=args.top)
        print(f"\n[query] {q}")
        for word, score in pairs:
            print(f"  {word:12s} {score:.3f}")


if __name__ == "__main__":
    main()

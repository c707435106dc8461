"""Speed of negative sampling: timelayers' UnigramSampler against the book's
per-row loop.

Draws ``sample_size`` negatives for a batch of ``N`` targets over a vocabulary of
``V`` words with PTB-like (Zipf) counts, and prints the mean time per batch::

    python benchmarks/bench_sampling.py            # N=100, k=5, V=10000
    python benchmarks/bench_sampling.py --V 50000 --N 500
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from timelayers.layers.sampling import UnigramSampler


def per_batch(fn, repeat):
    fn()  # warm-up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def book_style(p, targets, k, rng):
    """The book's CPU sampler: one ``choice(replace=False)`` per row."""
    out = np.empty((targets.size, k), dtype=np.int64)
    for i, t in enumerate(targets):
        q = p.copy()
        q[t] = 0
        q /= q.sum()
        out[i] = rng.choice(p.size, size=k, replace=False, p=q)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=100)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--V", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    counts = (1e6 / np.arange(1, args.V + 1)).astype(np.int64) + 1  # Zipf, like PTB
    targets = rng.integers(0, args.V, args.N)
    print(f"numpy {np.__version__}, {platform.processor() or platform.machine()}; "
          f"N={args.N}, k={args.k}, V={args.V}")

    rows = []
    for method in ("auto", "rejection", "exponential"):
        s = UnigramSampler(counts, sample_size=args.k, rng=np.random.default_rng(1), method=method)
        name = f"UnigramSampler({method!r})" + (f" -> {s.method}" if method == "auto" else "")
        rows.append((name, per_batch(lambda: s.get_negative_sample(targets), args.repeat)))
    p = UnigramSampler(counts, sample_size=args.k).word_p
    brng = np.random.default_rng(2)
    rows.append(("book loop (choice per row)",
                 per_batch(lambda: book_style(p, targets, args.k, brng),
                           max(1, args.repeat // 20))))
    for name, t in rows:
        print(f"  {name:42s} {t * 1e6:10.1f} us/batch")


if __name__ == "__main__":
    main()

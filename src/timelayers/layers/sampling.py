"""Negative sampling: UnigramSampler and NegativeSamplingLoss.

The sampler draws, for each target word, ``sample_size`` distinct negative
words different from the target, from the unigram distribution raised to a
power (Mikolov et al., 2013, "Distributed Representations of Words and Phrases
and their Compositionality")::

    p[w] = counts[w] ** power / sum_v counts[v] ** power

The draw is *successive sampling without replacement* -- exactly the
distribution of the book's CPU sampler, ``np.random.choice(V, sample_size,
replace=False, p=p_without_target)``: the first negative is drawn from ``p``
renormalised without the target, each next one from ``p`` renormalised without
the target and the negatives already drawn. It is drawn for the whole batch at
once (no loop over rows, unlike the book's sampler, whose GPU variant also
skips the exclusion of the target). For NumPy targets it is drawn on the CPU from
a ``numpy.random.Generator``; for CuPy targets, on the GPU, from a seed drawn
from that generator (``method="counter"``, :mod:`timelayers.cuda.random`), so
that a training step never waits for the device. A CPU sampler with
``method="counter"`` draws what the GPU draws from the same seed.

The sampler's methods give exactly this distribution and differ in cost:

- ``"rejection"`` draws all ``N * k`` values with replacement (Walker's alias
  method, ``O(1)`` each), then redraws only the entries equal to the row's target
  or to an earlier entry of the row, over all offending rows at once, until none
  remain. Because an entry is only ever rejected for a value that the final row
  also excludes, each entry ends up as the first of its own i.i.d. draws that
  avoids the target and the entries before it -- successive sampling exactly.
  (Rejecting whole rows instead would give a different law, with set
  probabilities proportional to the product of ``p``.)
- ``"exponential"`` takes the ``k`` smallest of ``E[n, w] / p[w]`` with ``E ~
  Exp(1)`` and the target column set to infinity (the exponential form of
  Gumbel-top-k, Efraimidis & Spirakis 2006): exact too, ``O(N V)`` per batch,
  and its cost does not depend on ``p``.
- ``"auto"`` picks rejection when the ``k`` most probable words hold at most
  half of the mass (every redraw then succeeds with probability at least 1/2),
  exponential otherwise.
- ``"counter"`` is exponential with the ``E`` made from a hash of one seed and
  the (row, word) index (:func:`timelayers.cuda.random.exponential_keys`): what
  CuPy targets always use, on the GPU; on the CPU it gives the GPU's samples.

:class:`NegativeSamplingLoss` follows the book's convention, the *sum* over the
``1 + k`` columns of the *mean* over the batch. With ``idx = [target,
negatives]`` of shape ``(N, 1 + k)`` (the positive in column 0) and ``s[n, j] =
h[n] . W[idx[n, j]]``::

    loss = mean_n softplus(-s[n, 0]) + sum_{j=1..k} mean_n softplus(s[n, j])

(``softplus(-s) = -log sigmoid(s)``), i.e. ``(1 + k)`` times the mean over all
``N (1 + k)`` binary losses.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_ids, check_ndim, check_shape
from ..backend import get_array_module, to_cpu
from ..cuda.random import exponential_keys, exponential_keys_reference, inverse_probabilities
from .base import Layer
from .core import EmbeddingDot
from .losses import SigmoidWithLoss

__all__ = ["UnigramSampler", "NegativeSamplingLoss"]

_METHODS = ("auto", "rejection", "exponential", "counter")

# The counter method makes its keys for at most this many (row, word) pairs at a
# time (2**22 float64 keys: 32 MB).
_COUNTER_MAX_KEYS = 1 << 22

# "auto" uses rejection while the k most probable words hold at most this much
# mass: every redraw is then accepted with probability >= 1/2.
_REJECTION_MAX_MASS = 0.5


def _alias_table(p):
    """Walker's alias table of the distribution ``p (V,)``: ``prob (V,)`` float64
    and ``alias (V,)`` int64 such that drawing a slot ``i`` uniformly and keeping
    it with probability ``prob[i]`` (else taking ``alias[i]``) gives word ``w``
    with probability ``p[w]``.

    Vose's construction, vectorised: every word's scaled mass ``q = V p`` is
    "small" (< 1) or "large". In one round all current small words are finalised
    at once -- ``prob = q`` and the deficit ``1 - q`` is taken from the large
    word whose cumulative surplus covers the end of the small word's cumulative
    deficit -- and the large words that end below 1 are the next round's small
    words. A large word is never left negative (it gives at most its surplus plus
    one deficit <= 1), so mass is conserved exactly; zero-probability words keep
    ``prob = 0`` and are never drawn.
    """
    V = p.size
    q = p * V
    prob = np.ones(V)
    alias = np.arange(V, dtype=np.int64)
    small = np.flatnonzero(q < 1.0)
    large = np.flatnonzero(q >= 1.0)
    while small.size and large.size:
        deficit = 1.0 - q[small]
        end = np.cumsum(deficit)  # (S,)
        surplus_end = np.cumsum(q[large] - 1.0)  # (L,)
        j = np.searchsorted(surplus_end, end, side="left")
        np.minimum(j, large.size - 1, out=j)  # rounding at the very end
        prob[small] = q[small]
        alias[small] = large[j]
        q[large] -= np.bincount(j, weights=deficit, minlength=large.size)
        now_small = q[large] < 1.0
        small, large = large[now_small], large[~now_small]
    # whatever is left has q == 1 up to rounding: it keeps prob = 1
    return prob, alias


class UnigramSampler:
    """Draw negative samples from ``counts ** power``, vectorised over the batch
    (the book's ``UnigramSampler``, ch. 4; the draw: see the module docstring).

    Parameters
    ----------
    counts : array_like, shape (V,)
        Non-negative word frequencies (e.g. ``np.bincount(corpus, minlength=V)``);
        words with count 0 are never drawn.
    power : float
        Exponent applied to the counts (0.75 in word2vec).
    sample_size : int
        Negatives per target, ``k``: at most ``V - 1`` and the number of words
        with a positive count minus one.
    rng : numpy.random.Generator, optional
        Default ``numpy.random.default_rng()`` (not reproducible). For CuPy
        targets only a seed is drawn from it.
    method : {"auto", "rejection", "exponential", "counter"}
        How NumPy targets are drawn (the same law, other costs: see the module
        docstring); CuPy targets always use ``"counter"``, on the GPU.

    Attributes
    ----------
    word_p : ndarray of float64, shape (V,)
        The sampling distribution ``p`` (the book's name).
    vocab_size, sample_size : int
    """

    def __init__(self, counts, power=0.75, sample_size=5, rng=None, method="auto"):
        counts = np.asarray(to_cpu(counts), dtype=np.float64)
        if counts.ndim != 1:
            raise ValueError(f"UnigramSampler: argument 'counts' expected shape (V,), "
                             f"got {counts.shape}")
        if counts.size and (not np.all(np.isfinite(counts)) or counts.min() < 0):
            raise ValueError("UnigramSampler: argument 'counts' expected finite non-negative "
                             "counts, got a negative or non-finite value")
        if method not in _METHODS:
            raise ValueError(f"UnigramSampler: argument 'method' expected one of {_METHODS}, "
                             f"got {method!r}")
        V = counts.size
        k = int(sample_size)
        if k != sample_size or k < 1 or k > V - 1:
            raise ValueError(f"UnigramSampler: argument 'sample_size' expected an integer in "
                             f"[1, V - 1] = [1, {V - 1}], got {sample_size!r}")
        positive = int(np.count_nonzero(counts))
        if k > positive - 1:
            raise ValueError(f"UnigramSampler: argument 'sample_size' must be at most the number "
                             f"of words with a positive count minus one ({positive - 1}), "
                             f"got {k}")
        weights = np.where(counts > 0, counts, 0.0) ** power
        weights[counts == 0] = 0.0  # 0 ** 0 would be 1
        self.word_p = weights / weights.sum()
        self.vocab_size = V
        self.sample_size = k
        self.power = power
        self.rng = rng if rng is not None else np.random.default_rng()
        self._earlier = None
        self._prob, self._alias = _alias_table(self.word_p)
        with np.errstate(divide="ignore"):
            self._inv_p = 1.0 / self.word_p  # inf for zero-count words
        # the counter method's 1 / p (-1 where p == 0): None -> on the CPU, GPU id -> there
        self._counter_inv_p = {None: inverse_probabilities(self.word_p)}
        if method == "auto":
            top_mass = np.sort(self.word_p)[-k:].sum()
            method = "rejection" if top_mass <= _REJECTION_MAX_MASS else "exponential"
        self.method = method

    @classmethod
    def from_corpus(cls, corpus, power=0.75, sample_size=5, rng=None, vocab_size=None, **kwargs):
        """Build a sampler from a corpus of word ids ``(T,)`` (the book's signature).

        ``vocab_size`` defaults to ``corpus.max() + 1``.
        """
        corpus = np.asarray(to_cpu(corpus)).reshape(-1)
        V = int(corpus.max()) + 1 if vocab_size is None else int(vocab_size)
        counts = np.bincount(corpus, minlength=V)
        return cls(counts, power=power, sample_size=sample_size, rng=rng, **kwargs)

    def _draw(self, size):
        """``size`` i.i.d. word ids from ``word_p`` (with replacement), by the alias
        method: one uniform ``u`` picks the slot ``floor(u V)`` and its fractional
        part chooses between the slot's word and its alias."""
        V = self.vocab_size
        u = self.rng.random(size)
        u *= V
        slot = u.astype(np.int64)
        np.minimum(slot, V - 1, out=slot)
        u -= slot  # fractional part, in [0, 1)
        return np.where(u < self._prob[slot], slot, self._alias[slot])

    def _rejected(self, x, t):
        """Mask (n, k) of entries equal to the row's target or to an earlier entry."""
        k = x.shape[1]
        if k <= 32:  # all pairs at once: (n, k, k) comparisons
            if self._earlier is None or self._earlier.shape[0] != k:
                self._earlier = np.tri(k, k, -1, dtype=bool)  # [i, j]: j < i
            eq = x[:, :, None] == x[:, None, :]
            eq &= self._earlier
            bad = eq.any(axis=2)
            bad |= x == t[:, None]
            return bad
        order = np.argsort(x, axis=1, kind="stable")
        xs = np.take_along_axis(x, order, axis=1)
        dup_sorted = np.zeros(x.shape, dtype=bool)
        dup_sorted[:, 1:] = xs[:, 1:] == xs[:, :-1]  # a stable sort puts the first occurrence first
        bad = np.empty_like(dup_sorted)
        np.put_along_axis(bad, order, dup_sorted, axis=1)
        bad |= x == t[:, None]
        return bad

    def _sample_rejection(self, t):
        N, k = t.shape[0], self.sample_size
        out = self._draw((N, k))
        bad = self._rejected(out, t)  # (N, k)
        hit = np.flatnonzero(bad.any(axis=1))
        rows = None
        while hit.size:  # only the offending rows, all at once
            rows = hit if rows is None else rows[hit]
            x = out[rows]
            redo = bad[hit]
            x[redo] = self._draw(int(redo.sum()))
            out[rows] = x
            bad = self._rejected(x, t[rows])
            hit = np.flatnonzero(bad.any(axis=1))
        return out

    def _sample_exponential(self, t):
        N = t.shape[0]
        keys = self.rng.standard_exponential((N, self.vocab_size))
        keys *= self._inv_p  # E / p: inf where p == 0
        keys[np.arange(N), t] = np.inf
        return self._smallest(keys, np)

    def _smallest(self, keys, xp):
        """The columns of the ``k`` smallest keys of each row ``(N, V)``, in
        increasing order of key (the order of drawing): ``(N, k)``."""
        k = self.sample_size
        if xp is not np:  # CuPy's argpartition sorts the whole row anyway
            return xp.argsort(keys, axis=1)[:, :k]
        part = np.argpartition(keys, k - 1, axis=1)[:, :k]  # the k smallest, unordered
        order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)

    def _sample_counter(self, target, xp):
        """The counter method on ``target``'s device (NumPy: the reference keys)."""
        seed = int(self.rng.integers(0, 2**63))
        N, V = target.shape[0], self.vocab_size
        if xp is np:
            inv_p, keys_of = self._counter_inv_p[None], exponential_keys_reference
        else:
            inv_p, keys_of = self._inv_p_on_device(xp), exponential_keys
        out = xp.empty((N, self.sample_size), dtype=np.int64)
        rows = max(1, _COUNTER_MAX_KEYS // V)
        for lo in range(0, N, rows):
            hi = min(N, lo + rows)
            out[lo:hi] = self._smallest(keys_of(seed, target[lo:hi], inv_p, first_row=lo), xp)
        return out

    def _inv_p_on_device(self, xp):
        device = xp.cuda.Device().id
        if device not in self._counter_inv_p:
            self._counter_inv_p[device] = xp.asarray(self._counter_inv_p[None])
        return self._counter_inv_p[device]

    def get_negative_sample(self, target):
        """Negatives for a batch of targets.

        Parameters
        ----------
        target : int array, shape (N,)
            NumPy or CuPy.

        Returns
        -------
        int64 array, shape (N, sample_size)
            In the array module of ``target``. Row ``n`` holds distinct ids, none
            equal to ``target[n]``.
        """
        where = "UnigramSampler.get_negative_sample"
        xp = get_array_module(target)
        check_ndim(where, "target", target, 1)
        check_ids(where, "target", target, self.vocab_size)
        if xp is not np or self.method == "counter":
            return self._sample_counter(target, xp)
        t = np.asarray(target).astype(np.int64, copy=False)
        if self.method == "rejection":
            out = self._sample_rejection(t)
        else:
            out = self._sample_exponential(t)
        return out.astype(np.int64, copy=False)


class NegativeSamplingLoss(Layer):
    """The book's ``NegativeSamplingLoss`` (ch. 4): binary cross entropy of one
    positive and ``sample_size`` negative words per row, scored by
    :class:`EmbeddingDot` on the output embedding ``W``; as in the book, the sum
    over the ``1 + k`` columns of the mean over the batch (the module docstring).

    Parameters
    ----------
    W : array, shape (V, D)
        Output word embeddings, kept as ``params[0]`` (the very array).
    counts : array_like, shape (V,)
    power : float
    sample_size : int
    rng : numpy.random.Generator, optional
        For the :class:`UnigramSampler` (kept as ``sampler``, which may be
        replaced); ``sample_size`` is ``k``, negatives per row.

    ``forward(h (N, D), target (N,) int, negatives=None) -> loss``: ``negatives (N,
    K)`` int, when given, replace sampling (e.g. held fixed in a gradient check; any
    ``K >= 0``); the last ones are kept as ``negatives``. ``backward(dout=1) -> dh
    (N, D)``.
    """

    param_names = ("W",)

    def __init__(self, W, counts, power=0.75, sample_size=5, rng=None):
        super().__init__()
        check_shape("NegativeSamplingLoss", "W", W, (None, None))
        check_shape("NegativeSamplingLoss", "counts", np.asarray(to_cpu(counts)), (W.shape[0],))
        self.sampler = UnigramSampler(counts, power=power, sample_size=sample_size, rng=rng)
        self.sample_size = self.sampler.sample_size
        self.embed_dot = EmbeddingDot(W)
        self.loss_layer = SigmoidWithLoss()
        self.params = self.embed_dot.params
        self.grads = self.embed_dot.grads
        self.negatives = None
        self._columns = None

    def forward(self, h, target, negatives=None):
        where = "NegativeSamplingLoss.forward"
        (W,) = self.params
        dims = check_shape(where, "h", h, ("N", W.shape[1]))
        check_shape(where, "target", target, ("N",), dims)
        check_ids(where, "target", target, W.shape[0])
        xp = get_array_module(W)
        if negatives is None:
            negatives = self.sampler.get_negative_sample(target)
        else:
            check_shape(where, "negatives", negatives, ("N", None), dims)
        idx = xp.concatenate([target[:, None].astype(negatives.dtype, copy=False), negatives],
                             axis=1)  # (N, 1 + K)
        score = self.embed_dot.forward(h, idx)  # (N, 1 + K)
        labels = xp.zeros(score.shape, dtype=score.dtype)
        labels[:, 0] = 1
        self.negatives = negatives
        self._columns = idx.shape[1]
        return self.loss_layer.forward(score, labels) * self._columns

    def backward(self, dout=1):
        dscore = self.loss_layer.backward(dout * self._columns)  # (N, 1 + K)
        return self.embed_dot.backward(dscore)

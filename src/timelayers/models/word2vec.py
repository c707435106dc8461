"""word2vec: the simple one-hot models and the efficient ones with embeddings and
negative sampling (Mikolov et al., 2013).

Simple models take one-hot contexts ``(N, C, V)`` and one-hot or integer targets;
the efficient ones take ids: contexts ``(N, C)`` and targets ``(N,)``, where
``C = 2 * window_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module
from ..layers import Embedding, MatMul, SoftmaxWithLoss
from ..layers.sampling import NegativeSamplingLoss
from ._layout import draw_params, sizes
from ._config import ModelConfig
from ..layers._init import make_rng, normal
from .base import Model

__all__ = ["SimpleCBOW", "SimpleSkipGram", "CBOW", "SkipGram", "Word2vecConfig",
           "NegativeSamplingConfig"]


@dataclass
class Word2vecConfig(ModelConfig):
    vocab_size: int
    hidden_size: int
    window_size: int = 1
    dtype: str = "float32"


class SimpleCBOW(Model):
    """Continuous bag of words with one-hot inputs: the mean of the context words'
    hidden vectors predicts the target.

    Shapes: ``contexts (N, C, V)`` one-hot, ``target (N,)`` ids or ``(N, V)``
    one-hot, ``C = 2 * window_size``. ``word_vecs`` is ``W_in (V, hidden_size)``.
    One ``MatMul`` per context position, all sharing ``W_in`` (declared ties).
    """

    @staticmethod
    def param_layout(vocab_size, hidden_size, window_size, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, H, window = sizes(vocab_size=vocab_size, hidden_size=hidden_size, window_size=window_size)
        if window:
            yield "in_layers.0.W", (V, H), normal(0.01)  # the other positions are tied to it
        yield "out_layer.W", (H, V), normal(0.01)

    def __init__(self, vocab_size, hidden_size, window_size=1, *, dtype="float32", rng=None):
        self.config = Word2vecConfig(vocab_size, hidden_size, window_size, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        W_in = p["in_layers.0.W"]
        self.in_layers = [MatMul(W_in) for _ in range(2 * window_size)]
        self.out_layer = MatMul(p["out_layer.W"])
        self.loss_layer = SoftmaxWithLoss()
        for i in range(1, 2 * window_size):
            self.tie(f"in_layers.{i}.W", "in_layers.0.W")
        self.word_vecs = W_in

    def predict(self, contexts):
        """Scores ``(N, V)`` for the target given one-hot ``contexts (N, C, V)``."""
        h = sum(layer.forward(contexts[:, i]) for i, layer in enumerate(self.in_layers))
        return self.out_layer.forward(h / len(self.in_layers))

    def forward(self, contexts, target):
        return self.loss_layer.forward(self.predict(contexts), target)

    def _backward(self, dout=1):
        dh = self.out_layer.backward(self.loss_layer.backward(dout)) / len(self.in_layers)
        for layer in self.in_layers:
            layer.backward(dh)


class SimpleSkipGram(Model):
    """Skip-gram with one-hot inputs: the target word predicts every context word.

    Shapes: ``contexts (N, C, V)`` one-hot (or ``(N, C)`` ids), ``target (N, V)``
    one-hot. The loss is the sum over the ``C`` context positions of the mean
    softmax cross entropy (the book's ``l1 + l2``). ``word_vecs`` is ``W_in``.
    """

    @staticmethod
    def param_layout(vocab_size, hidden_size, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, H = sizes(vocab_size=vocab_size, hidden_size=hidden_size)
        yield from [("in_layer.W", (V, H), normal(0.01)), ("out_layer.W", (H, V), normal(0.01))]

    def __init__(self, vocab_size, hidden_size, window_size=1, *, dtype="float32", rng=None):
        self.config = Word2vecConfig(vocab_size, hidden_size, window_size, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.in_layer = MatMul(p["in_layer.W"])
        self.out_layer = MatMul(p["out_layer.W"])
        self.loss_layers = [SoftmaxWithLoss() for _ in range(2 * window_size)]
        self.word_vecs = p["in_layer.W"]

    def predict(self, target):
        """Scores ``(N, V)`` for every context position given one-hot ``target (N, V)``."""
        return self.out_layer.forward(self.in_layer.forward(target))

    def forward(self, contexts, target):
        s = self.predict(target)
        return sum(layer.forward(s, contexts[:, i]) for i, layer in enumerate(self.loss_layers))

    def _backward(self, dout=1):
        ds = sum(layer.backward(dout) for layer in self.loss_layers)
        self.in_layer.backward(self.out_layer.backward(ds))


@dataclass
class NegativeSamplingConfig(ModelConfig):
    vocab_size: int
    hidden_size: int
    window_size: int = 5
    counts: list = field(default_factory=list)
    sample_size: int = 5
    power: float = 0.75
    dtype: str = "float32"


def _word_counts(vocab_size, corpus, counts):
    if counts is not None and len(counts):
        counts = np.asarray(counts, dtype=np.int64)
    elif corpus is not None:
        counts = np.bincount(np.asarray(corpus).reshape(-1), minlength=vocab_size)
    else:
        raise ValueError("argument 'corpus' or 'counts' is needed for the negative sampler")
    if counts.shape != (vocab_size,):
        raise ValueError(f"argument 'counts' expected shape ({vocab_size},), got {counts.shape}")
    return counts


class _NegativeSamplingModel(Model):
    @staticmethod
    def param_layout(vocab_size, hidden_size, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, H = sizes(vocab_size=vocab_size, hidden_size=hidden_size)
        yield from [("in_layer.W", (V, H), normal(0.01)), ("ns_loss.W", (V, H), normal(0.01))]

    def __init__(self, vocab_size, hidden_size, window_size=5, corpus=None, *, counts=None,
                 sample_size=5, power=0.75, dtype="float32", rng=None):
        counts = _word_counts(vocab_size, corpus, counts)
        self.config = NegativeSamplingConfig(vocab_size, hidden_size, window_size,
                                             [int(c) for c in counts], sample_size, power, dtype)
        self.rng = make_rng(rng)
        p = draw_params(self, self.rng)  # name -> array, drawn in param_layout's order
        self.in_layer = Embedding(p["in_layer.W"])
        self.ns_loss = NegativeSamplingLoss(p["ns_loss.W"], counts, power=power,
                                            sample_size=sample_size, rng=self.rng)

    @property
    def word_vecs(self):
        """The input embedding ``W_in (V, hidden_size)``: the word vectors."""
        return self.in_layer.params[0]


class CBOW(_NegativeSamplingModel):
    """Continuous bag of words with an embedding and negative sampling (the book's
    ``CBOW``, ch. 4): the hidden vector is the mean of the context words' rows of ``W_in``.

    Parameters
    ----------
    vocab_size, hidden_size, window_size : int
    corpus : int array, optional
        Word ids whose counts drive the negative sampler (or give ``counts``).
    counts : array (vocab_size,), optional
    sample_size : int, negatives per target
    power : float, the sampler's exponent

    Shapes: ``contexts (N, 2 * window_size)`` ids, ``target (N,)`` ids.
    """

    param_layout = _NegativeSamplingModel.param_layout

    def forward(self, contexts, target):
        C = contexts.shape[1]
        # one Embedding gathers the rows of the whole (N, C) block
        h = self.in_layer.forward(contexts).sum(axis=1) * (1.0 / C)  # (N, H)
        return self.ns_loss.forward(h, target)

    def _backward(self, dout=1):
        dh = self.ns_loss.backward(dout)  # (N, H)
        C = self.in_layer.idx.shape[1]
        xp = get_array_module(dh)
        self.in_layer.backward(xp.broadcast_to((dh * (1.0 / C))[:, None, :],
                                               (dh.shape[0], C, dh.shape[1])))


class SkipGram(_NegativeSamplingModel):
    """Skip-gram with an embedding and negative sampling: the target word predicts
    each of its ``C = 2 * window_size`` context words.

    Shapes: ``contexts (N, C)`` ids, ``target (N,)`` ids. The loss is the sum over
    the ``C`` context positions of the negative-sampling loss (the book's sum of
    per-position losses), computed as one loss over ``N * C`` rows.
    """

    param_layout = _NegativeSamplingModel.param_layout

    def forward(self, contexts, target):
        N, C = contexts.shape
        xp = get_array_module(contexts)
        h = self.in_layer.forward(target)  # (N, H)
        h_rep = xp.repeat(h, C, axis=0)  # (N*C, H), row n*C + c
        self._C = C
        return self.ns_loss.forward(h_rep, contexts.reshape(-1)) * C

    def _backward(self, dout=1):
        dh_rep = self.ns_loss.backward(dout * self._C)  # (N*C, H)
        dh = dh_rep.reshape(-1, self._C, dh_rep.shape[1]).sum(axis=1)
        self.in_layer.backward(dh)

"""word2vec: the simple one-hot models and the efficient ones with embeddings and
negative sampling (Mikolov et al., 2013).

Simple models take one-hot contexts ``(N, C, V)`` and one-hot or integer targets;
the efficient ones take ids: contexts ``(N, C)`` and targets ``(N,)``, where
``C = 2 * window_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layers import MatMul, SoftmaxWithLoss
from ._init import make_rng, randn
from .base import Model

__all__ = ["SimpleCBOW", "SimpleSkipGram", "Word2vecConfig"]


@dataclass
class Word2vecConfig:
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

    def __init__(self, vocab_size, hidden_size, window_size=1, *, dtype="float32", rng=None):
        self.config = Word2vecConfig(vocab_size, hidden_size, window_size, dtype)
        rng = make_rng(rng)
        V, H = vocab_size, hidden_size
        W_in = randn(rng, (V, H), 0.01, dtype)
        W_out = randn(rng, (H, V), 0.01, dtype)
        self.in_layers = [MatMul(W_in) for _ in range(2 * window_size)]
        self.out_layer = MatMul(W_out)
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

    def __init__(self, vocab_size, hidden_size, window_size=1, *, dtype="float32", rng=None):
        self.config = Word2vecConfig(vocab_size, hidden_size, window_size, dtype)
        rng = make_rng(rng)
        V, H = vocab_size, hidden_size
        W_in = randn(rng, (V, H), 0.01, dtype)
        W_out = randn(rng, (H, V), 0.01, dtype)
        self.in_layer = MatMul(W_in)
        self.out_layer = MatMul(W_out)
        self.loss_layers = [SoftmaxWithLoss() for _ in range(2 * window_size)]
        self.word_vecs = W_in

    def predict(self, target):
        """Scores ``(N, V)`` for every context position given one-hot ``target (N, V)``."""
        return self.out_layer.forward(self.in_layer.forward(target))

    def forward(self, contexts, target):
        s = self.predict(target)
        return sum(layer.forward(s, contexts[:, i]) for i, layer in enumerate(self.loss_layers))

    def _backward(self, dout=1):
        ds = sum(layer.backward(dout) for layer in self.loss_layers)
        self.in_layer.backward(self.out_layer.backward(ds))

"""A tiny language model for the training and checkpoint tests: cheap, with
dropout drawing from the model's own generator and, optionally, a stateful layer."""

import math
from dataclasses import dataclass

import numpy as np

from timelayers.layers import Layer, TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.models.base import Model


class TimeLeaky(Layer):
    """A parameter-free stateful layer: ``h_t = x_t + a * h_{t-1}``, output ``h_t``,
    ``h_{-1}`` the carried state (truncated BPTT: no gradient into it)."""

    def __init__(self, a=0.5):
        super().__init__()
        self.a, self.stateful, self.h = a, True, None

    def reset_state(self):
        self.h = None

    def set_state(self, h, c=None):
        self.h = h

    def forward(self, xs):
        N, T, D = xs.shape
        h = np.zeros((N, D), xs.dtype) if self.h is None else self.h
        out = np.empty_like(xs)
        for t in range(T):
            h = xs[:, t] + self.a * h
            out[:, t] = h
        self.h = h
        return out

    def backward(self, dout):
        dxs, dh = np.empty_like(dout), 0.0
        for t in reversed(range(dout.shape[1])):
            dh = dout[:, t] + self.a * dh
            dxs[:, t] = dh
        return dxs


@dataclass
class TinyLMConfig:
    vocab_size: int = 8
    hidden: int = 5
    dropout: float = 0.0
    stateful: bool = False
    scale: float = 0.5


class TinyLM(Model):
    """ids (N, T) -> embed -> [leaky state] -> dropout -> affine -> softmax loss.

    ``rng`` (a seed or a Generator) draws the weights (``scale`` times standard
    normal) and then the dropout masks. ``nan_at`` lists the forward calls
    (1-based) that return NaN instead of the loss.
    """

    def __init__(self, vocab_size=8, hidden=5, dropout=0.0, stateful=False, scale=0.5, rng=0):
        self.config = TinyLMConfig(vocab_size, hidden, dropout, stateful, scale)
        self.rng = np.random.default_rng(rng)
        self.embed = TimeEmbedding(self.rng.standard_normal((vocab_size, hidden)) * scale)
        self.layers = [TimeLeaky()] if stateful else []
        self.drop = TimeDropout(dropout, self.rng)
        self.affine = TimeAffine(self.rng.standard_normal((hidden, vocab_size)) * scale,
                                 np.zeros(vocab_size))
        self.loss_layer = TimeSoftmaxWithLoss()
        self.nan_at = ()
        self.calls = 0

    def forward(self, xs, ts):
        self.calls += 1
        h = self.embed.forward(xs)
        for layer in self.layers:
            h = layer.forward(h)
        loss = self.loss_layer.forward(self.affine.forward(self.drop.forward(h)), ts)
        return math.nan if self.calls in self.nan_at else loss

    def _backward(self, dout=1):
        d = self.drop.backward(self.affine.backward(self.loss_layer.backward(dout)))
        for layer in reversed(self.layers):
            d = layer.backward(d)
        self.embed.backward(d)

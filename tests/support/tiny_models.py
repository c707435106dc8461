"""One tiny configuration of every model, with data of its shape, and small models
and layers of the tests' own (used by the model, device and parallel tests)."""

import math
from dataclasses import dataclass

import numpy as np

from timelayers import models
from timelayers.layers import Layer, TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.models.base import Model


V = 7  # the vocabulary of the tiny models


def scale_params(model, rng, scale=0.5):
    """Larger weights than the book's init, so that every gradient is well above
    the finite-difference noise."""
    for p in model.params:
        p[...] = rng.standard_normal(p.shape) * scale


def lm_data(rng, N=2, T=4):
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def s2s_data(rng, N=3, Tq=4, Ta=3):
    ts = rng.integers(1, V, (N, 1 + Ta))
    ts[:, 0] = 0
    return rng.integers(0, V, (N, Tq)), ts


def w2v_data(rng, N=4, C=2):
    return rng.integers(0, V, (N, C)), rng.integers(0, V, N)


def onehot_data(rng, N=4, C=2):
    return np.eye(V)[rng.integers(0, V, (N, C))], np.eye(V)[rng.integers(0, V, N)]


TINY_CORPUS = np.random.default_rng(5).integers(0, V, 200)


MODEL_FACTORIES = {
    "TwoLayerNet": (lambda: models.TwoLayerNet(3, 5, 4, dtype="float64", rng=0),
                    lambda r: (r.standard_normal((6, 3)), r.integers(0, 4, 6))),
    "SimpleCBOW": (lambda: models.SimpleCBOW(V, 4, 1, dtype="float64", rng=0), onehot_data),
    "SimpleSkipGram": (lambda: models.SimpleSkipGram(V, 4, 1, dtype="float64", rng=0), onehot_data),
    "CBOW": (lambda: models.CBOW(V, 4, 1, TINY_CORPUS, sample_size=2, dtype="float64", rng=0), w2v_data),
    "SkipGram": (lambda: models.SkipGram(V, 4, 1, TINY_CORPUS, sample_size=2, dtype="float64", rng=0),
                 w2v_data),
    "SimpleRnnlm": (lambda: models.SimpleRnnlm(V, 3, 4, dtype="float64", rng=0), lm_data),
    "Rnnlm": (lambda: models.Rnnlm(V, 3, 4, dtype="float64", rng=0), lm_data),
    "Rnnlm-gru": (lambda: models.Rnnlm(V, 3, 4, cell="gru", dtype="float64", rng=0), lm_data),
    "Rnnlm-gru-reset-after": (lambda: models.Rnnlm(V, 3, 4, cell="gru-reset-after",
                                                   dtype="float64", rng=0), lm_data),
    "BetterRnnlm": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.3, dtype="float64", rng=0),
                    lm_data),
    "BetterRnnlm-gru": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.0, num_layers=1,
                                                   cell="gru", dtype="float64", rng=0), lm_data),
    "BetterRnnlm-gru-reset-after": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.3,
                                                               cell="gru-reset-after",
                                                               dtype="float64", rng=0), lm_data),
    "Seq2seq": (lambda: models.Seq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "PeekySeq2seq": (lambda: models.PeekySeq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "AttentionSeq2seq": (lambda: models.AttentionSeq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "AttentionSeq2seq-general": (lambda: models.AttentionSeq2seq(V, 3, 4, score="general",
                                                                 dtype="float64", rng=0), s2s_data),
}


def freeze_randomness(model):
    """Make forward a fixed function: same dropout masks and negatives each call."""
    if hasattr(model, "ns_loss"):
        state = {}

        def fixed(target, _orig=model.ns_loss.sampler.get_negative_sample):
            key = tuple(np.asarray(target).tolist())
            if key not in state:
                state[key] = _orig(target)
            return state[key]

        model.ns_loss.sampler.get_negative_sample = fixed
    if hasattr(model, "rng"):
        seed_state = model.rng.bit_generator.state

        def setup():
            model.rng.bit_generator.state = seed_state
            model.reset_state()
        return setup
    return model.reset_state


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

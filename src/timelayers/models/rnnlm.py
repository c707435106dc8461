"""Recurrent language models: SimpleRnnlm (ch. 5), Rnnlm (ch. 6) and BetterRnnlm
(ch. 6: stacked LSTMs, dropout, tied weights; Zaremba et al. 2014, Press & Wolf 2017).

All take ids ``xs (N, T)`` and targets ``ts (N, T)``; ``predict(xs)`` returns
scores ``(N, T, V)``. The recurrent layers are stateful, for truncated BPTT:
call ``reset_state()`` between independent texts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..decoding import book_generate
from ..layers import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from ._layout import draw_params, no_params, prefixed, recurrent, sizes
from ._config import ModelConfig
from ..layers._init import make_rng, normal, xavier, zeros
from ._recurrent import recurrent_layer
from .base import Model

__all__ = ["SimpleRnnlm", "Rnnlm", "BetterRnnlm", "RnnlmConfig", "BetterRnnlmConfig"]

class _LanguageModel(Model):
    """Shared behaviour: the loss over ``predict``. The recurrent state
    (``get_state`` / ``set_state``, e.g. for generation) is :class:`Model`'s."""

    param_layout = staticmethod(no_params)

    def forward(self, xs, ts):
        """Mean cross entropy of ``predict(xs) (N, T, V)`` against ``ts (N, T)``."""
        return self.loss_layer.forward(self.predict(xs), ts)

    def generate(self, start_id, skip_ids=None, sample_size=100, *, rng=None, temperature=1.0,
                 top_k=None):
        """The book's ``generate``: a list of ``sample_size`` ids, ``start_id`` first,
        then sampled ids (see :func:`timelayers.decoding.book_generate`)."""
        return book_generate(self, start_id, skip_ids, sample_size, rng=rng,
                             temperature=temperature, top_k=top_k)


@dataclass
class RnnlmConfig(ModelConfig):
    vocab_size: int = 10000
    wordvec_size: int = 100
    hidden_size: int = 100
    cell: str = "lstm"
    dtype: str = "float32"


class Rnnlm(_LanguageModel):
    """Embedding -> one recurrent layer (LSTM by default) -> Affine -> softmax loss.

    Parameters
    ----------
    vocab_size, wordvec_size, hidden_size : int
        ``V``, ``D``, ``H`` (the book's defaults 10000, 100, 100).
    cell : {"lstm", "gru", "gru-reset-after", "rnn"}
        "gru" is the book's GRU, "gru-reset-after" the cuDNN/PyTorch form (see
        :func:`~timelayers.models._recurrent.recurrent_layer`).
    dtype : str
    rng : numpy.random.Generator or int seed
    """

    @staticmethod
    def param_layout(vocab_size, wordvec_size, hidden_size, cell, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, D, H = sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        yield "embed.W", (V, D), normal(0.01)
        yield from prefixed("rnn", recurrent(cell, D, H))  # Wx ~ N(0, 1/D), Wh ~ N(0, 1/H), b = 0
        yield "affine.W", (H, V), xavier  # N(0, 1/H)
        yield "affine.b", (V,), zeros

    def __init__(self, vocab_size=10000, wordvec_size=100, hidden_size=100, cell="lstm", *,
                 dtype="float32", rng=None):
        self.config = RnnlmConfig(vocab_size, wordvec_size, hidden_size, cell, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.embed = TimeEmbedding(p["embed.W"])
        self.rnn = recurrent_layer(cell, p, "rnn", stateful=True)
        self.affine = TimeAffine(p["affine.W"], p["affine.b"])
        self.loss_layer = TimeSoftmaxWithLoss()

    def predict(self, xs):
        """Scores ``(N, T, V)`` for the next word after each of ``xs (N, T)``."""
        return self.affine.forward(self.rnn.forward(self.embed.forward(xs)))

    def _backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        self.embed.backward(self.rnn.backward(self.affine.backward(dout)))


class SimpleRnnlm(Rnnlm):
    """The book's first language model: :class:`Rnnlm` with a plain tanh RNN."""

    param_layout = Rnnlm.param_layout

    def __init__(self, vocab_size=10000, wordvec_size=100, hidden_size=100, cell="rnn", *,
                 dtype="float32", rng=None):
        super().__init__(vocab_size, wordvec_size, hidden_size, cell, dtype=dtype, rng=rng)


@dataclass
class BetterRnnlmConfig(ModelConfig):
    vocab_size: int = 10000
    wordvec_size: int = 650
    hidden_size: int = 650
    dropout_ratio: float = 0.5
    num_layers: int = 2
    cell: str = "lstm"
    dtype: str = "float32"


class BetterRnnlm(_LanguageModel):
    """Stacked recurrent layers with dropout between them and the output layer
    tied to the embedding.

    ``embed -> dropout -> [lstm -> dropout] * num_layers -> affine (W = embed.W.T)``;
    ``cell`` picks the recurrent layers as in :class:`Rnnlm`.
    Weight tying needs ``wordvec_size == hidden_size``; it is declared once with
    ``self.tie("affine.W", "embed.W", transpose=True)``. Dropout masks come from
    ``self.rng``.
    """

    @staticmethod
    def param_layout(vocab_size, wordvec_size, hidden_size, num_layers, cell, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, D, H, layers = sizes(vocab_size=vocab_size, wordvec_size=wordvec_size,
                                hidden_size=hidden_size, num_layers=num_layers)
        yield "embed.W", (V, D), normal(0.01)
        for i in range(layers):
            yield from prefixed(f"rnns.{i}", recurrent(cell, D if i == 0 else H, H))
        yield "affine.b", (V,), zeros  # affine.W is tied to embed.W

    def __init__(self, vocab_size=10000, wordvec_size=650, hidden_size=650, dropout_ratio=0.5,
                 num_layers=2, cell="lstm", *, dtype="float32", rng=None):
        if wordvec_size != hidden_size:
            raise ValueError(f"BetterRnnlm: weight tying needs wordvec_size == hidden_size, "
                             f"got {wordvec_size} and {hidden_size}")
        self.config = BetterRnnlmConfig(vocab_size, wordvec_size, hidden_size, dropout_ratio,
                                        num_layers, cell, dtype)
        self.rng = make_rng(rng)
        p = draw_params(self, self.rng)  # name -> array, drawn in param_layout's order
        self.embed = TimeEmbedding(p["embed.W"])
        self.dropouts = [TimeDropout(dropout_ratio, self.rng) for _ in range(num_layers + 1)]
        self.rnns = [recurrent_layer(cell, p, f"rnns.{i}", stateful=True)
                     for i in range(num_layers)]
        self.affine = TimeAffine(p["embed.W"].T, p["affine.b"])
        self.loss_layer = TimeSoftmaxWithLoss()
        self.tie("affine.W", "embed.W", transpose=True)

    def predict(self, xs):
        h = self.dropouts[0].forward(self.embed.forward(xs))
        for rnn, dropout in zip(self.rnns, self.dropouts[1:]):
            h = dropout.forward(rnn.forward(h))
        return self.affine.forward(h)

    def _backward(self, dout=1):
        dh = self.affine.backward(self.loss_layer.backward(dout))
        for rnn, dropout in zip(reversed(self.rnns), reversed(self.dropouts[1:])):
            dh = rnn.backward(dropout.backward(dh))
        self.embed.backward(self.dropouts[0].backward(dh))

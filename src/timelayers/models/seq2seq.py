"""Sequence to sequence (Sutskever et al., 2014), as in the book's chapter 7:
``Encoder``, ``Decoder``, ``Seq2seq`` and the "peeky" variant that feeds the
encoder's final state to every decoder step (Cho et al., 2014).

Shapes: questions ``xs (N, Tq)``, answers ``ts (N, 1 + Ta)`` whose first column is
the start symbol (``_`` in the book's data); the decoder reads ``ts[:, :-1]`` and
predicts ``ts[:, 1:]``. The reversed-input trick is a data option
(:func:`timelayers.datasets.reverse_questions`), not a model one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module, to_cpu
from ..decoding import greedy_decode
from ..layers import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from ._layout import draw_params, no_params, prefixed, recurrent, sizes
from ._config import ModelConfig
from ..layers._init import make_rng, normal, xavier, zeros
from ._recurrent import recurrent_layer
from .base import Model

__all__ = ["Seq2seqConfig", "Encoder", "Decoder", "Seq2seq", "PeekyDecoder", "PeekySeq2seq",
           "Seq2seqBase"]


@dataclass
class Seq2seqConfig(ModelConfig):
    vocab_size: int
    wordvec_size: int = 16
    hidden_size: int = 128
    dtype: str = "float32"


def _reorder_lstm(lstm, index):
    """Keep rows ``index`` of a stateful LSTM's state (``c`` may still be unset)."""
    c = lstm.c
    lstm.set_state(lstm.h[index], None if c is None else c[index])


class Encoder(Model):
    """Embedding -> LSTM over the question; returns the last hidden state.

    Shapes: ``xs (N, Tq) -> h (N, H)``; ``backward(dh (N, H))``.
    """

    @staticmethod
    def param_layout(vocab_size, wordvec_size, hidden_size, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, D, H = sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        yield "embed.W", (V, D), normal(0.01)
        yield from prefixed("lstm", recurrent("lstm", D, H))

    def __init__(self, vocab_size, wordvec_size, hidden_size, *, dtype="float32", rng=None):
        self.config = Seq2seqConfig(vocab_size, wordvec_size, hidden_size, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.embed = TimeEmbedding(p["embed.W"])
        self.lstm = recurrent_layer("lstm", p, "lstm", stateful=False)
        self.hs = None

    def forward(self, xs):
        self.hs = self.lstm.forward(self.embed.forward(xs))  # (N, Tq, H)
        return self.hs[:, -1, :]

    def _backward(self, dh):
        xp = get_array_module(dh)
        dhs = xp.zeros_like(self.hs)
        dhs[:, -1, :] = dh
        self.embed.backward(self.lstm.backward(dhs))


class Decoder(Model):
    """Embedding -> LSTM (started from the encoder's state) -> Affine.

    Shapes: ``forward(xs (N, Ta), h (N, H)) -> scores (N, Ta, V)``;
    ``backward(dscores) -> dh (N, H)``, the gradient of the encoder's state.
    """

    @staticmethod
    def param_layout(vocab_size, wordvec_size, hidden_size, peeky=False, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them;
        with ``peeky``, the PeekyDecoder's (the encoder's state ``(N, H)`` joins the
        LSTM's and the affine layer's inputs)."""
        V, D, H = sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        yield "embed.W", (V, D), normal(0.01)
        yield from prefixed("lstm", recurrent("lstm", D + H if peeky else D, H))
        yield "affine.W", (2 * H if peeky else H, V), xavier
        yield "affine.b", (V,), zeros

    def __init__(self, vocab_size, wordvec_size, hidden_size, *, dtype="float32", rng=None):
        self.config = Seq2seqConfig(vocab_size, wordvec_size, hidden_size, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.embed = TimeEmbedding(p["embed.W"])
        self.lstm = recurrent_layer("lstm", p, "lstm", stateful=True)
        self.affine = TimeAffine(p["affine.W"], p["affine.b"])

    def forward(self, xs, h):
        self.lstm.set_state(h)
        return self.affine.forward(self.lstm.forward(self.embed.forward(xs)))

    def _backward(self, dscore):
        self.embed.backward(self.lstm.backward(self.affine.backward(dscore)))
        return self.lstm.dh

    # decoding protocol (see timelayers.decoding)
    def begin(self, h):
        self.lstm.set_state(h)

    def step(self, ids):
        """One step: ``ids (M,) -> scores (M, V)``."""
        return self.affine.forward(self.lstm.forward(self.embed.forward(ids[:, None])))[:, 0]

    def reorder(self, index):
        _reorder_lstm(self.lstm, index)


class PeekyDecoder(Decoder):
    """:class:`Decoder` that also feeds the encoder's state ``h`` to the LSTM and
    the Affine layer at every step (inputs concatenated: ``[embedding, h]`` and
    ``[lstm output, h]``)."""

    @staticmethod
    def param_layout(**config):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        return Decoder.param_layout(**config, peeky=True)

    def _peek_forward(self, xs, h):
        xp = get_array_module(h)
        N, T = xs.shape
        H = h.shape[1]
        hs = xp.broadcast_to(h[:, None, :], (N, T, H))
        out = self.lstm.forward(xp.concatenate([self.embed.forward(xs), hs], axis=2))
        return self.affine.forward(xp.concatenate([out, hs], axis=2))

    def forward(self, xs, h):
        self.lstm.set_state(h)
        self._h = h
        return self._peek_forward(xs, h)

    def _backward(self, dscore):
        H = self._h.shape[1]
        dout = self.affine.backward(dscore)  # (N, T, 2H)
        dlstm_out, dhs0 = dout[:, :, :H], dout[:, :, H:]
        dx = self.lstm.backward(dlstm_out)  # (N, T, D + H)
        D = dx.shape[2] - H
        self.embed.backward(dx[:, :, :D])
        return self.lstm.dh + dhs0.sum(axis=1) + dx[:, :, D:].sum(axis=1)

    def begin(self, h):
        self.lstm.set_state(h)
        self._h = h

    def step(self, ids):
        return self._peek_forward(ids[:, None], self._h)[:, 0]

    def reorder(self, index):
        super().reorder(index)
        self._h = self._h[index]


class Seq2seqBase(Model):
    """Shared training and decoding for the seq2seq models."""

    param_layout = staticmethod(no_params)

    def forward(self, xs, ts):
        """Mean cross entropy of predicting ``ts[:, 1:]`` from ``xs`` and ``ts[:, :-1]``."""
        score = self.decoder.forward(ts[:, :-1], self.encoder.forward(xs))
        return self.loss_layer.forward(score, ts[:, 1:])

    def _backward(self, dout=1):
        self.encoder.backward(self.decoder.backward(self.loss_layer.backward(dout)))

    def begin_decoding(self, xs):
        self.decoder.begin(self.encoder.forward(xs))

    def decode_step(self, ids):
        return self.decoder.step(ids)

    def reorder_decoding(self, index):
        self.decoder.reorder(index)

    def generate(self, xs, start_id, sample_size):
        """Greedy answers to questions ``xs (N, Tq)``, as the book's ``generate``:
        for one question (``xs`` of shape ``(1, Tq)``, as the book passes it) the
        book's list of ``sample_size`` ids (``start_id`` not included); for ``N > 1``
        questions at once, an int array ``(N, sample_size)`` of the same module as
        ``xs``."""
        ids = greedy_decode(self, xs, start_id, sample_size)
        if ids.shape[0] == 1:
            return [int(i) for i in to_cpu(ids[0])]
        return ids


class Seq2seq(Seq2seqBase):
    """:class:`Encoder` + :class:`Decoder` with a softmax cross-entropy loss."""

    decoder_class = Decoder

    @staticmethod
    def param_layout(**config):
        """The encoder's params, then the decoder's (each draws its own, in that order)."""
        yield from prefixed("encoder", Encoder.param_layout(**config))
        yield from prefixed("decoder", Decoder.param_layout(**config))

    def __init__(self, vocab_size, wordvec_size=16, hidden_size=128, *, dtype="float32", rng=None):
        self.config = Seq2seqConfig(vocab_size, wordvec_size, hidden_size, dtype)
        rng = make_rng(rng)
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, dtype=dtype, rng=rng)
        self.decoder = self.decoder_class(vocab_size, wordvec_size, hidden_size, dtype=dtype, rng=rng)
        self.loss_layer = TimeSoftmaxWithLoss()


class PeekySeq2seq(Seq2seq):
    """:class:`Seq2seq` with a :class:`PeekyDecoder`."""

    @staticmethod
    def param_layout(**config):
        """The encoder's params, then the decoder's (each draws its own, in that order)."""
        yield from prefixed("encoder", Encoder.param_layout(**config))
        yield from prefixed("decoder", PeekyDecoder.param_layout(**config))

    decoder_class = PeekyDecoder

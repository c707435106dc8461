"""Seq2seq with attention (Bahdanau et al., 2015; Luong et al., 2015), the book's
chapter 8: the decoder looks at every encoder state at every step.

Shapes: questions ``xs (N, Tq)``, answers ``ts (N, 1 + Ta)`` (start symbol first).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module
from ..layers import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from ..layers.attention import TimeAttention
from ._layout import draw_params, prefixed, recurrent, sizes
from ._config import ModelConfig
from ..layers._init import make_rng, normal, xavier, zeros
from .base import Model
from ._recurrent import recurrent_layer
from .seq2seq import Encoder, Seq2seqBase, _reorder_lstm
from ..layers.base import evaluation_mode

__all__ = ["AttentionEncoder", "AttentionDecoder", "AttentionSeq2seq", "AttentionSeq2seqConfig"]


@dataclass
class AttentionSeq2seqConfig(ModelConfig):
    vocab_size: int
    wordvec_size: int = 16
    hidden_size: int = 256
    score: str = "dot"
    dtype: str = "float32"


class AttentionEncoder(Encoder):
    """:class:`~timelayers.models.seq2seq.Encoder` returning every hidden state.

    Shapes: ``xs (N, Tq) -> hs (N, Tq, H)``; ``backward(dhs (N, Tq, H))``.
    """

    param_layout = Encoder.param_layout

    def forward(self, xs):
        self.hs = self.lstm.forward(self.embed.forward(xs))
        return self.hs

    def _backward(self, dhs):
        self.embed.backward(self.lstm.backward(dhs))


class AttentionDecoder(Model):
    """Embedding -> LSTM -> attention over the encoder states -> Affine over
    ``[context, lstm output]``.

    Shapes: ``forward(xs (N, Ta), enc_hs (N, Tq, H)) -> scores (N, Ta, V)``;
    ``backward(dscores) -> denc_hs (N, Tq, H)``. ``attention.attention_weights``
    holds ``(N, Ta, Tq)`` after a forward.
    """

    @staticmethod
    def param_layout(vocab_size, wordvec_size, hidden_size, score, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        V, D, H = sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        yield "embed.W", (V, D), normal(0.01)
        yield from prefixed("lstm", recurrent("lstm", D, H))
        if score == "general":
            yield "attention.W", (H, H), xavier
        yield "affine.W", (2 * H, V), xavier
        yield "affine.b", (V,), zeros

    def __init__(self, vocab_size, wordvec_size, hidden_size, score="dot", *, dtype="float32",
                 rng=None):
        self.config = AttentionSeq2seqConfig(vocab_size, wordvec_size, hidden_size, score, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.embed = TimeEmbedding(p["embed.W"])
        self.lstm = recurrent_layer("lstm", p, "lstm", stateful=True)
        self.attention = TimeAttention(score=score, W=p.get("attention.W"))
        self.affine = TimeAffine(p["affine.W"], p["affine.b"])
        self.enc_hs = None

    def _attend(self, dec_hs):
        xp = get_array_module(dec_hs)
        c = self.attention.forward(self.enc_hs, dec_hs)  # (N, T, H)
        return self.affine.forward(xp.concatenate([c, dec_hs], axis=2))

    def forward(self, xs, enc_hs):
        self.enc_hs = enc_hs
        self.lstm.set_state(enc_hs[:, -1])
        return self._attend(self.lstm.forward(self.embed.forward(xs)))

    def _backward(self, dscore):
        dout = self.affine.backward(dscore)  # (N, T, 2H)
        H = dout.shape[2] // 2
        denc_hs, ddec_hs = self.attention.backward(dout[:, :, :H])
        ddec_hs = ddec_hs + dout[:, :, H:]
        self.embed.backward(self.lstm.backward(ddec_hs))
        denc_hs[:, -1] += self.lstm.dh
        return denc_hs

    # decoding protocol (see timelayers.decoding)
    def begin(self, enc_hs):
        self.enc_hs = enc_hs
        self.lstm.set_state(enc_hs[:, -1])

    def step(self, ids):
        return self._attend(self.lstm.forward(self.embed.forward(ids[:, None])))[:, 0]

    def reorder(self, index):
        self.enc_hs = self.enc_hs[index]
        _reorder_lstm(self.lstm, index)


class AttentionSeq2seq(Seq2seqBase):
    """:class:`AttentionEncoder` + :class:`AttentionDecoder` with a softmax loss.

    Parameters
    ----------
    vocab_size, wordvec_size, hidden_size : int
    score : {"dot", "general"}
        The attention score: the book's dot product, or Luong's bilinear form.
    """

    @staticmethod
    def param_layout(**config):
        """The encoder's params, then the decoder's (each draws its own, in that order)."""
        yield from prefixed("encoder", AttentionEncoder.param_layout(**config))
        yield from prefixed("decoder", AttentionDecoder.param_layout(**config))

    def __init__(self, vocab_size, wordvec_size=16, hidden_size=256, score="dot", *,
                 dtype="float32", rng=None):
        self.config = AttentionSeq2seqConfig(vocab_size, wordvec_size, hidden_size, score, dtype)
        rng = make_rng(rng)
        self.encoder = AttentionEncoder(vocab_size, wordvec_size, hidden_size, dtype=dtype, rng=rng)
        self.decoder = AttentionDecoder(vocab_size, wordvec_size, hidden_size, score, dtype=dtype,
                                        rng=rng)
        self.loss_layer = TimeSoftmaxWithLoss()

    def attention_map(self, xs, start_id, length):
        """Greedy answers with the attention weights of every step.

        Returns
        -------
        ids : int array (N, length)
        weights : float array (N, length, Tq), row ``t`` is where step ``t`` looked
        """
        xp = get_array_module(xs)
        with evaluation_mode(self):
            self.begin_decoding(xs)
            ids = xp.full(xs.shape[0], int(start_id)) if xp.ndim(start_id) == 0 else start_id
            out, weights = [], []
            for _ in range(length):
                ids = self.decode_step(ids).argmax(axis=1)
                out.append(ids)
                weights.append(self.decoder.attention.attention_weights[:, 0])
        return xp.stack(out, axis=1), xp.stack(weights, axis=1)

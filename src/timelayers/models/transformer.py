"""Transformer models built from the library's hand-written layers (beyond the
book, which ends chapter 8 by describing the Transformer without code).

- :class:`TransformerLM`: a causal (GPT-style) language model with the output
  layer tied to the embedding, a drop-in for ``Rnnlm``: ``forward(xs, ts) ->
  loss``, ``backward()``, ``predict(xs)``, ``reset_state()``.
- :class:`TransformerSeq2seq`: encoder-decoder with cross-attention (Vaswani et
  al., 2017), a drop-in for ``AttentionSeq2seq``: the same data layout and the
  decoding protocol of :mod:`timelayers.decoding` (greedy and beam search).

Every block is a pre-norm :class:`~timelayers.layers.TransformerBlock`; a final
layer norm follows the last block. Token ids are embedded, multiplied by
``sqrt(D)`` (the embedding is drawn with standard deviation ``1 / sqrt(D)``, so
the product has unit scale and the tied output layer starts with logits of
unit scale), added to the positions (sinusoidal, or a learned table drawn at
half that scale, GPT-2's ratio) and passed through dropout.

The default feed-forward activation is ``"gelu_tanh"``, GPT-2's tanh
approximation of GELU, which takes a third of the exact form's time here (NumPy
has no ``erf``); ``"gelu"`` is the exact one, PyTorch's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..decoding import book_generate, greedy_decode
from ..errors import ShapeError
from ..layers import (LayerNorm, LearnedPositionalEmbedding, PositionalEncoding, TimeAffine,
                      TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss, TransformerBlock)
from ._layout import part_of, prefixed, size, sizes
from ._config import ModelConfig
from ..layers._init import draw, layer_norm, make_rng, normal, scaled_normal, zeros
from .base import Model
from .seq2seq import Seq2seqBase
from ..layers.base import evaluation_mode

__all__ = ["TransformerLM", "TransformerLMConfig", "TransformerSeq2seq",
           "TransformerSeq2seqConfig", "TransformerEncoder", "TransformerDecoder", "TokenInput",
           "POSITIONAL"]

POSITIONAL = ("sinusoidal", "learned")


def _check_sizes(where, **sizes):
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{where}: argument {name!r} expected a positive int, got {value!r}")


def _token_input_layout(vocab_size, D, max_len, positional):
    """``(name, shape, init)`` of a :class:`TokenInput`'s params, in the order it draws them."""
    V, D, max_len = sizes(vocab_size=vocab_size, D=D, max_len=max_len)
    yield "embed.W", (V, D), scaled_normal(D)  # N(0, 1/D)
    if positional == "learned":
        yield "position.W", (max_len, D), normal(0.5)


class TokenInput(Model):
    """Ids to the first block's input: ``dropout(embed(ids) * sqrt(D) + positions)``.

    Shapes: ``forward(ids (N, T), offset=0) -> (N, T, D)`` (positions ``offset ..
    offset + T - 1``); ``backward(dx (N, T, D))`` fills the embedding's (and the
    learned positions') gradients.
    """

    param_layout = staticmethod(part_of("TransformerLM or TransformerSeq2seq"))

    def __init__(self, vocab_size, D, max_len, dropout, positional, dtype, rng):
        if positional not in POSITIONAL:
            raise ValueError(f"{type(self).__name__}: argument 'positional' expected one of "
                             f"{POSITIONAL}, got {positional!r}")
        p = draw(_token_input_layout(vocab_size, D, max_len, positional), rng, dtype)
        self.embed = TimeEmbedding(p["embed.W"])
        if positional == "learned":
            self.position = LearnedPositionalEmbedding(p["position.W"])
        else:
            self.position = PositionalEncoding(max_len, D)
        self.dropout = TimeDropout(dropout, rng)
        self.scale = math.sqrt(D)

    def forward(self, ids, offset=0):
        x = self.embed.forward(ids) * self.scale  # (N, T, D)
        return self.dropout.forward(self.position.forward(x, offset))

    def _backward(self, dx):
        self.embed.backward(self.position.backward(self.dropout.backward(dx)) * self.scale)


def _blocks(num_layers, D, num_heads, ff_size, dropout, activation, dtype, rng, *, causal,
            cross_attention):
    return [TransformerBlock(D, num_heads, ff_size, dropout, causal=causal,
                             cross_attention=cross_attention, activation=activation, dtype=dtype,
                             rng=rng, residual_layers=num_layers) for _ in range(num_layers)]


def _ending_layout(D, vocab_size=None):
    """The final layer norm's params, then the output layer's bias (with
    ``vocab_size``; its ``W`` is the input's embedding, tied)."""
    yield from prefixed("norm", layer_norm(D))
    if vocab_size is not None:
        yield "affine.b", (vocab_size,), zeros


def _stack_layout(vocab_size, D, num_layers, F, max_len, positional, *, cross_attention,
                  output, layers_name="num_layers"):
    """``(name, shape, init)`` of the params of a ``TokenInput``, ``num_layers``
    blocks and the ending, in the order they draw them: a :class:`TransformerLM`
    (``output``), :class:`TransformerEncoder` or (``cross_attention``, ``output``)
    :class:`TransformerDecoder`."""
    yield from prefixed("input", _token_input_layout(vocab_size, D, max_len, positional))
    num_layers = size(num_layers, layers_name)
    for i in range(num_layers):
        yield from prefixed(f"blocks.{i}", TransformerBlock.param_layout(
            D, F, cross_attention=cross_attention, residual_layers=num_layers))
    yield from _ending_layout(D, size(vocab_size, "vocab_size") if output else None)


# -- the language model -----------------------------------------------------------------
@dataclass
class TransformerLMConfig(ModelConfig):
    vocab_size: int = 10000
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ff_size: int = 512
    max_len: int = 256
    dropout: float = 0.1
    positional: str = "sinusoidal"
    activation: str = "gelu_tanh"
    dtype: str = "float32"


class TransformerLM(Model):
    """Causal Transformer language model (GPT-style), a drop-in for ``Rnnlm``:
    ``TokenInput -> [TransformerBlock(causal)] * num_layers -> LayerNorm -> affine``,
    the affine's ``W`` tied to ``input.embed.W`` (transposed).

    Parameters
    ----------
    vocab_size, d_model, num_heads, num_layers, ff_size : int
        ``d_model`` is ``D``, a multiple of ``num_heads``.
    max_len : int
        The longest window the model reads (the positions' table size).
    dropout : float
        After the input and in every block.
    positional : {"sinusoidal", "learned"}
    activation : {"gelu_tanh", "gelu", "relu"}
        The feed-forward activation (see the module docstring).
    dtype : str
    rng : numpy.random.Generator or int seed
        Initialisation and dropout masks (kept as ``model.rng``).

    ``predict(xs (N, T)) -> scores (N, T, V)``, ``forward(xs, ts (N, T)) -> mean
    loss``; ``T <= max_len``. In training mode every call is independent. In
    evaluation mode the model keeps the last ``max_len`` ids read (``context (N, <=
    max_len)``) and reads each ``xs`` after them, as a recurrent model carries its
    state: :func:`~timelayers.metrics.perplexity` scores a batch with the text
    before it, :func:`~timelayers.decoding.generate_ids` feeds one id at a time.
    ``reset_state()`` or a new batch size forgets the context; a forward with one
    cannot be followed by ``backward``. The window reaches position ``max_len - 1``:
    train with ``time_size == max_len``, or positions never trained make it worse.
    """

    @staticmethod
    def param_layout(vocab_size, d_model, num_layers, ff_size, max_len, positional, **_):
        """``(name, shape, init)`` of each param, in the order the constructor's parts
        draw them (``affine.W`` is tied to ``input.embed.W``)."""
        D, layers, F = sizes(d_model=d_model, num_layers=num_layers, ff_size=ff_size)
        yield from _stack_layout(vocab_size, D, layers, F, max_len, positional,
                                 cross_attention=False, output=True)

    def __init__(self, vocab_size=10000, d_model=128, num_heads=4, num_layers=2, ff_size=512,
                 max_len=256, dropout=0.1, positional="sinusoidal", activation="gelu_tanh", *,
                 dtype="float32", rng=None):
        _check_sizes("TransformerLM", vocab_size=vocab_size, d_model=d_model,
                     num_layers=num_layers, max_len=max_len)
        self.config = TransformerLMConfig(vocab_size, d_model, num_heads, num_layers, ff_size,
                                          max_len, dropout, positional, activation, dtype)
        self.rng = make_rng(rng)
        D = d_model
        self.input = TokenInput(vocab_size, D, max_len, dropout, positional, dtype, self.rng)
        self.blocks = _blocks(num_layers, D, num_heads, ff_size, dropout, activation, dtype,
                              self.rng, causal=True, cross_attention=False)
        end = draw(_ending_layout(D, vocab_size), self.rng, dtype)
        self.norm = LayerNorm(end["norm.gamma"], end["norm.beta"])
        self.affine = TimeAffine(self.input.embed.params[0].T, end["affine.b"])
        self.loss_layer = TimeSoftmaxWithLoss()
        self.tie("affine.W", "input.embed.W", transpose=True)
        self.context = None

    def _scores(self, xs):
        h = self.input.forward(xs)
        for block in self.blocks:
            h = block.forward(h)
        return self.affine.forward(self.norm.forward(h))  # (N, T, V)

    def predict(self, xs):
        """Scores ``(N, T, V)`` for the word after each of ``xs (N, T)`` (after the
        context, in evaluation mode; see the class docstring)."""
        max_len = self.config.max_len
        if xs.ndim != 2 or xs.shape[1] > max_len:
            raise ShapeError(f"TransformerLM.predict: argument 'xs' expected shape (N, T) with "
                             f"T <= max_len={max_len}, got {tuple(xs.shape)}")
        if self.training:
            self.context = None
            return self._scores(xs)
        xp = get_array_module(xs)
        T = xs.shape[1]
        if self.context is not None and self.context.shape[0] == xs.shape[0]:
            xs = xp.concatenate([self.context, xs.astype(self.context.dtype, copy=False)],
                                axis=1)[:, -max_len:]
        self.context = xs
        return self._scores(xs)[:, -T:]

    def forward(self, xs, ts):
        """Mean cross entropy of ``predict(xs) (N, T, V)`` against ``ts (N, T)``."""
        return self.loss_layer.forward(self.predict(xs), ts)

    def _backward(self, dout=1):
        dh = self.norm.backward(self.affine.backward(self.loss_layer.backward(dout)))
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        self.input.backward(dh)

    def reset_state(self):
        """Forget the evaluation context."""
        self.context = None
        super().reset_state()

    def generate(self, start_id, skip_ids=None, sample_size=100, *, rng=None, temperature=1.0,
                 top_k=None):
        """As the book's ``Rnnlm.generate``: a list of ``sample_size`` ids,
        ``start_id`` first, then sampled ids (see
        :func:`timelayers.decoding.book_generate`)."""
        return book_generate(self, start_id, skip_ids, sample_size, rng=rng,
                             temperature=temperature, top_k=top_k)


# -- the encoder-decoder ----------------------------------------------------------------------
@dataclass
class TransformerSeq2seqConfig(ModelConfig):
    vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff_size: int = 256
    max_len: int = 64
    dropout: float = 0.1
    positional: str = "sinusoidal"
    activation: str = "gelu_tanh"
    dtype: str = "float32"


class TransformerEncoder(Model):
    """``TokenInput -> [TransformerBlock] * num_layers -> LayerNorm``.

    Shapes: ``forward(xs (N, Tq)) -> memory (N, Tq, D)``;
    ``backward(dmemory (N, Tq, D))``.
    """

    param_layout = staticmethod(part_of("TransformerSeq2seq"))

    def __init__(self, vocab_size, d_model, num_heads, num_layers, ff_size, max_len, dropout,
                 positional, activation, dtype, rng):
        self.input = TokenInput(vocab_size, d_model, max_len, dropout, positional, dtype, rng)
        self.blocks = _blocks(num_layers, d_model, num_heads, ff_size, dropout, activation, dtype,
                              rng, causal=False, cross_attention=False)
        end = draw(_ending_layout(d_model), rng, dtype)
        self.norm = LayerNorm(end["norm.gamma"], end["norm.beta"])

    def forward(self, xs):
        h = self.input.forward(xs)
        for block in self.blocks:
            h = block.forward(h)
        return self.norm.forward(h)

    def _backward(self, dmemory):
        dh = self.norm.backward(dmemory)
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        self.input.backward(dh)


class TransformerDecoder(Model):
    """``TokenInput -> [TransformerBlock(causal, cross_attention)] * num_layers ->
    LayerNorm -> affine``, every block attending to the encoder's ``memory``.

    Shapes: ``forward(xs (N, Ta), memory (N, Tq, D)) -> scores (N, Ta, V)``;
    ``backward(dscores) -> dmemory (N, Tq, D)`` (the blocks' contributions summed).

    Decoding (see :mod:`timelayers.decoding`): ``begin(memory)``, then ``step(ids
    (M,)) -> scores (M, V)`` appends ``ids`` to the ids read so far (``prefix``,
    ``(M, t)``) and runs the decoder over the whole prefix (no cached keys and
    values: ``t`` blocks' worth of work at step ``t``, small for the short answers
    of the seq2seq data); ``reorder(index)`` keeps rows ``index`` of ``memory``
    and ``prefix``.
    """

    param_layout = staticmethod(part_of("TransformerSeq2seq"))

    def __init__(self, vocab_size, d_model, num_heads, num_layers, ff_size, max_len, dropout,
                 positional, activation, dtype, rng):
        self.input = TokenInput(vocab_size, d_model, max_len, dropout, positional, dtype, rng)
        self.blocks = _blocks(num_layers, d_model, num_heads, ff_size, dropout, activation, dtype,
                              rng, causal=True, cross_attention=True)
        end = draw(_ending_layout(d_model, vocab_size), rng, dtype)
        self.norm = LayerNorm(end["norm.gamma"], end["norm.beta"])
        self.affine = TimeAffine(self.input.embed.params[0].T, end["affine.b"])
        self.memory = None
        self.prefix = None

    def forward(self, xs, memory):
        h = self.input.forward(xs)
        for block in self.blocks:
            h = block.forward(h, memory)
        return self.affine.forward(self.norm.forward(h))

    def _backward(self, dscores):
        dh = self.norm.backward(self.affine.backward(dscores))
        dmemory = None
        for block in reversed(self.blocks):
            dh, dm = block.backward(dh)
            dmemory = dm if dmemory is None else dmemory + dm
        self.input.backward(dh)
        return dmemory

    # decoding protocol (see timelayers.decoding)
    def begin(self, memory):
        xp = get_array_module(memory)
        self.memory = memory
        self.prefix = xp.zeros((memory.shape[0], 0), dtype=np.int64)

    def step(self, ids):
        self.prefix = get_array_module(ids).concatenate(
            [self.prefix, ids[:, None].astype(self.prefix.dtype, copy=False)], axis=1)
        return self.forward(self.prefix, self.memory)[:, -1]

    def reorder(self, index):
        self.memory = self.memory[index]
        self.prefix = self.prefix[index]


class TransformerSeq2seq(Seq2seqBase):
    """Encoder-decoder Transformer, trained and decoded like the book's seq2seq
    models: questions ``xs (N, Tq)``, answers ``ts (N, 1 + Ta)`` (the decoder reads
    ``ts[:, :-1]``, predicts ``ts[:, 1:]``). One embedding, ``encoder.input.embed.W``,
    is tied to the decoder's input and (transposed) output layer: question and
    answer share the vocabulary, as in the book's data.

    Parameters
    ----------
    vocab_size, d_model, num_heads, encoder_layers, decoder_layers, ff_size : int
    max_len : int
        At least ``Tq`` and ``Ta``.
    dropout, positional, activation, dtype, rng
        As for :class:`TransformerLM`.
    """

    @staticmethod
    def param_layout(vocab_size, d_model, encoder_layers, decoder_layers, ff_size, max_len, positional, **_):
        """The encoder's params, then the decoder's, in the order they draw them. Left
        out as tied: ``decoder.affine.W`` and ``decoder.input.embed.W`` (which the
        decoder draws before the whole ties it to ``encoder.input.embed.W``)."""
        D, F = sizes(d_model=d_model, ff_size=ff_size)
        stack = dict(vocab_size=vocab_size, D=D, F=F, max_len=max_len, positional=positional)
        yield from prefixed("encoder", _stack_layout(
            num_layers=encoder_layers, layers_name="encoder_layers", **stack,
            cross_attention=False, output=False))
        decoder = _stack_layout(num_layers=decoder_layers, layers_name="decoder_layers", **stack,
                                cross_attention=True, output=True)
        yield from prefixed("decoder", (p for p in decoder if p[0] != "input.embed.W"))

    def __init__(self, vocab_size, d_model=64, num_heads=4, encoder_layers=2, decoder_layers=2,
                 ff_size=256, max_len=64, dropout=0.1, positional="sinusoidal",
                 activation="gelu_tanh", *, dtype="float32", rng=None):
        _check_sizes("TransformerSeq2seq", vocab_size=vocab_size, d_model=d_model,
                     encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                     max_len=max_len)
        self.config = TransformerSeq2seqConfig(vocab_size, d_model, num_heads, encoder_layers,
                                               decoder_layers, ff_size, max_len, dropout,
                                               positional, activation, dtype)
        self.rng = make_rng(rng)
        shared = (d_model, num_heads)
        self.encoder = TransformerEncoder(vocab_size, *shared, encoder_layers, ff_size, max_len,
                                          dropout, positional, activation, dtype, self.rng)
        self.decoder = TransformerDecoder(vocab_size, *shared, decoder_layers, ff_size, max_len,
                                          dropout, positional, activation, dtype, self.rng)
        W = self.encoder.input.embed.params[0]
        self.decoder.input.embed.params[0] = W
        self.decoder.affine.params[0] = W.T
        self.loss_layer = TimeSoftmaxWithLoss()
        self.tie("decoder.input.embed.W", "encoder.input.embed.W")
        self.tie("decoder.affine.W", "encoder.input.embed.W", transpose=True)

    def attention_map(self, xs, start_id, length, layer=-1, head=None):
        """Greedy answers with the cross-attention weights of one decoder block
        (the same contract as ``AttentionSeq2seq.attention_map``).

        Parameters
        ----------
        xs : int array (N, Tq)
        start_id : int
        length : int
        layer : int, default -1
            Which decoder block (the last by default).
        head : int, optional
            Which head; None averages the heads (PyTorch's
            ``average_attn_weights``).

        Returns
        -------
        ids : int array (N, length)
        weights : float array (N, length, Tq), row ``t`` is where answer step ``t``
            looked
        """
        xp = get_array_module(xs)
        ids = greedy_decode(self, xs, start_id, length)
        with evaluation_mode(self):
            start = xp.full((xs.shape[0], 1), int(start_id), dtype=ids.dtype)
            # the decoder is causal: reading the answer at once gives every step's weights
            self.decoder.forward(xp.concatenate([start, ids[:, :-1]], axis=1),
                                 self.encoder.forward(xs))
        weights = self.decoder.blocks[layer].cross_attn.attention_weights  # (N, h, length, Tq)
        return ids, weights.mean(axis=1) if head is None else weights[:, head]

"""The library's models as PyTorch modules, and back.

:func:`to_torch` builds an ``nn.Module`` from PyTorch's own layers
(``nn.Embedding``, ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``, ``nn.Linear``, and for
the Transformers ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``
and ``nn.LayerNorm``) holding a copy of the model's weights in its dtype;
:func:`from_torch` reads them back. The conversions only move gate blocks,
transpose, stack and change signs (:mod:`._layouts`), so a round trip gives the
very same arrays; the one sum is the LSTM's and the book GRU's bias, ``b = b_ih +
b_hh``, which is exact as exported (``b_hh = 0``, frozen, so that the module trains
as ours does: see :func:`_rnn`) and rounds once if ``b_hh`` is unfrozen and trained.

=====================  ==========================================================
model                  module
=====================  ==========================================================
Rnnlm, SimpleRnnlm,    :class:`LanguageModel`: ``embed``, ``rnn`` (``num_layers``
BetterRnnlm            deep, dropout between), ``linear`` (BetterRnnlm: its weight
                       is ``embed.weight``, tied as in the model)
Seq2seq, PeekySeq2seq, :class:`Seq2seqModule`: ``encoder_embed``, ``encoder_rnn``,
AttentionSeq2seq       ``decoder_embed``, ``decoder_rnn``, ``attention`` (an
                       ``nn.Linear`` without bias, for ``score="general"``),
                       ``linear``
TransformerLM          :class:`TransformerLanguageModel`: ``input``
                       (:class:`TokenInput`: ``embed``, ``position``, dropout),
                       ``blocks`` (causal ``nn.TransformerEncoderLayer`` s),
                       ``norm``, ``linear`` (its weight is ``input.embed.weight``)
TransformerSeq2seq     :class:`TransformerSeq2seqModule`: ``encoder`` and
                       ``decoder`` (:class:`TransformerStack` s: ``input``,
                       ``blocks``, ``norm``; the decoder's blocks causal
                       ``nn.TransformerDecoderLayer`` s), ``linear``; one
                       Parameter is the embedding of both and ``linear.weight``
CBOW, SkipGram         :class:`WordVectors`: ``embed`` (the word vectors) and
                       ``out_embed`` (the negative sampler's output weights)
=====================  ==========================================================

The book's GRU (``cell="gru"``: the reset gate applied before the hidden product)
is not ``nn.GRU``'s form: it becomes :class:`BookGRU`, a loop over the steps with
``nn.GRU``'s parameter names and layout.

Our Transformer blocks are pre-norm: each is ``nn.TransformerEncoderLayer`` /
``nn.TransformerDecoderLayer`` with ``norm_first=True, batch_first=True``, our
activation (``"relu"``, ``"gelu"``, or ``F.gelu(approximate="tanh")`` for
``"gelu_tanh"``) and layer-norm epsilon (1e-5), the model's dropout on each
sub-layer's output and on the feed-forward hidden layer as ours, and none on the
attention weights (ours has none there: ``nn.MultiheadAttention``'s ``dropout`` is
set to 0). An attention's ``Wq, Wk, Wv (D, D)`` are ``in_proj_weight = [Wq.T;
Wk.T; Wv.T]``, its biases ``in_proj_bias = [bq; bk; bv]``, ``Wo`` and ``bo`` are
``out_proj``. The input is ``embed(ids) * sqrt(D) + position[:T]``: the sinusoidal
table is a buffer (in the model's dtype, left out of the ``state_dict``: the
config rebuilds it), a learned one a Parameter.

Every module keeps ``model_name``, ``config`` (the model's constructor arguments)
and ``vocab`` (a dict, or None), and gives the model's params under our names
(``timelayers_state()``). The losses are the library's: the mean cross entropy
over every position, label -1 ignored (``module.loss(...)``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..backend import to_cpu
from ..errors import CheckpointError, OptionError, ShapeError
from ..models.base import MODEL_REGISTRY, config_dict
from ..serialization import atomic_write
from ..vocab import Vocabulary
from ._layouts import TORCH_ORDER, cell_of, kind_of, reorder, restore

__all__ = ["to_torch", "from_torch", "save_torch", "load_torch", "LanguageModel",
           "Seq2seqModule", "WordVectors", "BookGRU", "TransformerLanguageModel",
           "TransformerSeq2seqModule", "TransformerStack", "TokenInput"]


def _tensor(a):
    return torch.from_numpy(np.ascontiguousarray(to_cpu(a)))


def _array(t):
    return t.detach().cpu().numpy()


# --------------------------------------------------------------------------- recurrent

class BookGRU(nn.Module):
    """The book's GRU as PyTorch code, ``nn.GRU``'s parameters and calling
    convention (``batch_first=True``): ``r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)``,
    ``z' = sigmoid(... W_iz ...)``, ``n = tanh(x W_in + b_in + (r * h) W_hn +
    b_hn)``, ``h' = (1 - z') * n + z' * h``: only ``n`` differs from ``nn.GRU``
    (``r * (h W_hn + b_hn)`` there)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout = dropout
        H = hidden_size
        for k in range(num_layers):
            D = input_size if k == 0 else H
            for name, shape in ((f"weight_ih_l{k}", (3 * H, D)), (f"weight_hh_l{k}", (3 * H, H)),
                                (f"bias_ih_l{k}", (3 * H,)), (f"bias_hh_l{k}", (3 * H,))):
                self.register_parameter(name, nn.Parameter(torch.zeros(shape, dtype=dtype)))

    def forward(self, x, h0=None):
        N, T, _ = x.shape
        H = self.hidden_size
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, N, H)
        last = []
        for k in range(self.num_layers):
            if k:
                x = F.dropout(x, self.dropout, self.training)
            W_ih, W_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")
            gi = x @ W_ih.T + b_ih                                   # (N, T, 3H): r, z, n
            h, ys = h0[k], []
            for t in range(T):
                gh = h @ W_hh[:2 * H].T + b_hh[:2 * H]
                r = torch.sigmoid(gi[:, t, :H] + gh[:, :H])
                z = torch.sigmoid(gi[:, t, H:2 * H] + gh[:, H:])
                n = torch.tanh(gi[:, t, 2 * H:] + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
                h = (1 - z) * n + z * h
                ys.append(h)
            x = torch.stack(ys, dim=1)
            last.append(h)
        return x, torch.stack(last)


_MODULES = {"lstm": nn.LSTM, "gru-reset-after": nn.GRU, "rnn": nn.RNN, "gru": BookGRU}


def _rnn(cell, layers, dropout=0.0):
    """A PyTorch recurrent module (``batch_first``) holding ``layers``, the
    library's time layers of one cell, stacked.

    Where the cell has one bias (all but ``gru-reset-after``), ``bias_hh`` is a
    frozen zero (``requires_grad=False``): a trainable second bias would take the
    same gradient as ``bias_ih``, so in PyTorch the bias would move twice as fast
    as ours and count twice in a clipping norm."""
    Wx0 = layers[0].params[0]
    H = layers[0].hidden_size
    dtype = _tensor(Wx0).dtype
    dropout = dropout if len(layers) > 1 else 0.0      # between layers only
    if cell == "gru":
        module = BookGRU(Wx0.shape[0], H, len(layers), dropout, dtype=dtype)
    else:
        module = _MODULES[cell](Wx0.shape[0], H, len(layers), batch_first=True, dropout=dropout,
                                dtype=dtype)
    order = TORCH_ORDER[cell.removesuffix("-reset-after")]
    with torch.no_grad():
        for k, layer in enumerate(layers):
            Wx, Wh, b = (np.asarray(to_cpu(p)) for p in layer.params[:3])
            bh = np.asarray(to_cpu(layer.params[3])) if cell == "gru-reset-after" \
                else np.zeros_like(b)
            for name, value in ((f"weight_ih_l{k}", reorder(Wx, H, order).T),
                                (f"weight_hh_l{k}", reorder(Wh, H, order).T),
                                (f"bias_ih_l{k}", reorder(b, H, order)),
                                (f"bias_hh_l{k}", reorder(bh, H, order))):
                getattr(module, name).copy_(_tensor(value))
            if cell != "gru-reset-after":
                getattr(module, f"bias_hh_l{k}").requires_grad_(False)
    return module


def _rnn_state(module, cell, names):
    """The library's params of each layer of ``module``: ``{name.Wx: ..., ...}`` for
    ``names[k]`` the dotted name of layer ``k``."""
    H = module.hidden_size
    order = TORCH_ORDER[cell.removesuffix("-reset-after")]
    state = {}
    for k, name in enumerate(names):
        W_ih, W_hh, b_ih, b_hh = (_array(getattr(module, f"{p}_l{k}"))
                                  for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        state[f"{name}.Wx"] = restore(W_ih.T, H, order)
        state[f"{name}.Wh"] = restore(W_hh.T, H, order)
        if cell == "gru-reset-after":
            state[f"{name}.b"] = restore(b_ih, H, order)
            state[f"{name}.bh"] = restore(b_hh, H, order)
        else:
            state[f"{name}.b"] = restore(b_ih + b_hh, H, order)
    return state


def _embedding(W):
    W = _tensor(W)
    module = nn.Embedding(W.shape[0], W.shape[1], dtype=W.dtype)
    with torch.no_grad():
        module.weight.copy_(W)
    return module


def _linear(W, b=None):
    W = _tensor(W)
    module = nn.Linear(W.shape[0], W.shape[1], bias=b is not None, dtype=W.dtype)
    with torch.no_grad():
        module.weight.copy_(W.T)
        if b is not None:
            module.bias.copy_(_tensor(b))
    return module


def _loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-1)


class _Converted(nn.Module):
    def _keep(self, model):
        self.model_name = type(model).__name__
        self.config = config_dict(model)
        vocab = getattr(model, "vocab", None)
        self.vocab = None if vocab is None else vocab.to_dict()


# --------------------------------------------------------------------------- models

class LanguageModel(_Converted):
    """Rnnlm / SimpleRnnlm / BetterRnnlm: ``forward(ids (N, T), state=None) ->
    (logits (N, T, V), state)``, the state as ``nn.LSTM`` gives it (``(h, c)``,
    each ``(layers, N, H)``; ``h`` for the GRU and RNN)."""

    def __init__(self, model):
        super().__init__()
        self._keep(model)
        layers = [model.rnn] if hasattr(model, "rnn") else list(model.rnns)
        self.cell = cell_of(layers[0])
        p = float(getattr(model.config, "dropout_ratio", 0.0))
        self.embed = _embedding(model.embed.params[0])
        self.dropout = nn.Dropout(p)
        self.rnn = _rnn(self.cell, layers, p)
        self.layer_names = ["rnn"] if hasattr(model, "rnn") else \
            [f"rnns.{k}" for k in range(len(layers))]
        self.tied = bool(getattr(model, "_ties", None))
        W, b = model.affine.params
        self.linear = _linear(W, b)
        if self.tied:
            self.linear.weight = self.embed.weight

    def forward(self, ids, state=None):
        x = self.dropout(self.embed(ids))
        y, state = self.rnn(x, state)
        return self.linear(self.dropout(y)), state

    def loss(self, ids, targets, state=None):
        """Mean cross entropy and the next state."""
        logits, state = self(ids, state)
        return _loss(logits, targets), state

    def timelayers_state(self):
        state = {"embed.W": _array(self.embed.weight)}
        state.update(_rnn_state(self.rnn, self.cell, self.layer_names))
        if not self.tied:
            state["affine.W"] = _array(self.linear.weight).T
        state["affine.b"] = _array(self.linear.bias)
        return state


class Seq2seqModule(_Converted):
    """Seq2seq / PeekySeq2seq / AttentionSeq2seq: ``forward(questions (N, Tq),
    answers_in (N, Ta)) -> logits (N, Ta, V)``; ``loss(questions, answers)`` reads
    ``answers[:, :-1]`` and predicts ``answers[:, 1:]``; ``generate(questions,
    start_id, length)`` answers greedily, one step at a time."""

    def __init__(self, model):
        super().__init__()
        self._keep(model)
        self.peeky = self.model_name == "PeekySeq2seq"
        self.attend = self.model_name == "AttentionSeq2seq"
        enc, dec = model.encoder, model.decoder
        self.encoder_embed = _embedding(enc.embed.params[0])
        self.encoder_rnn = _rnn("lstm", [enc.lstm])
        self.decoder_embed = _embedding(dec.embed.params[0])
        self.decoder_rnn = _rnn("lstm", [dec.lstm])
        self.attention = _linear(dec.attention.params[0]) \
            if self.attend and dec.attention.params else None
        self.linear = _linear(*dec.affine.params)

    def encode(self, questions):
        enc_hs, (h, _) = self.encoder_rnn(self.encoder_embed(questions))
        return enc_hs, h                                   # (N, Tq, H), (1, N, H)

    def _decode(self, x, state, enc_hs, h_enc):
        T = x.shape[1]
        if self.peeky:
            peek = h_enc[0][:, None, :].expand(-1, T, -1)
            x = torch.cat([x, peek], dim=2)
        y, state = self.decoder_rnn(x, state)
        if self.attend:
            q = y if self.attention is None else self.attention(y)
            a = torch.softmax(q @ enc_hs.transpose(1, 2), dim=-1)
            y = torch.cat([a @ enc_hs, y], dim=2)
        elif self.peeky:
            y = torch.cat([y, peek], dim=2)
        return self.linear(y), state

    def forward(self, questions, answers_in):
        enc_hs, h = self.encode(questions)
        logits, _ = self._decode(self.decoder_embed(answers_in), (h, torch.zeros_like(h)),
                                 enc_hs, h)
        return logits

    def loss(self, questions, answers):
        return _loss(self(questions, answers[:, :-1]), answers[:, 1:])

    @torch.no_grad()
    def generate(self, questions, start_id, length):
        enc_hs, h = self.encode(questions)
        state = (h, torch.zeros_like(h))
        ids = torch.full((questions.shape[0], 1), int(start_id), dtype=torch.long,
                         device=questions.device)
        out = []
        for _ in range(length):
            logits, state = self._decode(self.decoder_embed(ids), state, enc_hs, h)
            ids = logits.argmax(dim=2)
            out.append(ids)
        return torch.cat(out, dim=1)

    def timelayers_state(self):
        state = {"encoder.embed.W": _array(self.encoder_embed.weight)}
        state.update(_rnn_state(self.encoder_rnn, "lstm", ["encoder.lstm"]))
        state["decoder.embed.W"] = _array(self.decoder_embed.weight)
        state.update(_rnn_state(self.decoder_rnn, "lstm", ["decoder.lstm"]))
        if self.attention is not None:
            state["decoder.attention.W"] = _array(self.attention.weight).T
        state["decoder.affine.W"] = _array(self.linear.weight).T
        state["decoder.affine.b"] = _array(self.linear.bias)
        return state


class WordVectors(_Converted):
    """CBOW / SkipGram: ``forward(ids) -> vectors``; ``out_embed`` holds the
    negative sampler's output weights (``ns_loss.W``)."""

    def __init__(self, model):
        super().__init__()
        self._keep(model)
        self.embed = _embedding(model.in_layer.params[0])
        self.out_embed = _embedding(model.ns_loss.params[0])

    def forward(self, ids):
        return self.embed(ids)

    def timelayers_state(self):
        return {"in_layer.W": _array(self.embed.weight), "ns_loss.W": _array(self.out_embed.weight)}


# --------------------------------------------------------------------------- transformers

# our feed-forward activations as nn.TransformerEncoderLayer / DecoderLayer take them
# (a partial, not a lambda, so that the module pickles)
_ACTIVATIONS = {"relu": "relu", "gelu": "gelu",
                "gelu_tanh": partial(F.gelu, approximate="tanh")}


def _layer_norm(ours, module=None):
    """``module`` (a new ``nn.LayerNorm`` when None) holding our LayerNorm's ``gamma``
    and ``beta``, with its ``eps``."""
    gamma, beta = (_tensor(p) for p in ours.params)
    if module is None:
        module = nn.LayerNorm(gamma.shape[0], eps=ours.eps, dtype=gamma.dtype)
    with torch.no_grad():
        module.weight.copy_(gamma)
        module.bias.copy_(beta)
    return module


def _copy_affine(linear, ours):
    W, b = (_tensor(p) for p in ours.params)
    with torch.no_grad():
        linear.weight.copy_(W.T)
        linear.bias.copy_(b)


def _copy_attention(mha, ours):
    """Our MultiHeadAttention into ``nn.MultiheadAttention``: ``in_proj_weight = [Wq.T;
    Wk.T; Wv.T]``, ``in_proj_bias = [bq; bk; bv]``, ``out_proj`` from ``Wo``, ``bo``.
    Its dropout (on the attention weights, which ours does not have) is set to 0."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (_tensor(p) for p in ours.params)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([Wq.T, Wk.T, Wv.T]))
        mha.in_proj_bias.copy_(torch.cat([bq, bk, bv]))
        mha.out_proj.weight.copy_(Wo.T)
        mha.out_proj.bias.copy_(bo)
    mha.dropout = 0.0


def _block(ours, dropout):
    """Our pre-norm TransformerBlock as ``nn.TransformerEncoderLayer(norm_first=True,
    batch_first=True)``, or ``nn.TransformerDecoderLayer`` with cross attention: the
    same sub-layers in the same order (``norm1``/``self_attn``, [``norm2``/
    ``multihead_attn``,] the last norm, ``linear1``, ``linear2``), dropout on each
    sub-layer's output and on the feed-forward hidden layer as ours, none on the
    attention weights."""
    D, ff = ours.ff1.params[0].shape
    kind = nn.TransformerDecoderLayer if ours.cross_attention else nn.TransformerEncoderLayer
    block = kind(D, ours.self_attn.num_heads, ff, dropout,
                 activation=_ACTIVATIONS[ours.activation_name],
                 layer_norm_eps=ours.self_attn_norm.eps, batch_first=True, norm_first=True,
                 dtype=_tensor(ours.ff1.params[0]).dtype)
    _layer_norm(ours.self_attn_norm, block.norm1)
    _copy_attention(block.self_attn, ours.self_attn)
    if ours.cross_attention:
        _layer_norm(ours.cross_attn_norm, block.norm2)
        _copy_attention(block.multihead_attn, ours.cross_attn)
    _layer_norm(ours.ff_norm, block.norm3 if ours.cross_attention else block.norm2)
    _copy_affine(block.linear1, ours.ff1)
    _copy_affine(block.linear2, ours.ff2)
    return block


def _attention_state(mha, name):
    D = mha.embed_dim
    W, b = _array(mha.in_proj_weight), _array(mha.in_proj_bias)
    state = {}
    for k, p in enumerate("qkv"):
        state[f"{name}.W{p}"] = W[k * D:(k + 1) * D].T
        state[f"{name}.b{p}"] = b[k * D:(k + 1) * D]
    state[f"{name}.Wo"] = _array(mha.out_proj.weight).T
    state[f"{name}.bo"] = _array(mha.out_proj.bias)
    return state


def _norm_state(norm, name):
    return {f"{name}.gamma": _array(norm.weight), f"{name}.beta": _array(norm.bias)}


def _block_state(block, name):
    """The library's params of one block (``name`` its dotted name, ``blocks.0``)."""
    cross = isinstance(block, nn.TransformerDecoderLayer)
    state = _norm_state(block.norm1, f"{name}.self_attn_norm")
    state.update(_attention_state(block.self_attn, f"{name}.self_attn"))
    if cross:
        state.update(_norm_state(block.norm2, f"{name}.cross_attn_norm"))
        state.update(_attention_state(block.multihead_attn, f"{name}.cross_attn"))
    state.update(_norm_state(block.norm3 if cross else block.norm2, f"{name}.ff_norm"))
    for k, linear in ((1, block.linear1), (2, block.linear2)):
        state[f"{name}.ff{k}.W"] = _array(linear.weight).T
        state[f"{name}.ff{k}.b"] = _array(linear.bias)
    return state


class TokenInput(nn.Module):
    """Ids to the first block's input, as our ``TokenInput``: ``dropout(embed(ids) *
    sqrt(D) + position[offset:offset + T])``. ``position`` is the sinusoidal table
    as a buffer (not in the ``state_dict``: the model's config rebuilds it), or the
    learned table as a Parameter."""

    def __init__(self, ours, dropout, embed=None):
        super().__init__()
        self.embed = _embedding(ours.embed.params[0]) if embed is None else embed
        self.scale = ours.scale
        table = getattr(ours.position, "table", None)
        if table is None:                                                    # learned
            self.position = nn.Parameter(_tensor(ours.position.params[0]).clone())
        else:                              # float64, in the model's dtype as ours casts it
            dtype = _array(self.embed.weight).dtype
            self.register_buffer("position", torch.from_numpy(table.astype(dtype)),
                                 persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids, offset=0):
        T = ids.shape[1]
        return self.dropout(self.embed(ids) * self.scale + self.position[offset:offset + T])


def _causal_mask(T, like):
    return nn.Transformer.generate_square_subsequent_mask(T, device=like.device, dtype=like.dtype)


def _build_stack(module, ours, dropout, causal, embed=None):
    """Give ``module`` the torch form of ``ours.input``, ``ours.blocks`` and
    ``ours.norm``: ``input`` (:class:`TokenInput`), ``blocks`` (an ``nn.ModuleList``)
    and ``norm``; ``causal`` masks the future in the self-attention."""
    module.causal = causal
    module.input = TokenInput(ours.input, dropout, embed)
    module.blocks = nn.ModuleList(_block(b, dropout) for b in ours.blocks)
    module.norm = _layer_norm(ours.norm)


def _stack(module, ids, memory=None):
    """``module.input``, its ``blocks`` (with cross attention to ``memory`` when
    given) and ``norm`` (see :func:`_build_stack`)."""
    h = module.input(ids)
    mask = _causal_mask(ids.shape[1], h) if module.causal else None
    for block in module.blocks:
        if memory is None:
            h = block(h, src_mask=mask, is_causal=module.causal)
        else:
            h = block(h, memory, tgt_mask=mask, tgt_is_causal=module.causal)
    return module.norm(h)


def _stack_state(module, prefix):
    """The library's params of :func:`_build_stack`'s parts but the embedding, their
    names after ``prefix`` (``"encoder."``, or ``""``)."""
    state = {}
    if isinstance(module.input.position, nn.Parameter):
        state[f"{prefix}input.position.W"] = _array(module.input.position)
    for k, block in enumerate(module.blocks):
        state.update(_block_state(block, f"{prefix}blocks.{k}"))
    state.update(_norm_state(module.norm, f"{prefix}norm"))
    return state


def _check_length(where, ids, max_len):
    if ids.ndim != 2 or ids.shape[1] > max_len:
        raise ShapeError(f"{where}: argument 'ids' expected shape (N, T) with T <= "
                         f"max_len={max_len}, got {tuple(ids.shape)}")


class TransformerStack(nn.Module):
    """Our TransformerEncoder, or a TransformerDecoder but its output layer:
    ``input`` (:class:`TokenInput`), ``blocks`` (``nn.TransformerEncoderLayer`` s, or
    causal ``nn.TransformerDecoderLayer`` s attending to ``memory``) and ``norm``.
    ``forward(ids (N, T), memory=None) -> (N, T, D)``."""

    def __init__(self, ours, dropout, causal, embed=None):
        super().__init__()
        _build_stack(self, ours, dropout, causal, embed)

    def forward(self, ids, memory=None):
        return _stack(self, ids, memory)


class TransformerLanguageModel(_Converted):
    """TransformerLM: ``forward(ids (N, T), context=None) -> (logits (N, T, V),
    context)``. ``input`` (:class:`TokenInput`), ``blocks`` (causal
    ``nn.TransformerEncoderLayer`` s), ``norm``, ``linear`` (its weight is
    ``input.embed.weight``, tied as in the model).

    ``context`` plays the part of a recurrent model's state: the ids read before
    (``(N, <= max_len)``), read again before ``ids`` and the window of the last
    ``max_len`` ids returned, which is what our model does in evaluation mode; in
    training mode ours reads every batch on its own, which is ``context=None``."""

    def __init__(self, model):
        super().__init__()
        self._keep(model)
        self.max_len = model.config.max_len
        _build_stack(self, model, float(model.config.dropout), causal=True)
        self.linear = _linear(*model.affine.params)
        self.linear.weight = self.input.embed.weight

    def forward(self, ids, context=None):
        _check_length("TransformerLanguageModel.forward", ids, self.max_len)
        T = ids.shape[1]
        if context is not None:
            ids = torch.cat([context, ids.to(context.dtype)], dim=1)[:, -self.max_len:]
        return self.linear(_stack(self, ids))[:, -T:], ids

    def loss(self, ids, targets, context=None):
        """Mean cross entropy and the context to read next."""
        logits, context = self(ids, context)
        return _loss(logits, targets), context

    def timelayers_state(self):
        state = {"input.embed.W": _array(self.input.embed.weight)}
        state.update(_stack_state(self, ""))
        state["affine.b"] = _array(self.linear.bias)
        return state


class TransformerSeq2seqModule(_Converted):
    """TransformerSeq2seq, with :class:`Seq2seqModule`'s calling convention:
    ``forward(questions (N, Tq), answers_in (N, Ta)) -> logits (N, Ta, V)``;
    ``loss(questions, answers)`` reads ``answers[:, :-1]`` and predicts
    ``answers[:, 1:]``; ``generate(questions, start_id, length)`` answers greedily,
    the decoder reading the whole answer so far at each step, as ours. ``encoder``
    and ``decoder`` are :class:`TransformerStack` s; one embedding serves the
    encoder's input, the decoder's input and ``linear`` (one Parameter, tied as in
    the model)."""

    def __init__(self, model):
        super().__init__()
        self._keep(model)
        self.max_len = model.config.max_len
        p = float(model.config.dropout)
        self.encoder = TransformerStack(model.encoder, p, causal=False)
        self.decoder = TransformerStack(model.decoder, p, causal=True,
                                        embed=self.encoder.input.embed)
        self.linear = _linear(*model.decoder.affine.params)
        self.linear.weight = self.encoder.input.embed.weight

    def encode(self, questions):
        _check_length("TransformerSeq2seqModule.encode", questions, self.max_len)
        return self.encoder(questions)                                    # (N, Tq, D)

    def decode(self, answers_in, memory):
        _check_length("TransformerSeq2seqModule.decode", answers_in, self.max_len)
        return self.linear(self.decoder(answers_in, memory))              # (N, Ta, V)

    def forward(self, questions, answers_in):
        return self.decode(answers_in, self.encode(questions))

    def loss(self, questions, answers):
        return _loss(self(questions, answers[:, :-1]), answers[:, 1:])

    @torch.no_grad()
    def generate(self, questions, start_id, length):
        memory = self.encode(questions)
        ids = torch.full((questions.shape[0], 1), int(start_id), dtype=torch.long,
                         device=questions.device)
        for _ in range(length):
            step = self.decode(ids, memory)[:, -1].argmax(dim=1)
            ids = torch.cat([ids, step[:, None]], dim=1)
        return ids[:, 1:]

    def timelayers_state(self):
        state = {"encoder.input.embed.W": _array(self.encoder.input.embed.weight)}
        state.update(_stack_state(self.encoder, "encoder."))
        state.update(_stack_state(self.decoder, "decoder."))
        state["decoder.affine.b"] = _array(self.linear.bias)
        return state


_CLASSES = {"lm": LanguageModel, "seq2seq": Seq2seqModule, "word2vec": WordVectors,
            "transformer-lm": TransformerLanguageModel,
            "transformer-seq2seq": TransformerSeq2seqModule}


def to_torch(model):
    """See :func:`timelayers.export.to_torch`."""
    return _CLASSES[kind_of(model, "to_torch")](model)     # every kind of EXPORT_KINDS


def from_torch(module, model=None):
    """See :func:`timelayers.export.from_torch`."""
    if not isinstance(module, _Converted):
        raise OptionError(f"from_torch: argument 'module' expected a module made by to_torch "
                          f"({', '.join(c.__name__ for c in _CLASSES.values())}), got a "
                          f"{type(module).__name__}")
    if model is None:
        model = MODEL_REGISTRY[module.model_name](**module.config)
        if module.vocab is not None:
            model.vocab = Vocabulary.from_dict(module.vocab)
    elif type(model).__name__ != module.model_name:
        raise OptionError(f"from_torch: argument 'model' expected a {module.model_name} (the "
                          f"module's), got a {type(model).__name__}")
    try:
        model.load_state_dict(module.timelayers_state())
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"from_torch: the module does not fit the model: {exc}") from None
    return model


def save_torch(model, path, recipe=None):
    """``torch.save`` of :func:`to_torch`'s ``state_dict`` with the model's name,
    config, vocabulary and ``recipe`` (plain data: loads with ``weights_only=True``)."""
    module = to_torch(model)
    payload = {"format": "timelayers-torch", "model": module.model_name, "config": module.config,
               "vocab": module.vocab, "recipe": recipe, "state_dict": module.state_dict()}
    atomic_write(path, lambda f: torch.save(payload, f))
    return path


def load_torch(path):
    """The module :func:`save_torch` wrote (built from its model's config)."""
    payload = torch.load(path, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "timelayers-torch":
        raise CheckpointError(f"{str(path)!r} is not a file written by timelayers export "
                              f"--format torch")
    model = MODEL_REGISTRY[payload["model"]](**payload["config"])
    module = to_torch(model)
    module.load_state_dict(payload["state_dict"])
    module.vocab = payload["vocab"]
    return module

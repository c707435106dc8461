"""The library's recurrent models as PyTorch modules, and back.

:func:`to_torch` builds an ``nn.Module`` from ``nn.Embedding``, ``nn.LSTM`` /
``nn.GRU`` / ``nn.RNN`` and ``nn.Linear`` holding a copy of the model's weights in
its dtype; :func:`from_torch` reads them back. The conversions only move gate
blocks, transpose and change signs (:mod:`._layouts`), so a round trip gives the
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
CBOW, SkipGram         :class:`WordVectors`: ``embed`` (the word vectors) and
                       ``out_embed`` (the negative sampler's output weights)
=====================  ==========================================================

The book's GRU (``cell="gru"``: the reset gate applied before the hidden product)
is not ``nn.GRU``'s form: it becomes :class:`BookGRU`, a loop over the steps with
``nn.GRU``'s parameter names and layout. Every module keeps ``model_name``,
``config`` (the model's constructor arguments) and ``vocab`` (a dict, or None).
The losses are the library's: the mean cross entropy over every position, label
-1 ignored (``module.loss(...)``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..backend import to_cpu
from ..errors import CheckpointError, OptionError
from ..models.base import MODEL_REGISTRY, config_dict
from ..serialization import atomic_write
from ..vocab import Vocabulary
from ._layouts import TORCH_ORDER, cell_of, kind_of, reorder, restore

__all__ = ["to_torch", "from_torch", "save_torch", "load_torch", "LanguageModel",
           "Seq2seqModule", "WordVectors", "BookGRU"]


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


_CLASSES = {"lm": LanguageModel, "seq2seq": Seq2seqModule, "word2vec": WordVectors}


def to_torch(model):
    """See :func:`timelayers.export.to_torch`."""
    kind = kind_of(model, "to_torch")
    if kind not in _CLASSES:
        raise OptionError(f"to_torch: argument 'model' expected one of the recurrent models or "
                          f"word2vec, got a {type(model).__name__} (export it with to_onnx)")
    return _CLASSES[kind](model)


def from_torch(module, model=None):
    """See :func:`timelayers.export.from_torch`."""
    if not isinstance(module, _Converted):
        raise OptionError(f"from_torch: argument 'module' expected a module made by to_torch "
                          f"(LanguageModel, Seq2seqModule or WordVectors), got a "
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

"""PyTorch twins of timelayers' models, for "same model, same batches" comparisons.

    from torch_models import TorchRnnlm, TorchBetterRnnlm, TorchAttentionSeq2seq, TorchTransformerLM

Each class mirrors one of ours layer for layer and has ``from_ours(model)``,
which builds it with our model's sizes and copies our weights into it (so both
start from the same point), and ``loss(xs, ts)``, the mean cross entropy that
our ``model.forward(xs, ts)`` returns. Not part of the library: torch is only
needed by the benchmarks and by ``tests/test_torch_models_equivalence.py``.

Weight mapping (ours -> torch)
------------------------------
- LSTM: our ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)`` with the column slices in
  the book's order **f, g, i, o** become ``weight_ih (4H, D)``, ``weight_hh
  (4H, H)`` with the row slices in torch's order **i, f, g, o**; ``bias_ih = b``
  (reordered) and ``bias_hh = 0``, frozen (torch adds the two biases, we have one;
  a trainable ``bias_hh`` would take the same gradient as ``bias_ih``, so the bias
  would move twice as fast and count twice in the clipping norm).
- Affine: our ``W (H, V)``, ``b (V,)`` -> ``Linear.weight = W.T (V, H)``, ``bias = b``.
- Embedding: ``W (V, D)`` unchanged.
- Multi-head attention: our ``Wq, Wk, Wv (D, D)`` and biases become
  ``in_proj_weight = [Wq.T; Wk.T; Wv.T] (3D, D)`` and ``in_proj_bias = [bq; bk; bv]``;
  ``Wo (D, D)``, ``bo`` -> ``out_proj`` as an affine.
- Layer norm: ``gamma``, ``beta`` -> ``weight``, ``bias``.

Recurrent state
---------------
Our language models are stateful (truncated BPTT: each forward starts from the
previous one's last ``h`` and ``c``, with no gradient across the boundary). The
torch twins do the same with ``self.state`` (detached after every forward);
``reset_state()`` clears it on both sides.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TorchRnnlm", "TorchBetterRnnlm", "TorchAttentionSeq2seq", "TorchTransformerLM",
           "lstm_to_torch", "copy_lstm", "copy_affine", "copy_attention", "copy_layer_norm"]

# torch's slice k (i, f, g, o) is our slice _TORCH_FROM_OURS[k] (ours: f=0, g=1, i=2, o=3)
_TORCH_FROM_OURS = [2, 0, 1, 3]


def _np(a):
    """A NumPy copy of ``a`` (NumPy or CuPy array)."""
    return np.array(a.get() if hasattr(a, "get") else a)


def lstm_to_torch(Wx, Wh, b):
    """Our ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)`` (f, g, i, o) as torch's
    ``weight_ih (4H, D)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
    ``bias_hh (4H,)`` (i, f, g, o; ``bias_hh`` zero), as NumPy arrays."""
    Wx, Wh, b = _np(Wx), _np(Wh), _np(b)
    H = Wh.shape[0]

    def rows(a):  # (X, 4H) columns or (4H,) -> torch's (4H, X) / (4H,) rows, reordered
        a = a.T if a.ndim == 2 else a
        return np.ascontiguousarray(a.reshape(4, H, *a.shape[1:])[_TORCH_FROM_OURS]
                                    .reshape(a.shape))

    return rows(Wx), rows(Wh), rows(b), np.zeros_like(b)


@torch.no_grad()
def copy_lstm(lstm: nn.LSTM, layer: int, ours) -> None:
    """Copy our TimeLSTM ``ours`` into layer ``layer`` of ``lstm``; its ``bias_hh``
    becomes a frozen zero."""
    w_ih, w_hh, b_ih, b_hh = lstm_to_torch(*ours.params)
    for name, value in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih),
                        ("bias_hh", b_hh)):
        getattr(lstm, f"{name}_l{layer}").copy_(torch.from_numpy(value))
    getattr(lstm, f"bias_hh_l{layer}").requires_grad_(False)


@torch.no_grad()
def copy_affine(linear: nn.Linear, ours) -> None:
    """Copy our TimeAffine ``ours`` (``W (H, V)``, ``b (V,)``) into ``linear``."""
    W, b = ours.params
    linear.weight.copy_(torch.from_numpy(_np(W).T.copy()))
    linear.bias.copy_(torch.from_numpy(_np(b)))


@torch.no_grad()
def copy_attention(mha: nn.MultiheadAttention, ours) -> None:
    """Copy our MultiHeadAttention ``ours`` into ``mha``."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (_np(p) for p in ours.params)
    mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([Wq.T, Wk.T, Wv.T])))
    mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate([bq, bk, bv])))
    mha.out_proj.weight.copy_(torch.from_numpy(Wo.T.copy()))
    mha.out_proj.bias.copy_(torch.from_numpy(bo))


@torch.no_grad()
def copy_layer_norm(norm: nn.LayerNorm, ours) -> None:
    """Copy our LayerNorm ``ours`` (``gamma``, ``beta``) into ``norm``."""
    norm.weight.copy_(torch.from_numpy(_np(ours.params[0])))
    norm.bias.copy_(torch.from_numpy(_np(ours.params[1])))


def _ids(x):
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, dtype=np.int64))


def _detach(state):
    return None if state is None else tuple(s.detach() for s in state)


class TorchRnnlm(nn.Module):
    """Twin of :class:`timelayers.models.Rnnlm` (LSTM cell): Embedding -> LSTM
    (batch first, stateful) -> Linear -> mean cross entropy (ignore index -1)."""

    def __init__(self, vocab_size=10000, wordvec_size=100, hidden_size=100):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, wordvec_size)
        self.lstm = nn.LSTM(wordvec_size, hidden_size, batch_first=True)
        self.affine = nn.Linear(hidden_size, vocab_size)
        self.state = None

    @classmethod
    def from_ours(cls, model):
        if model.config.cell != "lstm":
            raise ValueError(f"TorchRnnlm mirrors the LSTM cell only, got {model.config.cell!r}")
        c = model.config
        m = cls(c.vocab_size, c.wordvec_size, c.hidden_size).to(getattr(torch, c.dtype))
        with torch.no_grad():
            m.embed.weight.copy_(torch.from_numpy(_np(model.embed.params[0])))
        copy_lstm(m.lstm, 0, model.rnn)
        copy_affine(m.affine, model.affine)
        return m

    def reset_state(self):
        self.state = None

    def scores(self, xs):
        hs, state = self.lstm(self.embed(_ids(xs)), self.state)
        self.state = _detach(state)
        return self.affine(hs)  # (N, T, V)

    def loss(self, xs, ts):
        s = self.scores(xs)
        return F.cross_entropy(s.reshape(-1, s.shape[-1]), _ids(ts).reshape(-1), ignore_index=-1)


class TorchBetterRnnlm(nn.Module):
    """Twin of :class:`timelayers.models.BetterRnnlm`: Embedding -> Dropout ->
    LSTM x num_layers with Dropout after each -> Linear whose weight *is* the
    embedding's (tied).

    The LSTM stack is one ``nn.LSTM(num_layers, dropout=p)``: torch applies its
    dropout between the layers, the same place as ours; the dropout after the
    last layer is a separate ``nn.Dropout``. All masks are per element, as ours.
    """

    def __init__(self, vocab_size=10000, wordvec_size=650, hidden_size=650, dropout_ratio=0.5,
                 num_layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, wordvec_size)
        self.drop_in = nn.Dropout(dropout_ratio)
        self.lstm = nn.LSTM(wordvec_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout_ratio if num_layers > 1 else 0.0)
        self.drop_out = nn.Dropout(dropout_ratio)
        self.affine = nn.Linear(hidden_size, vocab_size)
        self.affine.weight = self.embed.weight  # tied: one tensor, gradients add up
        self.state = None

    @classmethod
    def from_ours(cls, model):
        c = model.config
        if c.cell != "lstm":
            raise ValueError(f"TorchBetterRnnlm mirrors the LSTM cell only, got {c.cell!r}")
        m = cls(c.vocab_size, c.wordvec_size, c.hidden_size, c.dropout_ratio,
                c.num_layers).to(getattr(torch, c.dtype))
        with torch.no_grad():
            m.embed.weight.copy_(torch.from_numpy(_np(model.embed.params[0])))
            m.affine.bias.copy_(torch.from_numpy(_np(model.affine.params[1])))
        for i, rnn in enumerate(model.rnns):
            copy_lstm(m.lstm, i, rnn)
        return m

    def reset_state(self):
        self.state = None

    def scores(self, xs):
        hs, state = self.lstm(self.drop_in(self.embed(_ids(xs))), self.state)
        self.state = _detach(state)
        return self.affine(self.drop_out(hs))  # (N, T, V)

    def loss(self, xs, ts):
        s = self.scores(xs)
        return F.cross_entropy(s.reshape(-1, s.shape[-1]), _ids(ts).reshape(-1), ignore_index=-1)


class TorchAttentionSeq2seq(nn.Module):
    """Twin of :class:`timelayers.models.AttentionSeq2seq` with dot attention.

    Encoder: Embedding -> LSTM over the question, every state kept.
    Decoder: Embedding -> LSTM started from ``(h_enc_last, 0)`` -> dot attention
    over the encoder states (``a = softmax(h_dec @ hs_enc^T)``, context
    ``a @ hs_enc``) -> Linear over ``[context, h_dec]``. The loss is the mean
    cross entropy of predicting ``ts[:, 1:]`` from ``ts[:, :-1]``.
    """

    def __init__(self, vocab_size, wordvec_size=16, hidden_size=256):
        super().__init__()
        self.enc_embed = nn.Embedding(vocab_size, wordvec_size)
        self.enc_lstm = nn.LSTM(wordvec_size, hidden_size, batch_first=True)
        self.dec_embed = nn.Embedding(vocab_size, wordvec_size)
        self.dec_lstm = nn.LSTM(wordvec_size, hidden_size, batch_first=True)
        self.affine = nn.Linear(2 * hidden_size, vocab_size)

    @classmethod
    def from_ours(cls, model):
        c = model.config
        if c.score != "dot":
            raise ValueError(f"TorchAttentionSeq2seq mirrors score='dot' only, got {c.score!r}")
        m = cls(c.vocab_size, c.wordvec_size, c.hidden_size).to(getattr(torch, c.dtype))
        with torch.no_grad():
            m.enc_embed.weight.copy_(torch.from_numpy(_np(model.encoder.embed.params[0])))
            m.dec_embed.weight.copy_(torch.from_numpy(_np(model.decoder.embed.params[0])))
        copy_lstm(m.enc_lstm, 0, model.encoder.lstm)
        copy_lstm(m.dec_lstm, 0, model.decoder.lstm)
        copy_affine(m.affine, model.decoder.affine)
        return m

    def scores(self, xs, ts_in):
        enc_hs, _ = self.enc_lstm(self.enc_embed(_ids(xs)))  # (N, Tq, H)
        h0 = enc_hs[:, -1].unsqueeze(0).contiguous()  # (1, N, H)
        dec_hs, _ = self.dec_lstm(self.dec_embed(_ids(ts_in)), (h0, torch.zeros_like(h0)))
        a = torch.softmax(dec_hs @ enc_hs.transpose(1, 2), dim=-1)  # (N, Ta, Tq)
        context = a @ enc_hs  # (N, Ta, H)
        return self.affine(torch.cat([context, dec_hs], dim=2))  # (N, Ta, V)

    def loss(self, xs, ts):
        ts = _ids(ts)
        s = self.scores(xs, ts[:, :-1])
        return F.cross_entropy(s.reshape(-1, s.shape[-1]), ts[:, 1:].reshape(-1), ignore_index=-1)


_TORCH_ACTIVATIONS = {"relu": "relu", "gelu": "gelu",
                      "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


class TorchTransformerLM(nn.Module):
    """Twin of :class:`timelayers.models.TransformerLM` in training mode (every
    batch scored on its own): Embedding * sqrt(D) + positions (the same sinusoidal
    table, or a learned one) -> Dropout -> ``nn.TransformerEncoderLayer(norm_first=True,
    batch_first=True)`` x num_layers with a causal mask -> LayerNorm -> a Linear
    whose weight *is* the embedding's (tied).

    Torch's attention also drops attention weights; ours does not, so the twin's
    attention dropout is set to 0 (the other dropouts sit where ours do: on each
    sub-layer's output and on the feed-forward hidden layer).
    """

    def __init__(self, vocab_size, d_model, num_heads, num_layers, ff_size, max_len, dropout,
                 activation="gelu_tanh", learned_positions=False):
        super().__init__()
        self.scale = float(np.sqrt(d_model))
        self.embed = nn.Embedding(vocab_size, d_model)
        if learned_positions:
            self.position = nn.Parameter(torch.zeros(max_len, d_model))
        else:
            self.register_buffer("position", torch.zeros(max_len, d_model))
        self.drop_in = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, ff_size, dropout,
                                       activation=_TORCH_ACTIVATIONS[activation],
                                       layer_norm_eps=1e-5, batch_first=True, norm_first=True)
            for _ in range(num_layers))
        for block in self.blocks:
            block.self_attn.dropout = 0.0
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.affine = nn.Linear(d_model, vocab_size)
        self.affine.weight = self.embed.weight  # tied: one tensor, gradients add up

    @classmethod
    def from_ours(cls, model):
        c = model.config
        m = cls(c.vocab_size, c.d_model, c.num_heads, c.num_layers, c.ff_size, c.max_len,
                c.dropout, c.activation, c.positional == "learned").to(getattr(torch, c.dtype))
        position = model.input.position
        table = position.params[0] if c.positional == "learned" else position.table
        with torch.no_grad():
            m.embed.weight.copy_(torch.from_numpy(_np(model.input.embed.params[0])))
            m.position.copy_(torch.from_numpy(_np(table)))
            m.affine.bias.copy_(torch.from_numpy(_np(model.affine.params[1])))
        for block, ours in zip(m.blocks, model.blocks):
            copy_layer_norm(block.norm1, ours.self_attn_norm)
            copy_attention(block.self_attn, ours.self_attn)
            copy_layer_norm(block.norm2, ours.ff_norm)
            copy_affine(block.linear1, ours.ff1)
            copy_affine(block.linear2, ours.ff2)
        copy_layer_norm(m.norm, model.norm)
        return m

    def scores(self, xs):
        xs = _ids(xs)
        T = xs.shape[1]
        h = self.drop_in(self.embed(xs) * self.scale + self.position[:T])
        mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=h.dtype)
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.affine(self.norm(h))  # (N, T, V)

    def loss(self, xs, ts):
        s = self.scores(xs)
        return F.cross_entropy(s.reshape(-1, s.shape[-1]), _ids(ts).reshape(-1), ignore_index=-1)

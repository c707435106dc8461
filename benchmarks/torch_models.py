"""The PyTorch twin of timelayers' TransformerLM, for "same model, same batches"
comparisons.

    from torch_models import TorchTransformerLM

The recurrent models and word2vec need no twin here: the library's own converter,
``timelayers.export.to_torch(model)``, gives them as ``nn.Module`` s holding our
weights (Rnnlm, SimpleRnnlm, BetterRnnlm, the GRU cells, CBOW/SkipGram, Seq2seq,
PeekySeq2seq, AttentionSeq2seq), and the benchmarks and the oracle tests use it
(``benchmarks/bench_models.py``, ``tests/models/test_torch_models_equivalence.py``).
``to_torch`` refuses the Transformers (they export to ONNX only), so the
TransformerLM keeps its hand-written twin: ``TorchTransformerLM.from_ours(model)``
builds it with our model's sizes and copies our weights into it, and
``loss(xs, ts)`` is the mean cross entropy that our ``model.forward(xs, ts)``
returns in training mode. Not part of the library: torch is only needed by the
benchmarks and by ``tests/models/test_torch_transformer_twin.py``.

Weight mapping (ours -> torch)
------------------------------
- Affine: our ``W (H, V)``, ``b (V,)`` -> ``Linear.weight = W.T (V, H)``, ``bias = b``.
- Embedding: ``W (V, D)`` unchanged.
- Multi-head attention: our ``Wq, Wk, Wv (D, D)`` and biases become
  ``in_proj_weight = [Wq.T; Wk.T; Wv.T] (3D, D)`` and ``in_proj_bias = [bq; bk; bv]``;
  ``Wo (D, D)``, ``bo`` -> ``out_proj`` as an affine.
- Layer norm: ``gamma``, ``beta`` -> ``weight``, ``bias``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TorchTransformerLM", "copy_affine", "copy_attention", "copy_layer_norm"]


def _np(a):
    """A NumPy copy of ``a`` (NumPy or CuPy array)."""
    return np.array(a.get() if hasattr(a, "get") else a)


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

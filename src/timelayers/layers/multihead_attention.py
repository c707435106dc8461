"""Multi-head scaled dot-product attention (Vaswani et al., 2017, "Attention Is
All You Need", section 3.2).

Queries come from ``x (N, Tq, D)``, keys and values from ``memory (N, Tk, D)``
(``memory = x`` for self-attention). With ``h`` heads of size ``dh = D / h``::

    Q = x @ Wq + bq,  K = memory @ Wk + bk,  V = memory @ Wv + bv    # (N, T, D)
    split each into heads:                                             # (N, h, T, dh)
    S = Q @ K^T / sqrt(dh)     (masked entries set to -inf)            # (N, h, Tq, Tk)
    A = softmax(S, axis=-1)                                            # (N, h, Tq, Tk)
    C = A @ V, heads concatenated                                      # (N, Tq, D)
    out = C @ Wo + bo                                                  # (N, Tq, D)

Each projection is one matrix product over all ``N * T`` rows, and the heads are
an axis of batched products (no loop over heads or time).

Masks (``True`` = not attended, as PyTorch's boolean masks):

- ``causal=True`` (a constructor argument): query ``i`` sees keys
  ``j <= i + Tk - Tq`` (with ``Tk == Tq``, itself and the past);
- ``key_padding_mask (N, Tk)`` bool (a ``forward`` argument): key ``j`` of row
  ``n`` is padding.

A query whose every key is masked gets NaN, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_float, check_shape
from ..backend import get_array_module
from ..errors import ShapeError
from ..functions import softmax, softmax_backward
from .base import Layer

__all__ = ["MultiHeadAttention"]


def _split_heads(x2d, N, T, heads):
    """``(N*T, D) -> (N, heads, T, D // heads)`` (a copy, C-contiguous)."""
    xp = get_array_module(x2d)
    return xp.ascontiguousarray(x2d.reshape(N, T, heads, -1).transpose(0, 2, 1, 3))


def _merge_heads(x4d):
    """``(N, heads, T, dh) -> (N*T, heads*dh)``, the inverse of :func:`_split_heads`."""
    N, heads, T, dh = x4d.shape
    return x4d.transpose(0, 2, 1, 3).reshape(N * T, heads * dh)


def _affine_backward(xp, x2d, dy2d, W, dW, db):
    """Gradients of ``y = x @ W + b``: writes ``dW``, ``db``; returns ``dx2d``."""
    xp.matmul(x2d.T, dy2d, out=dW)
    dy2d.sum(axis=0, out=db)
    return dy2d @ W.T


class MultiHeadAttention(Layer):
    """Multi-head attention, self or cross (the equations and masks: the module
    docstring).

    Parameters
    ----------
    Wq, Wk, Wv, Wo : arrays, shape (D, D)
    bq, bk, bv, bo : arrays, shape (D,)
        Kept as ``params`` in the order ``Wq, bq, Wk, bk, Wv, bv, Wo, bo``
        (PyTorch's layout: :mod:`timelayers.export.torch_modules`).
    num_heads : int
        Must divide ``D``.
    causal : bool, default False
        Mask the future (decoder self-attention).

    ``forward(x (N, Tq, D), memory=None, key_padding_mask=None) -> (N, Tq, D)``, with
    ``memory (N, Tk, D)`` (None: self-attention) and ``key_padding_mask (N, Tk)``
    bool. ``backward(dout (N, Tq, D))`` -> ``dx (N, Tq, D)``, or with ``memory``
    ``(dx, dmemory (N, Tk, D))``. ``attention_weights`` is the last forward's ``A
    (N, h, Tq, Tk)``, the cached array (``backward`` does not modify it).
    """

    param_names = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")

    def __init__(self, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, causal=False):
        super().__init__()
        where = "MultiHeadAttention"
        dims = {}
        for name, W in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv), ("Wo", Wo)):
            check_shape(where, name, W, ("D", "D"), dims)
            check_float(where, name, W)
        for name, b in (("bq", bq), ("bk", bk), ("bv", bv), ("bo", bo)):
            check_shape(where, name, b, ("D",), dims)
        D = dims["D"]
        if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) \
                or num_heads < 1 or D % num_heads:
            raise ValueError(f"{where}: argument 'num_heads' expected a positive int dividing "
                             f"D={D}, got {num_heads!r}")
        self._init_params(Wq, bq, Wk, bk, Wv, bv, Wo, bo)
        self.num_heads = int(num_heads)
        self.causal = bool(causal)
        self.cache = None
        self.attention_weights = None

    def _mask(self, xp, N, Tq, Tk, key_padding_mask):
        """Boolean mask broadcastable to ``(N, h, Tq, Tk)``, or None."""
        mask = None
        if self.causal:
            i = xp.arange(Tq)[:, None]
            j = xp.arange(Tk)[None, :]
            mask = (j > i + (Tk - Tq))[None, None]  # (1, 1, Tq, Tk)
        if key_padding_mask is not None:
            where = "MultiHeadAttention.forward"
            check_shape(where, "key_padding_mask", key_padding_mask, (N, Tk))
            if key_padding_mask.dtype != np.bool_:
                raise ShapeError(f"{where}: argument 'key_padding_mask' expected a bool array "
                                 f"(True = padding), got dtype {key_padding_mask.dtype}")
            pad = key_padding_mask[:, None, None, :]  # (N, 1, 1, Tk)
            mask = pad if mask is None else (mask | pad)
        return mask

    def forward(self, x, memory=None, key_padding_mask=None):
        Wq, bq, Wk, bk, Wv, bv, Wo, bo = self.params
        where = "MultiHeadAttention.forward"
        D = Wq.shape[0]
        dims = check_shape(where, "x", x, ("N", "Tq", D))
        check_float(where, "x", x)
        self_attention = memory is None
        if not self_attention:
            check_shape(where, "memory", memory, ("N", "Tk", D), dims)
            check_float(where, "memory", memory)
        xp = get_array_module(Wq)
        N, Tq, _ = x.shape
        x2d = x.astype(Wq.dtype, copy=False).reshape(N * Tq, D)
        m2d = x2d if self_attention else memory.astype(Wq.dtype, copy=False).reshape(-1, D)
        Tk = m2d.shape[0] // N
        heads = self.num_heads
        scale = 1.0 / math.sqrt(D // heads)

        q2d = x2d @ Wq
        q2d += bq
        q2d *= scale
        k2d = m2d @ Wk
        k2d += bk
        v2d = m2d @ Wv
        v2d += bv
        q = _split_heads(q2d, N, Tq, heads)  # (N, h, Tq, dh), scaled
        k = _split_heads(k2d, N, Tk, heads)  # (N, h, Tk, dh)
        v = _split_heads(v2d, N, Tk, heads)  # (N, h, Tk, dh)

        s = q @ k.transpose(0, 1, 3, 2)  # (N, h, Tq, Tk)
        mask = self._mask(xp, N, Tq, Tk, key_padding_mask)
        if mask is not None:
            s = xp.where(mask, xp.asarray(-xp.inf, dtype=s.dtype), s)
        a = softmax(s)  # (N, h, Tq, Tk)
        c2d = _merge_heads(a @ v)  # (N*Tq, D)
        out = c2d @ Wo
        out += bo
        # the inputs as (N*T, D) rows, Q (scaled), K, V split into heads, the weights and
        # the concatenated contexts
        self.cache = (x2d, m2d, self_attention, q, k, v, a, c2d, scale, (N, Tq, Tk))
        self.attention_weights = a
        return out.reshape(N, Tq, D)

    def backward(self, dout):
        Wq, _, Wk, _, Wv, _, Wo, _ = self.params
        dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo = self.grads
        x2d, m2d, self_attention, q, k, v, a, c2d, scale, (N, Tq, Tk) = self.cache
        xp = get_array_module(Wq)
        D = Wq.shape[0]
        heads = self.num_heads
        dout2d = dout.reshape(N * Tq, D)
        dc2d = _affine_backward(xp, c2d, dout2d, Wo, dWo, dbo)  # (N*Tq, D)
        dc = _split_heads(dc2d, N, Tq, heads)  # (N, h, Tq, dh)
        dv = a.transpose(0, 1, 3, 2) @ dc  # (N, h, Tk, dh)
        ds = softmax_backward(a, dc @ v.transpose(0, 1, 3, 2))  # (N, h, Tq, Tk); 0 where masked
        dq = ds @ k  # (N, h, Tq, dh), the gradient of the scaled Q
        dk = ds.transpose(0, 1, 3, 2) @ q  # (N, h, Tk, dh)
        dq2d = _merge_heads(dq)
        dq2d *= scale
        dx = _affine_backward(xp, x2d, dq2d, Wq, dWq, dbq)  # (N*Tq, D)
        dm = _affine_backward(xp, m2d, _merge_heads(dk), Wk, dWk, dbk)  # (N*Tk, D)
        dm += _affine_backward(xp, m2d, _merge_heads(dv), Wv, dWv, dbv)
        if self_attention:
            dx += dm
            return dx.reshape(N, Tq, D)
        return dx.reshape(N, Tq, D), dm.reshape(N, Tk, D)

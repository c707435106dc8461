"""Attention: WeightSum, AttentionWeight, Attention and TimeAttention.

A decoder state ``h`` scores every encoder state ``hs[:, t]``; the scores go
through a softmax over the encoder steps and weight a sum of the encoder states
(the context vector)::

    s[n, t] = score(h[n], hs[n, t])        # (N, Te)
    a[n]    = softmax(s[n])                # (N, Te), sums to 1 over Te
    c[n]    = sum_t a[n, t] * hs[n, t]     # (N, H)

Two scores are available:

- ``score="dot"`` (the book's): ``score(h, h_enc) = h . h_enc``; no params.
- ``score="general"`` (Luong et al., 2015, "Effective Approaches to
  Attention-based Neural Machine Translation"): ``score(h, h_enc) = h . (W h_enc)
  = (h @ W) . h_enc`` with a learned ``W (H, H)``, which is then the layer's
  only param (``param_names = ("W",)``).

:class:`WeightSum` and :class:`AttentionWeight` are the two halves;
:class:`Attention` chains them for one decoder step, as in the book.
:class:`TimeAttention` handles all decoder steps at once with batched matrix
products (no loop over time).
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float, check_shape
from ..backend import get_array_module
from ..functions import softmax, softmax_backward
from ..threads import parallel_rows
from .base import Layer

__all__ = ["WeightSum", "AttentionWeight", "Attention", "TimeAttention"]

_SCORES = ("dot", "general")

# TimeAttention's forward on NumPy arrays splits the batch's rows between threads
# when each thread gets at least this many encoder-state elements (``Te * H`` a
# row), enough reading (each encoder state twice, in the two batched products)
# to pay for handing work to a thread: answering 1,000 date questions at once
# (7.4M elements), not a training batch of 128 (0.95M).
_MIN_ELEMENTS_PER_THREAD = 1 << 20


def _score_params(layer, where, score, W):
    """Validate ``score``/``W`` and set up the layer's params."""
    if score not in _SCORES:
        raise ValueError(f"{where}: argument 'score' expected one of {_SCORES}, got {score!r}")
    layer.score = score
    if score == "general":
        if W is None:
            raise ValueError(f"{where}: argument 'W' (shape (H, H)) is required with "
                             f"score='general', got None")
        check_shape(where, "W", W, ("H", "H"))
        check_float(where, "W", W)
        layer.param_names = ("W",)
        layer._init_params(W)
    elif W is not None:
        raise ValueError(f"{where}: argument 'W' is only used with score='general', "
                         f"got score={score!r} and an array W")


def _keys_and_query(layer, where, names, hs, h, shapes):
    """Check the encoder states ``hs (N, T, H)`` and the decoder state(s) ``h``
    of an attention ``forward`` (``names`` and ``shapes``, with named dims, for
    the two); with ``score="general"`` cast both to ``W``'s dtype. Returns
    ``hs, h`` and the query ``q``: ``h``, or ``h @ W``."""
    dims = {"H": layer.params[0].shape[0]} if layer.params else {}
    dims = check_shape(where, names[0], hs, shapes[0], dims)
    check_shape(where, names[1], h, shapes[1], dims)
    check_float(where, names[0], hs)
    check_float(where, names[1], h)
    if not layer.params:
        return hs, h, h
    (W,) = layer.params
    hs = hs.astype(W.dtype, copy=False)
    h = h.astype(W.dtype, copy=False)
    return hs, h, h @ W


class WeightSum(Layer):
    """Weighted sum of encoder states: ``c[n] = sum_t a[n, t] * hs[n, t]``.

    Shapes: ``hs (N, T, H)``, ``a (N, T)`` -> ``c (N, H)``. No params.
    Caches ``hs`` and ``a``; ``backward(dc (N, H))`` returns ``(dhs (N, T, H),
    da (N, T))``.
    """

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, hs, a):
        where = "WeightSum.forward"
        dims = check_shape(where, "hs", hs, ("N", "T", "H"))
        check_shape(where, "a", a, ("N", "T"), dims)
        check_float(where, "hs", hs)
        check_float(where, "a", a)
        self.cache = (hs, a)
        return (a[:, None, :] @ hs)[:, 0, :]  # (N, 1, T) @ (N, T, H) -> (N, H)

    def backward(self, dc):
        hs, a = self.cache
        dhs = a[:, :, None] * dc[:, None, :]  # (N, T, H)
        da = (hs @ dc[:, :, None])[:, :, 0]  # (N, T)
        return dhs, da


class AttentionWeight(Layer):
    """Attention weights ``softmax(score(h, hs))`` of one decoder state (module docstring).

    Parameters
    ----------
    score : {"dot", "general"}
    W : array, shape (H, H), optional
        Required with ``score="general"`` (``params[0]``), not allowed otherwise.

    ``forward(hs (N, T, H), h (N, H)) -> a (N, T)``, caching ``hs``, ``h``, the query
    (``h`` or ``h @ W``) and ``a``; ``backward(da (N, T)) -> (dhs (N, T, H), dh (N, H))``.
    """

    def __init__(self, score="dot", W=None):
        super().__init__()
        _score_params(self, "AttentionWeight", score, W)
        self.cache = None

    def forward(self, hs, h):
        hs, h, q = _keys_and_query(self, "AttentionWeight.forward", ("hs", "h"), hs, h,
                                   (("N", "T", "H"), ("N", "H")))  # q (N, H)
        s = (hs @ q[:, :, None])[:, :, 0]  # (N, T)
        a = softmax(s)
        self.cache = (hs, h, q, a)
        return a

    def backward(self, da):
        hs, h, q, a = self.cache
        ds = softmax_backward(a, da)  # (N, T)
        dhs = ds[:, :, None] * q[:, None, :]  # (N, T, H)
        dq = (ds[:, None, :] @ hs)[:, 0, :]  # (N, H)
        if not self.params:
            return dhs, dq
        (W,) = self.params
        xp = get_array_module(W)
        xp.matmul(h.T, dq, out=self.grads[0])
        return dhs, dq @ W.T


class Attention(Layer):
    """Attention for one decoder step: :class:`AttentionWeight`, then :class:`WeightSum`.

    Parameters
    ----------
    score : {"dot", "general"}
    W : array, shape (H, H), optional
        As in :class:`AttentionWeight`, whose ``params`` and ``grads`` lists are this one's.

    ``forward(hs (N, T, H), h (N, H)) -> c (N, H)``; ``backward(dc (N, H)) -> (dhs (N, T,
    H), dh (N, H))``. ``attention_weight (N, T)``: the last forward's weights (for
    plotting; ``backward`` does not modify them).
    """

    def __init__(self, score="dot", W=None):
        super().__init__()
        self.attention_weight_layer = AttentionWeight(score, W)
        self.weight_sum_layer = WeightSum()
        self.score = score
        self.param_names = self.attention_weight_layer.param_names
        self.params = self.attention_weight_layer.params
        self.grads = self.attention_weight_layer.grads
        self.attention_weight = None

    def forward(self, hs, h):
        a = self.attention_weight_layer.forward(hs, h)
        hs = self.attention_weight_layer.cache[0]  # in the params' dtype
        c = self.weight_sum_layer.forward(hs, a)
        self.attention_weight = a
        return c

    def backward(self, dc):
        dhs0, da = self.weight_sum_layer.backward(dc)
        dhs1, dh = self.attention_weight_layer.backward(da)
        dhs1 += dhs0
        return dhs1, dh


def _attend_on_threads(q, hs_enc):
    """``a = softmax(q @ hs_enc^T) (N, Td, Te)`` and ``c = a @ hs_enc (N, Td, H)``
    for NumPy arrays, on row blocks spread over threads when the batch is large
    (see ``_MIN_ELEMENTS_PER_THREAD``); every row's products are made on their
    own, so the numbers do not depend on the split."""
    N, Te, H = hs_enc.shape
    dt = np.result_type(q, hs_enc)
    a = np.empty(q.shape[:2] + (Te,), dtype=dt)
    c = np.empty(q.shape, dtype=dt)

    def rows(start, stop):
        k = hs_enc[start:stop]
        a[start:stop] = softmax(np.matmul(q[start:stop], k.transpose(0, 2, 1)))
        np.matmul(a[start:stop], k, out=c[start:stop])

    parallel_rows(rows, N, min_rows=max(1, _MIN_ELEMENTS_PER_THREAD // max(1, Te * H)))
    return a, c


class TimeAttention(Layer):
    """Attention for every decoder step at once (the book's ``TimeAttention``, ch. 8):
    :class:`Attention` at each step (see the module docstring), as batched products.

    Parameters
    ----------
    score : {"dot", "general"}
    W : array, shape (H, H), optional
        Required with ``score="general"`` (kept as ``params[0]``), not allowed
        otherwise.

    ``forward(hs_enc (N, Te, H), hs_dec (N, Td, H))`` -> contexts ``(N, Td, H)``;
    ``backward(dout (N, Td, H))`` -> ``(dhs_enc (N, Te, H), dhs_dec (N, Td, H))``.
    Caches ``hs_enc``, ``hs_dec``, the queries and the weights; those of the last
    forward are ``attention_weights (N, Td, Te)`` (``[n, i, j]``: how much decoder
    step ``i`` attends to encoder step ``j``), the cached array, never modified by
    ``backward``.
    """

    def __init__(self, score="dot", W=None):
        super().__init__()
        _score_params(self, "TimeAttention", score, W)
        self.cache = None
        self.attention_weights = None

    def forward(self, hs_enc, hs_dec):
        hs_enc, hs_dec, q = _keys_and_query(self, "TimeAttention.forward", ("hs_enc", "hs_dec"),
                                            hs_enc, hs_dec, (("N", "Te", "H"), ("N", "Td", "H")))
        if get_array_module(hs_enc) is not np:
            s = q @ hs_enc.transpose(0, 2, 1)  # (N, Td, Te)
            a = softmax(s)  # (N, Td, Te)
            c = a @ hs_enc  # (N, Td, H)
        else:
            a, c = _attend_on_threads(q, hs_enc)
        self.cache = (hs_enc, hs_dec, q, a)
        self.attention_weights = a
        return c

    def backward(self, dout):
        hs_enc, hs_dec, q, a = self.cache
        da = dout @ hs_enc.transpose(0, 2, 1)  # (N, Td, Te)
        dhs_enc = a.transpose(0, 2, 1) @ dout  # (N, Te, H), through c = a @ hs_enc
        ds = softmax_backward(a, da)  # (N, Td, Te)
        dhs_enc += ds.transpose(0, 2, 1) @ q  # (N, Te, H), through s = q @ hs_enc^T
        dq = ds @ hs_enc  # (N, Td, H)
        if not self.params:
            return dhs_enc, dq
        (W,) = self.params
        xp = get_array_module(W)
        H = W.shape[0]
        xp.matmul(hs_dec.reshape(-1, H).T, dq.reshape(-1, H), out=self.grads[0])
        return dhs_enc, dq @ W.T

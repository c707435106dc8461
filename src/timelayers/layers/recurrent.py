"""Recurrent layers: one-step cells and layers that run them over whole sequences.

Cells (one time step, the book's building blocks)
    :class:`RNN` (tanh), :class:`LSTM`, :class:`GRU`.
Time layers (``xs (N, T, D) -> hs (N, T, H)``)
    :class:`TimeRNN`, :class:`TimeLSTM`, :class:`TimeGRU`, :class:`TimeBiLSTM`.

Parameter layout
----------------
The book's layout, so that its weights load unchanged. Gates are stacked along
the columns, each slice ``H`` wide, and every pre-activation is
``x @ Wx + h @ Wh + b``:

==========  ============  ============  ========  ==============================
cell        ``Wx``        ``Wh``        ``b``     column slices, in order
==========  ============  ============  ========  ==============================
RNN         ``(D, H)``    ``(H, H)``    ``(H,)``  the one pre-activation
LSTM        ``(D, 4H)``   ``(H, 4H)``   ``(4H,)`` ``f`` (forget), ``g`` (cell
                                                  candidate), ``i`` (input),
                                                  ``o`` (output)
GRU         ``(D, 3H)``   ``(H, 3H)``   ``(3H,)`` ``z`` (update), ``r`` (reset),
                                                  candidate ``h~``
==========  ============  ============  ========  ==============================

``GRU``/``TimeGRU`` with ``reset_after=True`` take a second bias ``bh (3H,)``,
added to the hidden-side product (the cuDNN/PyTorch form, see :class:`GRU`).

How it is made fast
-------------------
The time layers compute the input projection ``x @ Wx + b`` for all ``T``
steps as one ``(T*N, D) @ (D, G*H)`` matrix product before the time loop; the
loop does only the ``h @ Wh`` product and the gate arithmetic, writing each
step into preallocated time-major buffers (``(T, N, ...)``, so that every step
works on contiguous ``(N, ...)`` blocks; inputs and outputs stay batch-major
``(N, T, ...)``). No objects and no parameter-sized temporaries are made per
step. ``backward`` first computes the local derivatives of all steps at once,
then runs the reverse loop, which gathers the pre-activation gradients of all
steps in one ``(T, N, G*H)`` buffer ``dA``; ``dWx = X^T dA``, ``dx = dA Wx^T``,
``db = sum(dA)`` and ``dWh = H_prev^T dA`` (``H_prev``: the stacked previous
hidden states, kept in the same ``(T+1, N, H)`` buffer as the outputs) are then
single matrix products over all steps. Everything is computed in the dtype of
the params: float32 stays float32.

The LSTM goes further (see ``_lstm_forward``): its buffer ``XH (T, N, D+1+H)``
holds ``[x_t, 1, h_{t-1}]``, so the bias rides inside the products and
``[dWx; db]`` comes from one product; the four gates take one ``exp`` per
element (``sigmoid(a) = 1 / (1 + exp(-a))``, ``tanh(a) = 2 sigmoid(2a) - 1``,
the factors folded into a scaled copy of the weights), NumPy's float32
``tanh`` being about twice as slow as its ``exp``; and when the input is small
next to the hidden state (``4 (D+1) <= H``, the seq2seq models' character
embeddings) each step makes one product ``[x_t, 1, h_{t-1}] @ [Wx; b; Wh]``
straight into its pre-activations instead of reading a precomputed
``x @ Wx`` back from memory. With few rows (``N <= 32``) the per-step products
are computed transposed (``Wh^T h^T``), which OpenBLAS runs faster for such
thin shapes; for large blocks the backward computes the local derivatives step
by step, while each step's block is in the cache.

The rows of a batch are independent sequences: a large batch (at least 32 rows
and 8192 row-units a block) is cut into row blocks that run as separate
sequences on :func:`timelayers.functions.run_parallel`, each on a core of its
own with the BLAS held to one thread, and the blocks' parameter gradients are
summed (see docs/ARCHITECTURE.md, "Threads"). The LSTM prepares its weight
copies (scaled, transposed) once per call and the blocks share them.

References
----------
S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural
Computation 9(8), 1997 (with the forget gate of Gers, Schmidhuber and
Cummins, 2000).
K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
Statistical Machine Translation", EMNLP 2014 (the GRU).
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import NamedTuple

from .._checks import check_float, check_ndim, check_shape
from ..backend import get_array_module, is_cupy_array
from ..parallel import can_run_parallel, get_num_threads, run_parallel
from ..errors import ShapeError
from .base import Layer

__all__ = ["RNN", "LSTM", "GRU", "TimeRNN", "TimeLSTM", "TimeGRU", "TimeBiLSTM"]


# --------------------------------------------------------------------------- helpers

def _sigmoid_(x):
    """Logistic function in place, as ``0.5 * (1 + tanh(x / 2))`` (never overflows).

    Works on strided views; returns ``x``.
    """
    xp = get_array_module(x)
    x *= 0.5
    xp.tanh(x, out=x)
    x += 1
    x *= 0.5
    return x


def _check_params(where, Wx, Wh, b, gates, bh=None):
    """Check ``Wx (D, G*H)``, ``Wh (H, G*H)``, ``b (G*H,)`` (and ``bh``): shapes
    that agree, one floating-point dtype."""
    check_ndim(where, "Wh", Wh, 2)
    H = Wh.shape[0]
    check_shape(where, "Wh", Wh, (H, gates * H))
    check_shape(where, "Wx", Wx, (None, gates * H))
    check_shape(where, "b", b, (gates * H,))
    named = [("Wx", Wx), ("Wh", Wh), ("b", b)]
    if bh is not None:
        check_shape(where, "bh", bh, (gates * H,))
        named.append(("bh", bh))
    for name, p in named:
        check_float(where, name, p)
        if p.dtype != Wx.dtype:
            raise ShapeError(f"{where}: argument {name!r} expected dtype {Wx.dtype} (the dtype "
                             f"of 'Wx'), got {p.dtype}")


def _ignore_overflow(xp):
    """``numpy.errstate(over="ignore", under="ignore")`` for NumPy (``exp`` of a
    large pre-activation is inf or 0, both right in ``1 / (1 + exp(.))``);
    nothing to silence for CuPy."""
    if hasattr(xp, "errstate"):
        return xp.errstate(over="ignore", under="ignore")
    return contextlib.nullcontext()


def _zeros_or(x, shape, like):
    """``x`` cast to the dtype of ``like``, or zeros of ``shape`` when ``x`` is None."""
    xp = get_array_module(like)
    if x is None:
        return xp.zeros(shape, dtype=like.dtype)
    return x.astype(like.dtype, copy=False)


def _time_major(xs):
    """``(N, T, D) -> (T*N, D)``, C-contiguous, rows ordered by step then sample."""
    xp = get_array_module(xs)
    N, T, D = xs.shape
    return xp.ascontiguousarray(xs.transpose(1, 0, 2)).reshape(T * N, D)


def _batch_major(a, N, T):
    """``(T*N, X)`` or ``(T, N, X)`` -> C-contiguous ``(N, T, X)``."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.reshape(T, N, -1).transpose(1, 0, 2))


def _with_initial(h0, T):
    """A ``(T+1, N, H)`` buffer whose ``[0]`` is ``h0``: ``[t]`` is the state before
    step ``t``, ``[t+1]`` the state after it, and ``[:T]`` the stacked previous states."""
    xp = get_array_module(h0)
    buf = xp.empty((T + 1,) + h0.shape, dtype=h0.dtype)
    buf[0] = h0
    return buf


# A row of 1024 bytes or a multiple of it maps every row of a column onto the same
# few cache sets (a 4 KiB stride onto one set): reading such a matrix down its
# columns, as a transposed copy does, then misses the cache at every element,
# about 5x slower for Wh (256, 1024) float32. Rows padded by 64 bytes avoid it.
_ALIASING_ROW_BYTES = 1024
_ROW_PAD_BYTES = 64


def _padded_empty(shape, dtype, xp):
    """An uninitialised 2-D ``shape`` array whose rows are padded when their length
    in bytes is a multiple of ``_ALIASING_ROW_BYTES`` (a view into a wider
    buffer; NumPy only)."""
    rows, cols = shape
    if xp.__name__ != "numpy":
        return xp.empty(shape, dtype=dtype)
    itemsize = xp.dtype(dtype).itemsize
    if rows < 2 or (cols * itemsize) % _ALIASING_ROW_BYTES:
        return xp.empty(shape, dtype=dtype)
    return xp.empty((rows, cols + _ROW_PAD_BYTES // itemsize), dtype=dtype)[:, :cols]


def _transposed_copy(a):
    """C-contiguous copy of ``a.T`` for a 2-D ``a (R, C)``: ``(C, R)``, going
    through a padded copy when ``a``'s rows would alias in the cache."""
    xp = get_array_module(a)
    stride = a.strides[0]
    if xp.__name__ == "numpy" and a.shape[0] > 1 and stride % _ALIASING_ROW_BYTES == 0:
        padded = _padded_empty(a.shape, a.dtype, xp)
        if padded.strides[0] != stride:
            padded[...] = a
            a = padded
    return xp.ascontiguousarray(a.T)


# --------------------------------------------------------------------------- RNN math
# Each family has a forward over a whole sequence, returning ``hs (N, T, H)`` and a
# cache, and a backward that writes the param grads in place and returns the input
# gradient and the gradient of the initial state(s). The cells are the T = 1 case.
# Internally the buffers are time-major, ``(T, N, ...)``, so that every step works
# on contiguous ``(N, ...)`` blocks.

def _rnn_forward(xs, h0, Wx, Wh, b):
    xp = get_array_module(Wx)
    N, T, D = xs.shape
    H = Wh.shape[0]
    X = _time_major(xs)                               # (T*N, D)
    Hs = _with_initial(h0, T)                         # (T+1, N, H)
    xp.matmul(X, Wx, out=Hs[1:].reshape(T * N, H))    # x @ Wx for all steps at once
    Hs[1:] += b
    work = xp.empty((N, H), dtype=Wx.dtype)
    for t in range(T):
        a = Hs[t + 1]                                 # (N, H)
        xp.matmul(Hs[t], Wh, out=work)
        a += work
        xp.tanh(a, out=a)                             # h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    return _batch_major(Hs[1:], N, T), (X, Hs)


def _rnn_backward(dhs, dh_last, cache, Wx, Wh, grads):
    xp = get_array_module(Wx)
    X, Hs = cache
    T, N, H = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
    dA = Hs[1:] * Hs[1:]                              # (T, N, H): 1 - h^2, then dA
    xp.subtract(1, dA, out=dA)
    dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
    dh = xp.zeros((N, H), dtype=Wx.dtype) if dh_last is None else dh_last.copy()
    dh_t = xp.empty((N, H), dtype=Wx.dtype)
    WhT = Wh.T
    for t in range(T - 1, -1, -1):
        xp.add(dhs[t], dh, out=dh_t)
        da = dA[t]
        da *= dh_t
        xp.matmul(da, WhT, out=dh)
    dA2 = dA.reshape(T * N, H)
    xp.matmul(X.T, dA2, out=grads[0])
    xp.matmul(Hs[:-1].reshape(T * N, H).T, dA2, out=grads[1])
    dA2.sum(axis=0, out=grads[2])
    return _batch_major(xp.matmul(dA2, Wx.T), N, T), dh


# --------------------------------------------------------------------------- LSTM math

def _gate_scales(H, dt, xp):
    """``(4H,)`` column factors ``-1`` on the sigmoid slices f, i, o and ``-2`` on
    the tanh slice g: with ``u = exp(scale * a)``, ``1 / (1 + u)`` is
    ``sigmoid(a)`` on f, i, o and ``(tanh(a) + 1) / 2`` on g."""
    scale = xp.full(4 * H, -1.0, dtype=dt)
    scale[H:2 * H] = -2.0
    return scale


class _LSTMStepWeights(NamedTuple):
    """The weights of an LSTM forward, prepared once per call (and shared by its
    row blocks); see :func:`_lstm_step_weights`."""

    prescaled: bool     # the gate factors are folded into the weights
    fused: bool         # one product per step: XH[t] @ W
    transposed: bool    # per-step products computed as W_T @ XH[t]^T
    scale: object       # (4H,) gate factors
    W: object           # [Wx; b] * scale (D+1, 4H), [Wx; b; Wh] * scale (K, 4H), or None
    step: object        # per-step weights: Wh (* scale) (H, 4H), or W_T (4H, K or H)


def _lstm_step_weights(Wx, Wh, b, N, T):
    """Prepare the weights for a forward over blocks of ``N`` rows and ``T`` steps
    (the choices are described in :func:`_lstm_forward`)."""
    xp = get_array_module(Wx)
    D, H = Wx.shape[0], Wh.shape[0]
    dt = Wx.dtype
    K = D + 1 + H
    prescaled = K < T * N
    fused = prescaled and 4 * (D + 1) <= H
    # (the transposed weights are a copy per call: not for a step or two)
    transposed = N <= _TRANSPOSED_STEP_MAX_ROWS and (prescaled or T >= 4)
    scale = _gate_scales(H, dt, xp)
    W = None
    if prescaled:
        W = _padded_empty((K if fused else D + 1, 4 * H), dt, xp)
        W[:D] = Wx
        W[D] = b
        if fused:
            W[D + 1:] = Wh
        W *= scale
    if fused:
        step = W
    elif prescaled:
        step = xp.multiply(Wh, scale, out=_padded_empty(Wh.shape, dt, xp))
    else:
        step = Wh
    if transposed:
        step = _transposed_copy(step)
    return _LSTMStepWeights(prescaled, fused, transposed, scale, W, step)


def _lstm_forward(xs, h0, c0, Wx, Wh, b, weights=None):
    """LSTM over ``xs (N, T, D)``; returns ``hs (N, T, H)`` and the cache.

    Layout: ``XH (T, N, D+1+H)`` holds ``[x_t, 1, h_{t-1}]`` for every step (each
    step writes its ``h_t`` into the next step's row), so that the bias rides in
    the products and backward gets ``dWx``, ``db`` and ``dWh`` from ``XH``.

    - Training-sized calls (``D+1+H < T*N`` rows): the factors -1 / -2 that turn
      the gates into one ``exp`` (below) are folded into a scaled copy of the
      weights, stacked with the bias. Small inputs (``4 (D+1) <= H``) then take
      one product per step, ``XH[t] @ [Wx; b; Wh]``, written straight into the
      step's pre-activations: the ``D+1`` extra rows cost less than a separate
      ``(T*N, D)`` product, whose output would go to memory and come back.
      Otherwise ``[x, 1] @ [Wx; b]`` runs for all steps at once and ``h @ Wh``
      per step.
    - Few rows (generation, one step at a time): no weight copies; ``x @ Wx +
      b`` and the pre-activations are scaled.

    With few rows (``N <= 32``, the language models' batches) and more than a
    few steps, each step's product is computed transposed, ``W^T @ XH[t]^T``:
    OpenBLAS splits the long side of a product between its threads, and packs
    the weights faster in this orientation (about 25% faster for
    ``(20, 650) @ (650, 2600)``).

    All four gates come from one ``exp`` per element: ``sigmoid(a) = 1 / (1 +
    exp(-a))`` and ``tanh(a) = 2 / (1 + exp(-2a)) - 1`` (NumPy's float32 ``exp``
    is about twice as fast as its ``tanh``).
    """
    xp = get_array_module(Wx)
    N, T, D = xs.shape
    H = Wh.shape[0]
    dt = Wx.dtype
    K = D + 1 + H
    if weights is None:
        weights = _lstm_step_weights(Wx, Wh, b, N, T)
    prescaled, fused, transposed, scale, W, step = weights
    XH = xp.empty((T, N, K), dtype=dt)                # [x_t, 1, h_{t-1}]
    XH[:, :, :D] = xs.transpose(1, 0, 2)
    XH[:, :, D] = 1
    XH[0, :, D + 1:] = h0
    A = xp.empty((T, N, 4 * H), dtype=dt)            # pre-activations, then gates in place
    if prescaled and not fused:
        xp.matmul(XH.reshape(T * N, K)[:, :D + 1], W, out=A.reshape(T * N, 4 * H))
    elif not prescaled:
        xp.matmul(XH.reshape(T * N, K)[:, :D], Wx, out=A.reshape(T * N, 4 * H))
        A += b
    if transposed:
        work_T = xp.empty((4 * H, N), dtype=dt)
    work = None if fused or transposed else xp.empty((N, 4 * H), dtype=dt)
    Cs = _with_initial(c0, T)                         # (T+1, N, H)
    TC = xp.empty((T, N, H), dtype=dt)                # tanh(c_t)
    h_last = xp.empty((N, H), dtype=dt)
    gi = xp.empty((N, H), dtype=dt)
    with _ignore_overflow(xp):                        # exp(-a) = inf for a << 0: gate 0, right
        for t in range(T):
            a = A[t]                                  # (N, 4H)
            if transposed:
                xp.matmul(step, XH[t].T if fused else XH[t, :, D + 1:].T, out=work_T)
                if fused:
                    a[...] = work_T.T
                else:
                    a += work_T.T
            elif fused:
                xp.matmul(XH[t], step, out=a)
            else:
                xp.matmul(XH[t, :, D + 1:], step, out=work)
                a += work
            if not prescaled:
                a *= scale
            xp.exp(a, out=a)
            a += 1
            xp.reciprocal(a, out=a)                   # f, (g + 1) / 2, i, o
            f, g, i, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            g *= 2
            g -= 1                                    # g = tanh(.)
            c = Cs[t + 1]
            xp.multiply(f, Cs[t], out=c)
            xp.multiply(g, i, out=gi)
            c += gi                                   # c_t = f * c_{t-1} + g * i
            xp.tanh(c, out=TC[t])
            h = XH[t + 1, :, D + 1:] if t + 1 < T else h_last
            xp.multiply(o, TC[t], out=h)              # h_t = o * tanh(c_t)
    hs = xp.empty((N, T, H), dtype=dt)
    hs[:, :T - 1] = XH[1:, :, D + 1:].transpose(1, 0, 2)
    hs[:, T - 1] = h_last
    return hs, (XH, A, None, Cs, TC)


# Up to this many rows, the LSTM's per-step products are computed transposed
# (see _lstm_forward); measured faster for N = 20 and 32, slower for 64.
_TRANSPOSED_STEP_MAX_ROWS = 32

# Below this many elements per (N, H) block, the LSTM backward computes the local
# derivatives of all steps in a few full-width passes (fewer NumPy calls); from
# it on, step by step inside the loop, where each step's (N, 4H) block is still
# in cache (the full-width passes over (T, N, 4H) arrays wait on memory).
_STEPWISE_BACKWARD_MIN = 16384


def _lstm_hidden_weights(Wh, N):
    """The weights of the backward's per-step product ``dA_t @ Wh^T`` over blocks
    of ``N`` rows, prepared once per call: ``Wh (H, 4H)`` itself for few rows
    (computed transposed, as ``(Wh @ dA_t^T)^T``), else a copy of ``Wh^T (4H, H)``."""
    return Wh if N <= _TRANSPOSED_STEP_MAX_ROWS else _transposed_copy(Wh)


def _lstm_backward(dhs, dh_last, dc_last, cache, Wx, Wh, grads, hidden_weights=None):
    xp = get_array_module(Wx)
    XH, A, _, Cs, TC = cache
    T, N, H = TC.shape
    D = XH.shape[2] - 1 - H
    dt = Wx.dtype
    dh = xp.zeros((N, H), dtype=dt) if dh_last is None else dh_last.copy()
    dc = xp.zeros((N, H), dtype=dt) if dc_last is None else dc_last.copy()
    dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
    if hidden_weights is None:
        hidden_weights = _lstm_hidden_weights(Wh, N)
    if hidden_weights.shape[0] == H:                  # Wh: transposed products
        hidden = partial(_times_transposed, Wh, xp.empty((H, N), dtype=dt))
    else:                                             # Wh^T (4H, H): plain products

        def hidden(d, out):
            xp.matmul(d, hidden_weights, out=out)
    if N * H >= _STEPWISE_BACKWARD_MIN:
        dA = _lstm_backward_steps(dhs, dh, dc, A, Cs, TC, hidden)
    else:
        dA = _lstm_backward_passes(dhs, dh, dc, A, Cs, TC, hidden)
    dA2 = dA.reshape(T * N, 4 * H)
    dW = xp.matmul(XH.reshape(T * N, D + 1 + H).T, dA2)  # (D+1+H, 4H): [dWx; db; dWh]
    grads[0][...] = dW[:D]
    grads[2][...] = dW[D]
    grads[1][...] = dW[D + 1:]
    return _batch_major(xp.matmul(dA2, Wx.T), N, T), dh, dc


def _times_transposed(Wh, work_T, d, out):
    """``out = d @ Wh^T`` computed as ``(Wh @ d^T)^T`` (faster for few rows of ``d``);
    ``work_T (H, N)``."""
    get_array_module(Wh).matmul(Wh, d.T, out=work_T)
    out[...] = work_T.T


# With dh the total gradient of h_t and ds = dc_next + dh * o * (1 - tanh(c_t)^2)
# that of c_t, the pre-activation gradients are df = ds * c_{t-1} * f(1-f),
# dg = ds * i * (1-g^2), di = ds * g * i(1-i), do = dh * tanh(c_t) * o(1-o), and
# dc_{t-1} = ds * f. Both versions return dA (T, N, 4H) and leave dh_{-1}, dc_{-1}
# (the gradients of the initial state) in dh and dc. hidden(d, out=dh) computes
# dh = d @ Wh^T.

def _lstm_backward_steps(dhs, dh, dc, A, Cs, TC, hidden):
    """The local derivatives step by step, on blocks that stay in cache."""
    xp = get_array_module(A)
    T, N, H = TC.shape
    dA = xp.empty_like(A)                             # (T, N, 4H)
    dh_t = xp.empty((N, H), dtype=A.dtype)
    ds = xp.empty((N, H), dtype=A.dtype)
    for t in range(T - 1, -1, -1):
        a, d, tc = A[t], dA[t], TC[t]
        f, g, i, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        df, dg, di, do = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        xp.add(dhs[t], dh, out=dh_t)
        xp.subtract(1, a, out=d)
        d *= a                                        # s(1-s); the g slice is overwritten
        xp.multiply(tc, tc, out=ds)
        xp.subtract(1, ds, out=ds)
        ds *= o
        ds *= dh_t
        ds += dc
        xp.multiply(ds, f, out=dc)                    # dc_{t-1}
        df *= Cs[t]
        xp.multiply(g, g, out=dg)
        xp.subtract(1, dg, out=dg)
        dg *= i
        di *= g
        d.reshape(N, 4, H)[:, :3] *= ds[:, None, :]   # df, dg, di
        do *= tc
        do *= dh_t
        hidden(d, out=dh)                             # dh_{t-1}
    return dA


def _lstm_backward_passes(dhs, dh, dc, A, Cs, TC, hidden):
    """The factors that do not depend on dh for all steps in full-width passes,
    then a short loop: fewer NumPy calls for small blocks."""
    xp = get_array_module(A)
    T, N, H = TC.shape
    f, g, i, o = A[..., :H], A[..., H:2 * H], A[..., 2 * H:3 * H], A[..., 3 * H:]
    dA = xp.subtract(1, A)                            # (T, N, 4H)
    dA *= A                                           # sigmoid'(.) = s(1-s) for f, i, o
    dA[..., :H] *= Cs[:-1]
    dg = dA[..., H:2 * H]
    xp.multiply(g, g, out=dg)
    xp.subtract(1, dg, out=dg)
    dg *= i                                           # i * (1 - g^2)
    dA[..., 2 * H:3 * H] *= g
    dA[..., 3 * H:] *= TC
    o_dtanh = TC * TC                                 # (T, N, H)
    xp.subtract(1, o_dtanh, out=o_dtanh)
    o_dtanh *= o
    dA4 = dA.reshape(T, N, 4, H)
    dh_t = xp.empty((N, H), dtype=A.dtype)
    ds = xp.empty((N, H), dtype=A.dtype)
    for t in range(T - 1, -1, -1):
        xp.add(dhs[t], dh, out=dh_t)
        xp.multiply(dh_t, o_dtanh[t], out=ds)
        ds += dc
        dA4[t, :, :3] *= ds[:, None, :]               # df, dg, di
        dA[t, :, 3 * H:] *= dh_t                      # do
        xp.multiply(ds, f[t], out=dc)                 # dc_{t-1}
        hidden(dA[t], out=dh)                         # dh_{t-1}
    return dA


# --------------------------------------------------------------------------- GRU math

def _gru_forward(xs, h0, Wx, Wh, b, bh):
    """``bh is None``: the book's GRU; otherwise the reset-after form."""
    xp = get_array_module(Wx)
    N, T, D = xs.shape
    H = Wh.shape[0]
    dt = Wx.dtype
    X = _time_major(xs)                               # (T*N, D)
    A = xp.matmul(X, Wx).reshape(T, N, 3 * H)        # pre-activations, then z, r, h~ in place
    A += b
    Hs = _with_initial(h0, T)                         # (T+1, N, H)
    # reset-before: r * h_{t-1}, the input of Wh's candidate slice;
    # reset-after: h_{t-1} @ Wh_c + bh_c, the term that r multiplies.
    aux = xp.empty((T, N, H), dtype=dt)
    if bh is None:
        Wh_zr, Wh_c = Wh[:, :2 * H], Wh[:, 2 * H:]
        work = xp.empty((N, 2 * H), dtype=dt)
    else:
        A[..., :2 * H] += bh[:2 * H]
        bh_c = bh[2 * H:]
        work = xp.empty((N, 3 * H), dtype=dt)
    tmp = xp.empty((N, H), dtype=dt)
    for t in range(T):
        a, h = A[t], Hs[t]                            # (N, 3H), (N, H)
        zr, hc = a[:, :2 * H], a[:, 2 * H:]
        if bh is None:
            xp.matmul(h, Wh_zr, out=work)
            zr += work
        else:
            xp.matmul(h, Wh, out=work)
            zr += work[:, :2 * H]
        _sigmoid_(zr)                                 # z, r
        z, r = a[:, :H], a[:, H:2 * H]
        if bh is None:
            xp.multiply(r, h, out=aux[t])
            xp.matmul(aux[t], Wh_c, out=tmp)          # (r * h) @ Wh_c
        else:
            xp.add(work[:, 2 * H:], bh_c, out=aux[t])
            xp.multiply(r, aux[t], out=tmp)           # r * (h @ Wh_c + bh_c)
        hc += tmp
        xp.tanh(hc, out=hc)                           # h~
        h_t = Hs[t + 1]
        xp.subtract(hc, h, out=h_t)
        h_t *= z
        h_t += h                                      # h_t = (1 - z) * h + z * h~
    return _batch_major(Hs[1:], N, T), (X, A, Hs, aux)


def _gru_backward(dhs, dh_last, cache, Wx, Wh, grads, reset_after):
    xp = get_array_module(Wx)
    X, A, Hs, aux = cache
    T, N, H = aux.shape
    dt = Wx.dtype
    z, r, hc = A[..., :H], A[..., H:2 * H], A[..., 2 * H:]
    hprev = Hs[:-1]                                   # (T, N, H)
    # Local factors (dh: total gradient of h_t): dz = dh * (h~ - h_prev) * z(1-z),
    # dc = dh * z * (1 - h~^2) (candidate pre-activation),
    # reset-before: dr = ((dc @ Wh_c^T) * h_prev) * r(1-r);
    # reset-after:  dr = (dc * hn) * r(1-r), with hn = h_prev @ Wh_c + bh_c.
    dA = xp.empty_like(A)                             # (T, N, 3H)
    dA[..., :H] = (hc - hprev) * z * (1 - z)
    dA[..., 2 * H:] = z * (1 - hc * hc)
    dA[..., H:2 * H] = (aux if reset_after else hprev) * r * (1 - r)
    one_minus_z = 1 - z
    dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
    dh = xp.zeros((N, H), dtype=dt) if dh_last is None else dh_last.copy()
    dh_t = xp.empty((N, H), dtype=dt)
    tmp = xp.empty((N, H), dtype=dt)
    if not reset_after:
        Wh_zrT, Wh_cT = Wh[:, :2 * H].T, Wh[:, 2 * H:].T
        drh = xp.empty((N, H), dtype=dt)
        for t in range(T - 1, -1, -1):
            xp.add(dhs[t], dh, out=dh_t)
            da = dA[t]
            da[:, :H] *= dh_t                         # dz
            da[:, 2 * H:] *= dh_t                     # d candidate
            xp.matmul(da[:, 2 * H:], Wh_cT, out=drh)  # gradient of r * h_prev
            da[:, H:2 * H] *= drh                     # dr
            xp.multiply(dh_t, one_minus_z[t], out=dh)
            xp.multiply(drh, r[t], out=tmp)
            dh += tmp
            xp.matmul(da[:, :2 * H], Wh_zrT, out=tmp)
            dh += tmp
        dA2 = dA.reshape(T * N, 3 * H)
        grads[1][:, :2 * H] = xp.matmul(hprev.reshape(T * N, H).T, dA2[:, :2 * H])
        grads[1][:, 2 * H:] = xp.matmul(aux.reshape(T * N, H).T, dA2[:, 2 * H:])
    else:
        dAh = xp.empty_like(A)                        # gradient of h_prev @ Wh + bh
        WhT = Wh.T
        for t in range(T - 1, -1, -1):
            xp.add(dhs[t], dh, out=dh_t)
            da, dah = dA[t], dAh[t]
            da[:, :H] *= dh_t
            da[:, 2 * H:] *= dh_t
            da[:, H:2 * H] *= da[:, 2 * H:]
            dah[:, :2 * H] = da[:, :2 * H]
            xp.multiply(da[:, 2 * H:], r[t], out=dah[:, 2 * H:])
            xp.multiply(dh_t, one_minus_z[t], out=dh)
            xp.matmul(dah, WhT, out=tmp)
            dh += tmp
        dA2 = dA.reshape(T * N, 3 * H)
        dAh2 = dAh.reshape(T * N, 3 * H)
        xp.matmul(hprev.reshape(T * N, H).T, dAh2, out=grads[1])
        dAh2.sum(axis=0, out=grads[3])
    xp.matmul(X.T, dA2, out=grads[0])
    dA2.sum(axis=0, out=grads[2])
    return _batch_major(xp.matmul(dA2, Wx.T), N, T), dh


# --------------------------------------------------------------------------- cells

class _Cell(Layer):
    """Shared plumbing of the one-step cells (the ``T = 1`` case of the time math)."""

    _gates = 1

    def __init__(self, Wx, Wh, b, bh=None):
        super().__init__()
        _check_params(type(self).__name__, Wx, Wh, b, self._gates, bh)
        if bh is None:
            self._init_params(Wx, Wh, b)
        else:
            self._init_params(Wx, Wh, b, bh)
        self.cache = None

    def _check_step(self, x, **states):
        where = f"{type(self).__name__}.forward"
        Wx, Wh = self.params[0], self.params[1]
        dims = check_shape(where, "x", x, ("N", Wx.shape[0]))
        for name, s in states.items():
            check_shape(where, name, s, ("N", Wh.shape[0]), dims)
        dt = Wx.dtype
        self._nh = (x.shape[0], Wh.shape[0])
        return [x.astype(dt, copy=False)[:, None]] + [s.astype(dt, copy=False)
                                                       for s in states.values()]

    def _check_dout(self, **douts):
        where = f"{type(self).__name__}.backward"
        if self.cache is None:
            raise RuntimeError(f"{where}: called before forward")
        N, H = self._nh
        out = []
        for name, d in douts.items():
            check_shape(where, name, d, (N, H))
            out.append(d.astype(self.params[0].dtype, copy=False))
        return out


class RNN(_Cell):
    """One step of the Elman RNN with tanh:
    ``h_next = tanh(x @ Wx + h_prev @ Wh + b)``.

    Parameters
    ----------
    Wx : array, shape (D, H)
    Wh : array, shape (H, H)
    b : array, shape (H,)
        Kept as ``params`` (the very arrays), in this order; ``param_names`` is
        ``("Wx", "Wh", "b")``.

    Notes
    -----
    ``forward(x, h_prev)``: ``x (N, D)``, ``h_prev (N, H)`` -> ``h_next (N, H)``.
    ``backward(dh_next)``: ``dh_next (N, H)`` -> ``(dx (N, D), dh_prev (N, H))``;
    writes ``dWx, dWh, db`` into ``grads``. Caches ``x``, ``h_prev`` and
    ``h_next``. For sequences use :class:`TimeRNN`, which runs the same math
    over all steps without per-step objects.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 1

    def forward(self, x, h_prev):
        x3, h_prev = self._check_step(x, h_prev=h_prev)
        hs, self.cache = _rnn_forward(x3, h_prev, *self.params)
        return hs[:, 0]

    def backward(self, dh_next):
        (dh_next,) = self._check_dout(dh_next=dh_next)
        dxs, dh_prev = _rnn_backward(dh_next[:, None], None, self.cache,
                                     self.params[0], self.params[1], self.grads)
        return dxs[:, 0], dh_prev


class LSTM(_Cell):
    """One step of the LSTM (Hochreiter & Schmidhuber 1997, with a forget gate).

    With ``A = x @ Wx + h_prev @ Wh + b`` split into four ``H``-wide column
    slices in the book's order **f, g, i, o**::

        f = sigmoid(A[:, 0H:1H])    forget gate
        g = tanh   (A[:, 1H:2H])    cell candidate
        i = sigmoid(A[:, 2H:3H])    input gate
        o = sigmoid(A[:, 3H:4H])    output gate
        c_next = f * c_prev + g * i
        h_next = o * tanh(c_next)

    Parameters
    ----------
    Wx : array, shape (D, 4H)
    Wh : array, shape (H, 4H)
    b : array, shape (4H,)
        Kept as ``params`` (the very arrays), in this order; ``param_names`` is
        ``("Wx", "Wh", "b")``. PyTorch's ``nn.LSTM`` orders its gates i, f, g, o
        and has two biases (``b = b_ih + b_hh`` after reordering).

    Notes
    -----
    ``forward(x, h_prev, c_prev)``: ``x (N, D)``, ``h_prev, c_prev (N, H)`` ->
    ``(h_next, c_next)``, each ``(N, H)``.
    ``backward(dh_next, dc_next)`` -> ``(dx (N, D), dh_prev (N, H), dc_prev (N, H))``;
    writes ``dWx, dWh, db`` into ``grads``. Caches the inputs, the four gate
    activations, ``c_next`` and ``tanh(c_next)``.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 4

    def forward(self, x, h_prev, c_prev):
        x3, h_prev, c_prev = self._check_step(x, h_prev=h_prev, c_prev=c_prev)
        hs, self.cache = _lstm_forward(x3, h_prev, c_prev, *self.params)
        return hs[:, 0], self.cache[3][1]             # Cs[1]: c after the step

    def backward(self, dh_next, dc_next):
        dh_next, dc_next = self._check_dout(dh_next=dh_next, dc_next=dc_next)
        dxs, dh_prev, dc_prev = _lstm_backward(dh_next[:, None], None, dc_next, self.cache,
                                               self.params[0], self.params[1], self.grads)
        return dxs[:, 0], dh_prev, dc_prev


def _check_reset_after(where, reset_after, bh, like):
    if not isinstance(reset_after, bool):
        raise TypeError(f"{where}: argument 'reset_after' expected a bool, got "
                        f"{type(reset_after).__name__} (pass the second bias as bh=...)")
    if not reset_after:
        if bh is not None:
            raise ValueError(f"{where}: argument 'bh' is only used with reset_after=True")
        return None
    if bh is None:
        return get_array_module(like).zeros_like(like)
    return bh


class GRU(_Cell):
    """One step of the GRU (Cho et al. 2014), in the book's convention.

    With the three ``H``-wide column slices in the order **z, r, h~**
    (``Wx = [Wx_z | Wx_r | Wx_c]``, likewise ``Wh`` and ``b``)::

        z  = sigmoid(x @ Wx_z + h_prev @ Wh_z + b_z)         update gate
        r  = sigmoid(x @ Wx_r + h_prev @ Wh_r + b_r)         reset gate
        h~ = tanh(x @ Wx_c + (r * h_prev) @ Wh_c + b_c)      candidate (reset_after=False)
        h~ = tanh(x @ Wx_c + b_c + r * (h_prev @ Wh_c + bh_c))  (reset_after=True)
        h_next = (1 - z) * h_prev + z * h~

    ``reset_after=False`` is the book's GRU (and Cho et al.'s). ``reset_after=True``
    is the cuDNN / PyTorch / Keras form: the reset gate multiplies the hidden
    product, and a second bias ``bh (3H,)`` is added to ``h_prev @ Wh`` for all
    three slices (for ``z`` and ``r`` it simply adds to ``b``).

    PyTorch's ``nn.GRU`` orders its slices r, z, n and updates
    ``h_next = (1 - z') * n + z' * h_prev``: its ``z'`` is ``1 - z`` here, so its
    update-gate weights and biases are the negatives of ours.

    Parameters
    ----------
    Wx : array, shape (D, 3H)
    Wh : array, shape (H, 3H)
    b : array, shape (3H,)
    reset_after : bool, default False
    bh : array, shape (3H,), optional
        Only with ``reset_after=True``; zeros when omitted. ``param_names`` is
        ``("Wx", "Wh", "b")``, plus ``"bh"`` with ``reset_after=True``.

    Notes
    -----
    ``forward(x, h_prev)``: ``x (N, D)``, ``h_prev (N, H)`` -> ``h_next (N, H)``.
    ``backward(dh_next)`` -> ``(dx (N, D), dh_prev (N, H))``; writes the param
    gradients into ``grads``.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 3

    def __init__(self, Wx, Wh, b, reset_after=False, bh=None):
        bh = _check_reset_after("GRU", reset_after, bh, b)
        super().__init__(Wx, Wh, b, bh)
        self.reset_after = reset_after
        if reset_after:
            self.param_names = ("Wx", "Wh", "b", "bh")

    def forward(self, x, h_prev):
        x3, h_prev = self._check_step(x, h_prev=h_prev)
        Wx, Wh, b = self.params[:3]
        bh = self.params[3] if self.reset_after else None
        hs, self.cache = _gru_forward(x3, h_prev, Wx, Wh, b, bh)
        return hs[:, 0]

    def backward(self, dh_next):
        (dh_next,) = self._check_dout(dh_next=dh_next)
        dxs, dh_prev = _gru_backward(dh_next[:, None], None, self.cache, self.params[0],
                                     self.params[1], self.grads, self.reset_after)
        return dxs[:, 0], dh_prev


# --------------------------------------------------------------------------- row blocks
# The rows of a batch are independent sequences, so a time layer can run its
# forward and backward on row blocks in parallel threads (each with one BLAS
# thread, see functions.run_parallel), summing the blocks' param gradients.
# Worth it when each block's per-step work is large next to the Python overhead
# of a NumPy call and the threads' turns at the GIL.
_MIN_ROWS_PER_BLOCK = 32
_MIN_ELEMENTS_PER_BLOCK = 8192      # rows * H


def _row_blocks(xs, H):
    """Row slices of ``xs (N, T, D)`` to run in parallel: one slice of all rows
    when splitting is not worth it or not possible."""
    N = xs.shape[0]
    n = min(get_num_threads(), N // _MIN_ROWS_PER_BLOCK)
    if (n < 2 or (N // n) * H < _MIN_ELEMENTS_PER_BLOCK or is_cupy_array(xs)
            or not can_run_parallel()):
        return [slice(0, N)]
    bounds = [N * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _most_rows(blocks):
    return max(s.stop - s.start for s in blocks)


def _concat_rows(parts):
    if len(parts) == 1:
        return parts[0]
    return get_array_module(parts[0]).concatenate(parts, axis=0)


# --------------------------------------------------------------------------- time layers

class _TimeRecurrent(Layer):
    """State handling shared by :class:`TimeRNN`, :class:`TimeLSTM`, :class:`TimeGRU`."""

    _gates = 1
    _has_c = False

    def __init__(self, params, stateful):
        super().__init__()
        _check_params(type(self).__name__, *params[:3], self._gates,
                      params[3] if len(params) > 3 else None)
        self._init_params(*params)
        self.stateful = bool(stateful)
        self.h = None              # last hidden state after forward, (N, H)
        self.dh = None             # gradient of the initial hidden state after backward
        if self._has_c:
            self.c = None
            self.dc = None
        self._h_set = None         # state given to set_state (used by stateful=False)
        self._c_set = None
        self._cache = None         # one cache per row block
        self._blocks = None        # the row blocks of the last forward
        self._block_grads = []     # param-gradient buffers of the blocks after the first

    @property
    def hidden_size(self) -> int:
        """``H``."""
        return self.params[1].shape[0]

    def set_state(self, h, c=None):
        """Set the initial state of the next forward.

        Parameters
        ----------
        h : array, shape (N, H)
        c : array, shape (N, H), optional
            LSTM only; zeros when omitted.

        With ``stateful=True`` the next forward starts from ``h`` (and ``c``) and
        later forwards carry on from their predecessor's last state. With
        ``stateful=False`` every forward starts from this state until
        :meth:`reset_state`. The arrays are used as given (not copied).
        """
        where = f"{type(self).__name__}.set_state"
        H = self.hidden_size
        check_shape(where, "h", h, (None, H))
        if c is not None:
            if not self._has_c:
                raise ValueError(f"{where}: argument 'c' is only used by LSTM layers")
            check_shape(where, "c", c, (h.shape[0], H))
        self.h, self._h_set = h, h
        if self._has_c:
            self.c, self._c_set = c, c

    def reset_state(self):
        """Forget the state: the next forward starts from zeros."""
        self.h = self._h_set = None
        if self._has_c:
            self.c = self._c_set = None

    def _begin(self, xs):
        """Check ``xs``, cast it, and return it with the initial state(s)."""
        where = f"{type(self).__name__}.forward"
        Wx = self.params[0]
        check_shape(where, "xs", xs, ("N", "T", Wx.shape[0]))
        N, T, _ = xs.shape
        if T == 0:
            raise ShapeError(f"{where}: argument 'xs' expected at least one time step, "
                             f"got shape {tuple(xs.shape)}")
        xs = xs.astype(Wx.dtype, copy=False)
        H = self.hidden_size
        h, c = (self.h, getattr(self, "c", None)) if self.stateful else (self._h_set, self._c_set)
        states = [h] + ([c] if self._has_c else [])
        names = ["h"] + (["c"] if self._has_c else [])
        out = []
        for name, s in zip(names, states):
            if s is not None:
                check_shape(where, f"{name} (initial state)", s, (N, H))
            out.append(_zeros_or(s, (N, H), Wx))
        return xs, out

    def _begin_backward(self, dhs):
        where = f"{type(self).__name__}.backward"
        if self._cache is None:
            raise RuntimeError(f"{where}: called before forward")
        check_shape(where, "dhs", dhs, self._out_shape)
        return dhs.astype(self.params[0].dtype, copy=False)

    def _run_forward(self, forward, xs, states, prepare=None):
        """``forward(xs, *states) -> (hs, cache)`` over the row blocks of the batch
        (in parallel when worth it); keeps the caches and returns ``hs (N, T, H)``.
        ``prepare(rows)``, when given, is called once with the rows of the largest
        block and its result passed to every block as ``forward(...,
        weights=...)``."""
        self._blocks = _row_blocks(xs, self.hidden_size)
        if prepare is not None:
            forward = partial(forward, weights=prepare(_most_rows(self._blocks)))
        results = run_parallel([partial(forward, xs[s], *(st[s] for st in states))
                                for s in self._blocks])
        self._cache = [cache for _, cache in results]
        hs = _concat_rows([h for h, _ in results])
        self._out_shape = hs.shape
        self.h = hs[:, -1].copy()
        return hs

    def _run_backward(self, backward, dhs, prepare=None):
        """``backward(dhs, cache, grads) -> (dxs, *dstates)`` over the row blocks of
        the last forward; the first block writes ``self.grads``, the others their
        own buffers, added to it. Returns ``(dxs, *dstates)`` for the whole batch.
        ``prepare`` as in :meth:`_run_forward`."""
        n = len(self._blocks)
        if prepare is not None:
            backward = partial(backward, weights=prepare(_most_rows(self._blocks)))
        while len(self._block_grads) < n - 1:
            self._block_grads.append([get_array_module(g).empty_like(g) for g in self.grads])
        grads = [self.grads] + self._block_grads[:n - 1]
        results = run_parallel([partial(backward, dhs[s], cache, g)
                                for s, cache, g in zip(self._blocks, self._cache, grads)])
        for block in grads[1:]:
            for total, part in zip(self.grads, block):
                total += part
        return [_concat_rows(list(parts)) for parts in zip(*results)]


class TimeRNN(_TimeRecurrent):
    """Tanh RNN over a whole sequence: ``h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)``.

    Parameters
    ----------
    Wx : array, shape (D, H)
    Wh : array, shape (H, H)
    b : array, shape (H,)
        Kept as ``params``, ``param_names = ("Wx", "Wh", "b")``.
    stateful : bool, default False
        True: each forward starts from the last state of the previous one
        (truncated BPTT over a long sequence cut into blocks; gradients do not
        cross the block boundary). False: each forward starts from zeros, or from
        the state given to :meth:`set_state` until :meth:`reset_state`.

    Attributes
    ----------
    h : array (N, H) or None
        The last hidden state after forward (or the state set by ``set_state``).
    dh : array (N, H) or None
        After backward, the gradient of the initial hidden state (for
        encoder-decoder models).
    stateful : bool

    Notes
    -----
    ``forward(xs)``: ``xs (N, T, D)`` -> ``hs (N, T, H)``.
    ``backward(dhs)``: ``dhs (N, T, H)`` -> ``dxs (N, T, D)``; writes
    ``dWx, dWh, db`` into ``grads``. Caches (time-major) ``xs`` and the hidden
    states including the initial one, ``(T+1, N, H)``; the returned ``hs`` may
    share memory with it: do not modify it in place before backward.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 1

    def __init__(self, Wx, Wh, b, stateful=False):
        super().__init__((Wx, Wh, b), stateful)

    def forward(self, xs):
        xs, states = self._begin(xs)
        return self._run_forward(partial(_rnn_forward, Wx=self.params[0], Wh=self.params[1],
                                         b=self.params[2]), xs, states)

    def backward(self, dhs):
        dhs = self._begin_backward(dhs)
        Wx, Wh = self.params[:2]
        dxs, self.dh = self._run_backward(
            lambda d, cache, grads: _rnn_backward(d, None, cache, Wx, Wh, grads), dhs)
        return dxs


class TimeLSTM(_TimeRecurrent):
    """LSTM over a whole sequence (Hochreiter & Schmidhuber 1997).

    For each step ``t``, with ``A_t = x_t @ Wx + h_{t-1} @ Wh + b`` split into
    four ``H``-wide column slices in the book's order **f, g, i, o**::

        f = sigmoid(A_t[:, 0H:1H]),  g = tanh(A_t[:, 1H:2H]),
        i = sigmoid(A_t[:, 2H:3H]),  o = sigmoid(A_t[:, 3H:4H])
        c_t = f * c_{t-1} + g * i
        h_t = o * tanh(c_t)

    Parameters
    ----------
    Wx : array, shape (D, 4H)
    Wh : array, shape (H, 4H)
    b : array, shape (4H,)
        Kept as ``params``, ``param_names = ("Wx", "Wh", "b")``; the book's
        weights load unchanged.
    stateful : bool, default False
        True: each forward starts from the last ``h`` and ``c`` of the previous
        one (truncated BPTT). False: each forward starts from zeros, or from the
        state given to :meth:`set_state` until :meth:`reset_state`.

    Attributes
    ----------
    h, c : array (N, H) or None
        The last hidden and cell states after forward.
    dh, dc : array (N, H) or None
        After backward, the gradients of the initial hidden and cell states
        (``dh`` is what a seq2seq decoder hands back to its encoder).
    stateful : bool

    Notes
    -----
    ``forward(xs)``: ``xs (N, T, D)`` -> ``hs (N, T, H)``.
    ``backward(dhs)``: ``dhs (N, T, H)`` -> ``dxs (N, T, D)``; writes
    ``dWx, dWh, db`` into ``grads``. The gradient of the last state enters
    through ``dhs[:, -1]``; the last cell state gets no gradient.

    Caches (time-major) ``[x_t, 1, h_{t-1}]`` for every step ``(T, N, D+1+H)``,
    the gate activations ``(T, N, 4H)``, the cell states including the initial
    one ``(T+1, N, H)`` and ``tanh(c_t)`` ``(T, N, H)``. ``x @ Wx + b`` is one
    matrix product for all steps (or, for a small input, part of the one product
    per step, see ``_lstm_forward``); ``dWx`` with ``db``, ``dWh`` and ``dx``
    are single products in backward. The returned ``hs`` is a new array.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 4
    _has_c = True

    def __init__(self, Wx, Wh, b, stateful=False):
        super().__init__((Wx, Wh, b), stateful)

    def forward(self, xs):
        xs, states = self._begin(xs)
        Wx, Wh, b = self.params
        hs = self._run_forward(partial(_lstm_forward, Wx=Wx, Wh=Wh, b=b), xs, states,
                               prepare=partial(_lstm_step_weights, Wx, Wh, b, T=xs.shape[1]))
        xp = get_array_module(hs)
        self.c = xp.concatenate([cache[3][-1] for cache in self._cache])  # Cs[T], a new array
        return hs

    def backward(self, dhs):
        dhs = self._begin_backward(dhs)
        Wx, Wh = self.params[:2]
        dxs, self.dh, self.dc = self._run_backward(
            lambda d, cache, grads, weights: _lstm_backward(d, None, None, cache, Wx, Wh, grads,
                                                            hidden_weights=weights),
            dhs, prepare=partial(_lstm_hidden_weights, Wh))
        return dxs


class TimeGRU(_TimeRecurrent):
    """GRU over a whole sequence (Cho et al. 2014); see :class:`GRU` for the equations.

    With the three ``H``-wide column slices in the order **z, r, h~**::

        z_t = sigmoid(x_t Wx_z + h_{t-1} Wh_z + b_z)
        r_t = sigmoid(x_t Wx_r + h_{t-1} Wh_r + b_r)
        h~_t = tanh(x_t Wx_c + (r_t * h_{t-1}) Wh_c + b_c)            reset_after=False
        h~_t = tanh(x_t Wx_c + b_c + r_t * (h_{t-1} Wh_c + bh_c))     reset_after=True
        h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

    (with ``reset_after=True``, ``bh_z`` and ``bh_r`` are added to the ``z`` and
    ``r`` pre-activations too).

    Parameters
    ----------
    Wx : array, shape (D, 3H)
    Wh : array, shape (H, 3H)
    b : array, shape (3H,)
    stateful : bool, default False
        As in :class:`TimeLSTM`.
    reset_after : bool, default False
        False: the book's GRU. True: the cuDNN / PyTorch form with a second bias.
    bh : array, shape (3H,), optional
        The hidden-side bias, only with ``reset_after=True`` (zeros when omitted).
        ``param_names`` is ``("Wx", "Wh", "b")``, plus ``"bh"`` with
        ``reset_after=True``.

    Attributes
    ----------
    h : array (N, H) or None
        The last hidden state after forward.
    dh : array (N, H) or None
        After backward, the gradient of the initial hidden state.
    stateful, reset_after : bool

    Notes
    -----
    ``forward(xs)``: ``xs (N, T, D)`` -> ``hs (N, T, H)``.
    ``backward(dhs)``: ``dhs (N, T, H)`` -> ``dxs (N, T, D)``. Caches (time-major)
    ``xs``, the gates ``(T, N, 3H)``, the hidden states including the initial one
    ``(T+1, N, H)`` and ``r * h_prev`` (reset-before) or ``h_prev @ Wh_c + bh_c``
    (reset-after), ``(T, N, H)``.
    """

    param_names = ("Wx", "Wh", "b")
    _gates = 3

    def __init__(self, Wx, Wh, b, stateful=False, reset_after=False, bh=None):
        bh = _check_reset_after("TimeGRU", reset_after, bh, b)
        super().__init__((Wx, Wh, b) if bh is None else (Wx, Wh, b, bh), stateful)
        self.reset_after = reset_after
        if reset_after:
            self.param_names = ("Wx", "Wh", "b", "bh")

    def forward(self, xs):
        xs, states = self._begin(xs)
        Wx, Wh, b = self.params[:3]
        bh = self.params[3] if self.reset_after else None
        return self._run_forward(partial(_gru_forward, Wx=Wx, Wh=Wh, b=b, bh=bh), xs, states)

    def backward(self, dhs):
        dhs = self._begin_backward(dhs)
        Wx, Wh = self.params[:2]
        dxs, self.dh = self._run_backward(
            lambda d, cache, grads: _gru_backward(d, None, cache, Wx, Wh, grads,
                                                  self.reset_after), dhs)
        return dxs


class TimeBiLSTM(Layer):
    """Bidirectional LSTM: one :class:`TimeLSTM` reads the sequence forwards, a
    second reads it backwards, and their hidden states are concatenated::

        hs[:, t] = concat(hf_t, hb_t)        # (N, 2H)

    where ``hf_t`` is the forward LSTM's state after reading ``x_0 .. x_t`` and
    ``hb_t`` the backward LSTM's after reading ``x_{T-1} .. x_t``.

    Parameters
    ----------
    Wx1, Wh1, b1 : arrays, shapes (D, 4H), (H, 4H), (4H,)
        The forward LSTM (gate order f, g, i, o as in :class:`TimeLSTM`).
    Wx2, Wh2, b2 : arrays, shapes (D, 4H), (H, 4H), (4H,)
        The backward LSTM.
        ``params`` holds the six arrays in this order; ``param_names`` is
        ``("Wx_fwd", "Wh_fwd", "b_fwd", "Wx_bwd", "Wh_bwd", "b_bwd")``.

    Attributes
    ----------
    forward_lstm, backward_lstm : TimeLSTM
        The two directions (their ``grads`` are the arrays in ``self.grads``).
    h, c : array (2, N, H) or None
        Last states after forward: ``[0]`` the forward direction's (after
        ``x_{T-1}``), ``[1]`` the backward direction's (after ``x_0``) -- the
        layout of PyTorch's ``h_n``.
    dh, dc : array (2, N, H) or None
        After backward, the gradients of the initial states, same layout.

    Notes
    -----
    ``forward(xs)``: ``xs (N, T, D)`` -> ``hs (N, T, 2H)``;
    ``backward(dhs)``: ``dhs (N, T, 2H)`` -> ``dxs (N, T, D)``.
    Not stateful (the backward direction cannot carry a state into the next
    block of a long sequence); :meth:`set_state` sets the initial states of
    every forward until :meth:`reset_state`.
    """

    param_names = ("Wx_fwd", "Wh_fwd", "b_fwd", "Wx_bwd", "Wh_bwd", "b_bwd")

    def __init__(self, Wx1, Wh1, b1, Wx2, Wh2, b2):
        super().__init__()
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2)
        if Wx1.shape != Wx2.shape or Wh1.shape != Wh2.shape:
            raise ShapeError(f"TimeBiLSTM: the backward LSTM's Wx, Wh expected shapes "
                             f"{tuple(Wx1.shape)}, {tuple(Wh1.shape)} (those of the forward "
                             f"LSTM), got {tuple(Wx2.shape)}, {tuple(Wh2.shape)}")
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads

    @property
    def hidden_size(self) -> int:
        """``H`` of each direction (the output has ``2H`` features)."""
        return self.forward_lstm.hidden_size

    def _pair(self, name):
        a, b = getattr(self.forward_lstm, name), getattr(self.backward_lstm, name)
        if a is None or b is None:
            return None
        return get_array_module(a).stack([a, b])

    h = property(lambda self: self._pair("h"), doc="Last hidden states, (2, N, H).")
    c = property(lambda self: self._pair("c"), doc="Last cell states, (2, N, H).")
    dh = property(lambda self: self._pair("dh"), doc="Gradient of the initial h, (2, N, H).")
    dc = property(lambda self: self._pair("dc"), doc="Gradient of the initial c, (2, N, H).")

    def set_state(self, h, c=None):
        """Initial states for every forward until :meth:`reset_state`.

        Parameters
        ----------
        h : array, shape (2, N, H)
            ``[0]`` for the forward direction, ``[1]`` for the backward one.
        c : array, shape (2, N, H), optional
            Zeros when omitted.
        """
        H = self.hidden_size
        check_shape("TimeBiLSTM.set_state", "h", h, (2, None, H))
        if c is not None:
            check_shape("TimeBiLSTM.set_state", "c", c, (2, h.shape[1], H))
        self.forward_lstm.set_state(h[0], None if c is None else c[0])
        self.backward_lstm.set_state(h[1], None if c is None else c[1])

    def reset_state(self):
        """Start every forward from zeros again."""
        self.forward_lstm.reset_state()
        self.backward_lstm.reset_state()

    def forward(self, xs):
        check_shape("TimeBiLSTM.forward", "xs", xs, ("N", "T", self.params[0].shape[0]))
        xp = get_array_module(self.params[0])
        hf = self.forward_lstm.forward(xs)                  # (N, T, H)
        hb = self.backward_lstm.forward(xs[:, ::-1])        # (N, T, H), reversed time
        return xp.concatenate([hf, hb[:, ::-1]], axis=2)    # (N, T, 2H)

    def backward(self, dhs):
        H = self.hidden_size
        if self.forward_lstm._cache is None:
            raise RuntimeError("TimeBiLSTM.backward: called before forward")
        N, T, _ = self.forward_lstm._out_shape
        check_shape("TimeBiLSTM.backward", "dhs", dhs, (N, T, 2 * H))
        dxs = self.forward_lstm.backward(dhs[:, :, :H])
        dxs_b = self.backward_lstm.backward(dhs[:, ::-1, H:])
        dxs += dxs_b[:, ::-1]
        return dxs

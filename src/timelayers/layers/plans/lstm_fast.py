"""The LSTM over a whole sequence, fast on a CPU (NumPy; CuPy runs it too).

Layout: ``XH (T, N, D+1+H)`` holds ``[x_t, 1, h_{t-1}]`` for every step (each
step writes its ``h_t`` into the next step's row), so that the bias rides in the
products and backward gets ``[dWx; db; dWh]`` from one product ``XH^T dA``.

All four gates come from one ``tanh`` per element: ``sigmoid(a) = (1 +
tanh(a / 2)) / 2``, the factor 1/2 of the sigmoid gates f, i, o riding in the
weights (the gate scales). NumPy's float32 ``tanh`` is faster than its ``exp``
(0.33 against 0.53 ms for 1000 x 1024 here), and the pass that follows is a
multiply-add on the three sigmoid gates instead of ``1 / (1 + exp)`` on all four.

:class:`FastLSTM`'s flags are the choices; :meth:`FastLSTM.for_shape` makes
them from the shapes, for the reasons given beside each flag. Measurements:
docs/RESULTS.md (the CPU LSTM) and ``benchmarks/bench_thin_products.py``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from ...backend import get_array_module
from .base import Plan
from .buffers import batch_major, time_major, with_initial
__all__ = ["FastLSTM"]

# Up to this many rows the per-step products are computed transposed,
# ``W^T @ XH[t]^T``: OpenBLAS splits the long side of a product between its
# threads, and packs the weights faster in this orientation (about 25% faster for
# (20, 650) @ (650, 2600)); measured faster for N = 20 and 32, slower for 64.
TRANSPOSED_STEP_MAX_ROWS = 32

# From this many elements per (N, H) block on, the backward computes the local
# derivatives step by step inside the loop, where each step's (N, 4H) block is
# still in the cache; below it, for all steps in a few full-width passes (fewer
# NumPy calls; for large blocks those passes over (T, N, 4H) wait on memory).
STEPWISE_BACKWARD_MIN = 16384

# A row of 1024 bytes or a multiple of it maps every row of a column onto the same
# few cache sets (a 4 KiB stride onto one set): reading such a matrix down its
# columns, as a transposed copy does, then misses the cache at every element,
# about 5x slower for Wh (256, 1024) float32. Rows padded by 64 bytes avoid it.
_ALIASING_ROW_BYTES = 1024
_ROW_PAD_BYTES = 64


class FastLSTM(Plan):
    """The fast LSTM's choices (:meth:`for_shape` makes them, each with its reason).

    prescaled : the gate scales folded into a copy of the weights stacked with the
        bias; else ``x @ Wx + b``, and the pre-activations scaled.
    fused : (prescaled only) one product per step, ``XH[t] @ [Wx; b; Wh]``; else
        ``[x, 1] @ [Wx; b]`` for all steps at once and ``h @ Wh`` per step.
    transposed : the forward's per-step products computed transposed.
    transposed_backward : the backward's ``dA_t @ Wh^T`` computed as
        ``(Wh @ dA_t^T)^T``, else with a copy of ``Wh^T``.
    stepwise_backward : see ``STEPWISE_BACKWARD_MIN``.
    keep_steps : forward keeps every step for backward. False (evaluation): it
        overwrites one step's buffers and returns the inputs themselves as its
        cache (not copied: they must not change before a backward, which runs the
        forward again, keeping the steps).
    """

    def __init__(self, prescaled, fused, transposed, transposed_backward, stepwise_backward,
                 keep_steps=True):
        if fused and not prescaled:
            raise ValueError("FastLSTM: fused products need prescaled weights")
        self.prescaled = bool(prescaled)
        self.fused = bool(fused)
        self.transposed = bool(transposed)
        self.transposed_backward = bool(transposed_backward)
        self.stepwise_backward = bool(stepwise_backward)
        self.keep_steps = bool(keep_steps)

    @classmethod
    def for_shape(cls, N, T, D, H, keep_steps=True):
        """The choices for blocks of ``N`` rows, ``T`` steps, ``D`` inputs, ``H`` units;
        ``keep_steps=False`` for a forward that no backward is expected to follow."""
        # the prescaled copy pays when there are more rows T*N than weight rows
        # D+1+H (training-sized calls), not for generation's one step at a time
        prescaled = D + 1 + H < T * N
        few_rows = N <= TRANSPOSED_STEP_MAX_ROWS
        return cls(prescaled=prescaled,
                   # for small inputs (the seq2seq models' character embeddings) D+1
                   # more rows in each step's product, written straight into its
                   # pre-activations, cost less than a (T*N, D) product whose output
                   # goes to memory and comes back
                   fused=prescaled and 4 * (D + 1) <= H,
                   # the transposed weights are a copy per call: not for a step or
                   # two of an unscaled call
                   transposed=few_rows and (prescaled or T >= 4),
                   transposed_backward=few_rows,
                   stepwise_backward=N * H >= STEPWISE_BACKWARD_MIN,
                   keep_steps=keep_steps)

    # -- forward ---------------------------------------------------------------------
    def prepare_forward(self, params):
        Wx, Wh, b = params
        xp = get_array_module(Wx)
        D, H = Wx.shape[0], Wh.shape[0]
        dt = Wx.dtype
        scale = _gate_scales(H, dt, xp)
        W = None
        if self.prescaled:
            W = padded_empty((D + 1 + H if self.fused else D + 1, 4 * H), dt, xp)
            W[:D] = Wx
            W[D] = b
            if self.fused:
                W[D + 1:] = Wh
            W *= scale
        if self.fused:
            step = W
        elif self.prescaled:
            step = xp.multiply(Wh, scale, out=padded_empty(Wh.shape, dt, xp))
        else:
            step = Wh
        if self.transposed:
            step = transposed_copy(step)
        return StepWeights(scale, W, step)

    def forward(self, params, xs, states, prepared=None):
        if prepared is None:
            prepared = self.prepare_forward(params)
        if not self.keep_steps:
            return self._forward_one_step_buffers(params, xs, states, prepared)
        Wx, Wh, b = params
        h0, c0 = states
        xp = get_array_module(Wx)
        N, T, D = xs.shape
        H = Wh.shape[0]
        dt = Wx.dtype
        K = D + 1 + H
        prescaled, fused, transposed = self.prescaled, self.fused, self.transposed
        scale, W, step = prepared
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
        Cs = with_initial(c0, T)                          # (T+1, N, H)
        TC = xp.empty((T, N, H), dtype=dt)                # tanh(c_t)
        h_last = xp.empty((N, H), dtype=dt)
        gi = xp.empty((N, H), dtype=dt)
        for t in range(T):
            a = A[t]                                  # (N, 4H)
            self._step_products(XH[t], a, scale, step, work_T if transposed else work)
            h = XH[t + 1, :, D + 1:] if t + 1 < T else h_last
            _gates_and_states(a, Cs[t], Cs[t + 1], TC[t], h, gi)
        hs = xp.empty((N, T, H), dtype=dt)
        hs[:, :T - 1] = XH[1:, :, D + 1:].transpose(1, 0, 2)
        hs[:, T - 1] = h_last
        return hs, (h_last, Cs[T].copy()), LSTMCache(XH, A, Cs, TC)

    def _forward_one_step_buffers(self, params, xs, states, prepared):
        """The forward of ``keep_steps=False``: the same steps on buffers of one
        step (``xh (N, D+1+H)``, ``a (N, 4H)``, ``c``, ``tanh(c)``), written over
        at every step, so they stay in the CPU's caches; returns ``hs``, the last
        states and the inputs as the cache. ``hs (N, T, H)`` is a view of
        time-major memory ``(T, N, H)``: each step's ``h`` is copied as one block
        instead of into ``N`` rows ``T * H`` apart (answering 1,000 date
        questions, 0.94-0.95x the time), and the next layer's steps read it as
        blocks too."""
        Wx, Wh, b = params
        h0, c0 = states
        xp = get_array_module(Wx)
        N, T, D = xs.shape
        H = Wh.shape[0]
        dt = Wx.dtype
        scale, W, step = prepared
        xh = xp.empty((N, D + 1 + H), dtype=dt)           # [x_t, 1, h_{t-1}]
        xh[:, D] = 1
        xh[:, D + 1:] = h0
        if self.fused:
            A = xp.empty((1, N, 4 * H), dtype=dt)         # one step's pre-activations
        else:                                             # the input part of all steps
            A = xp.matmul(time_major(xs), W[:D] if self.prescaled else Wx).reshape(T, N, 4 * H)
            A += W[D] if self.prescaled else b
        work = (xp.empty((4 * H, N), dtype=dt) if self.transposed else
                None if self.fused else xp.empty((N, 4 * H), dtype=dt))
        c = c0.copy()
        tc = xp.empty((N, H), dtype=dt)
        gi = xp.empty((N, H), dtype=dt)
        hs = xp.empty((T, N, H), dtype=dt)                # time-major: each h_t one block
        h_last = xp.empty((N, H), dtype=dt)
        for t in range(T):
            a = A[0] if self.fused else A[t]
            if self.fused:
                xh[:, :D] = xs[:, t]
            self._step_products(xh, a, scale, step, work)
            h = xh[:, D + 1:] if t + 1 < T else h_last
            _states_only(a, c, tc, h, gi)
            hs[t] = h
        return hs.transpose(1, 0, 2), (h_last, c), (xs, states)

    def _step_products(self, xh, a, scale, step, work):
        """A step's pre-activations in ``a (N, 4H)``, scaled: from ``xh (N, D+1+H)``
        ``[x_t, 1, h_{t-1}]`` and, when not fused, ``a`` holding the input part;
        ``work`` is ``(4H, N)`` for transposed products, else ``(N, 4H)``."""
        xp = get_array_module(a)
        H = a.shape[1] // 4
        h = xh if self.fused else xh[:, xh.shape[1] - H:]   # [x_t, 1, h_{t-1}] or h_{t-1}
        if self.transposed:
            xp.matmul(step, h.T, out=work)
            if self.fused:
                a[...] = work.T
            else:
                a += work.T
        elif self.fused:
            xp.matmul(h, step, out=a)
        else:
            xp.matmul(h, step, out=work)
            a += work
        if not self.prescaled:
            a *= scale

    # -- backward --------------------------------------------------------------------
    def prepare_backward(self, params):
        """``Wh (H, 4H)`` itself for transposed products, else a copy of ``Wh^T (4H, H)``."""
        Wh = params[1]
        return Wh if self.transposed_backward else transposed_copy(Wh)

    def backward(self, params, grads, dhs, cache, prepared=None):
        if not self.keep_steps:                           # the cache is the forward's inputs
            steps = FastLSTM(self.prescaled, self.fused, self.transposed,
                             self.transposed_backward, self.stepwise_backward)
            _, _, cache = steps.forward(params, *cache)
            return steps.backward(params, grads, dhs, cache, prepared)
        Wx, Wh = params[:2]
        xp = get_array_module(Wx)
        XH, A, Cs, TC = cache
        T, N, H = TC.shape
        D = XH.shape[2] - 1 - H
        dt = Wx.dtype
        dh = xp.zeros((N, H), dtype=dt)
        dc = xp.zeros((N, H), dtype=dt)
        dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
        hidden_weights = prepared if prepared is not None else self.prepare_backward(params)
        if self.transposed_backward:
            hidden = partial(_times_transposed, hidden_weights, xp.empty((H, N), dtype=dt))
        else:
            def hidden(d, out):
                xp.matmul(d, hidden_weights, out=out)
        local = _backward_steps if self.stepwise_backward else _backward_passes
        dA = local(dhs, dh, dc, A, Cs, TC, hidden)
        dA2 = dA.reshape(T * N, 4 * H)
        dW = xp.matmul(XH.reshape(T * N, D + 1 + H).T, dA2)  # (D+1+H, 4H): [dWx; db; dWh]
        grads[0][...] = dW[:D]
        grads[2][...] = dW[D]
        grads[1][...] = dW[D + 1:]
        return batch_major(xp.matmul(dA2, Wx.T), N, T), (dh, dc)


class StepWeights(NamedTuple):
    """The forward's weights, prepared once per call."""

    scale: object   # (4H,) gate factors
    W: object       # [Wx; b] * scale (D+1, 4H), [Wx; b; Wh] * scale (D+1+H, 4H), or None
    step: object    # per-step weights: Wh (* scale) (H, 4H), W, or their transposes


class LSTMCache(NamedTuple):
    XH: object      # (T, N, D+1+H) [x_t, 1, h_{t-1}]
    A: object       # (T, N, 4H) the gates f, g, i, o
    Cs: object      # (T+1, N, H) the cell states, the initial one first
    TC: object      # (T, N, H) tanh(c_t)


def _gate_scales(H, dt, xp):
    """``(4H,)`` column factors ``1/2`` on the sigmoid slices f, i, o and ``1`` on
    the tanh slice g: with ``t = tanh(scale * a)``, ``(1 + t) / 2`` is
    ``sigmoid(a)`` on f, i, o and ``t`` is ``tanh(a)`` on g."""
    scale = xp.full(4 * H, 0.5, dtype=dt)
    scale[H:2 * H] = 1.0
    return scale


def _gates_and_states(a, c_prev, c, tc, h, gi):
    """One step's cell from its scaled pre-activations ``a (N, 4H)``: the gates
    f, g, i, o in place in ``a``, then ``c = f * c_prev + g * i``, ``tc =
    tanh(c)`` and ``h = o * tc`` (each ``(N, H)``; ``c`` may be ``c_prev``);
    ``gi (N, H)`` is work space."""
    xp = get_array_module(a)
    H = c.shape[1]
    xp.tanh(a, out=a)
    f, g, i, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    for sigmoid_gates in (f, a[:, 2 * H:]):              # f; i and o
        sigmoid_gates *= 0.5
        sigmoid_gates += 0.5                              # (1 + tanh(a / 2)) / 2
    xp.multiply(g, i, out=gi)
    xp.multiply(f, c_prev, out=c)
    c += gi                                               # c_t = f * c_{t-1} + g * i
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)                             # h_t = o * tanh(c_t)


def _states_only(a, c, tc, h, work):
    """The step of a forward that keeps no gates for a backward: from the scaled
    pre-activations ``a (N, 4H)``, the same ``c`` (updated in place), ``tc`` and
    ``h`` (each ``(N, H)``) as :func:`_gates_and_states`, with the sigmoid gates
    left as ``t = tanh(a / 2)`` (``s = (1 + t) / 2``): ``c = ((1 + t_f) c + (1 +
    t_i) g) / 2`` and ``h = (1 + t_o) tanh(c) / 2``, so that every pass after the
    ``tanh`` is over an ``(N, H)`` block that stays in the cache, none over the
    gates in ``a``. ``work (N, H)`` is work space; ``a`` is overwritten."""
    xp = get_array_module(a)
    H = c.shape[1]
    xp.tanh(a, out=a)
    t_f, g, t_i, t_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    xp.multiply(t_i, g, out=work)
    work += g                                             # (1 + t_i) g
    xp.multiply(t_f, c, out=tc)
    c += tc                                               # (1 + t_f) c
    c += work
    c *= 0.5
    xp.tanh(c, out=tc)
    xp.multiply(t_o, tc, out=h)
    h += tc
    h *= 0.5                                              # (1 + t_o) tanh(c) / 2


def _times_transposed(Wh, work_T, d, out):
    """``out = d @ Wh^T`` computed as ``(Wh @ d^T)^T``; ``work_T (H, N)``."""
    get_array_module(Wh).matmul(Wh, d.T, out=work_T)
    out[...] = work_T.T


# With dh the total gradient of h_t and ds = dc_next + dh * o * (1 - tanh(c_t)^2)
# that of c_t, the pre-activation gradients are df = ds * c_{t-1} * f(1-f),
# dg = ds * i * (1-g^2), di = ds * g * i(1-i), do = dh * tanh(c_t) * o(1-o), and
# dc_{t-1} = ds * f. Both versions return dA (T, N, 4H) and leave dh_{-1}, dc_{-1}
# (the gradients of the initial state) in dh and dc. hidden(d, out=dh) computes
# dh = d @ Wh^T.

def _backward_steps(dhs, dh, dc, A, Cs, TC, hidden):
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


def _backward_passes(dhs, dh, dc, A, Cs, TC, hidden):
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


# --------------------------------------------------------------------------- copies

def padded_empty(shape, dtype, xp):
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



def transposed_copy(a):
    """C-contiguous copy of ``a.T`` for a 2-D ``a (R, C)``: ``(C, R)``, going
    through a padded copy when ``a``'s rows would alias in the cache."""
    xp = get_array_module(a)
    stride = a.strides[0]
    if xp.__name__ == "numpy" and a.shape[0] > 1 and stride % _ALIASING_ROW_BYTES == 0:
        padded = padded_empty(a.shape, a.dtype, xp)
        if padded.strides[0] != stride:
            padded[...] = a
            a = padded
    return xp.ascontiguousarray(a.T)

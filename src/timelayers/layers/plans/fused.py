"""The recurrent layers on a GPU (CuPy): each step's gate arithmetic in fused kernels.

On a GPU the time goes into launching kernels, not into the arithmetic: written
with NumPy-style operations, an LSTM step forward is about ten elementwise
kernels and its backward more. Here a step is one product ``h_{t-1} @ Wh`` and
one kernel that reads the step's pre-activations and ``c_{t-1}`` and writes the
four gates, ``c_t``, ``tanh(c_t)`` and ``h_t``; a step backward is one kernel
for the local derivatives (the book's formulas, see
:func:`~timelayers.layers.recurrent_reference.lstm_step_backward`) and one
product ``dA_t @ Wh^T``. The RNN takes one kernel a step each way; the GRU two
forward (the book's form: ``r * h_{t-1}`` goes through a product before the
candidate) or one (reset-after), and two or one backward. The input products of
all steps and the weight gradients are single products over all steps, as in
the CPU plans.

The kernels are compiled by CuPy (NVRTC) on first use, once per dtype; CuPy is
imported only when a plan runs, so NumPy users never load it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...backend import get_array_module
from ...cuda.launch import launch_kernel, with_float_type
from .base import Plan
from .buffers import (batch_major, gradients_over_steps, input_preactivations,
                      states_over_input_products, time_major, with_initial)
from .batched import GRUCache, RNNCache

__all__ = ["FusedRNN", "FusedLSTM", "FusedGRU", "KERNEL_SOURCE"]

# One thread per (n, j) of an (N, H) block; the gates of row n sit at
# n*4H + {0, H, 2H, 3H} + j, in the book's order f, g, i, o.
KERNEL_SOURCE = r"""
__device__ __forceinline__ T sigmoid_(T a) { return T(1) / (T(1) + exp(-a)); }

extern "C" __global__ void lstm_step_forward(
        T* gates,            // (N, 4H) in: x_t Wx + b; out: f, g, i, o
        const T* ah,         // (N, 4H) h_{t-1} Wh
        const T* c_prev,     // (N, H)
        T* c_next,           // (N, H)
        T* tanh_c,           // (N, H)
        T* h_next,           // (N, H)
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    T* a = gates + (long long)n * 4 * H + j;
    const T* b = ah + (long long)n * 4 * H + j;
    const T f = sigmoid_(a[0] + b[0]);
    const T g = tanh(a[H] + b[H]);
    const T i = sigmoid_(a[2 * H] + b[2 * H]);
    const T o = sigmoid_(a[3 * H] + b[3 * H]);
    a[0] = f; a[H] = g; a[2 * H] = i; a[3 * H] = o;
    const T c = f * c_prev[k] + g * i;
    const T tc = tanh(c);
    c_next[k] = c;
    tanh_c[k] = tc;
    h_next[k] = o * tc;
}

extern "C" __global__ void lstm_step_backward(
        const T* gates,      // (N, 4H) f, g, i, o
        const T* c_prev,     // (N, H)
        const T* tanh_c,     // (N, H)
        const T* dh_out,     // (N, H) the gradient of h_t from the output
        const T* dh_next,    // (N, H) the gradient of h_t from step t+1
        T* dc,               // (N, H) in: the gradient of c_t from step t+1; out: of c_{t-1}
        T* dA,               // (N, 4H) out: the pre-activations' gradient
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    const long long row = (long long)n * 4 * H + j;
    const T f = gates[row], g = gates[row + H], i = gates[row + 2 * H], o = gates[row + 3 * H];
    const T dh = dh_out[k] + dh_next[k];
    const T tc = tanh_c[k];
    const T ds = dc[k] + dh * o * (T(1) - tc * tc);
    dc[k] = ds * f;
    dA[row] = ds * c_prev[k] * f * (T(1) - f);
    dA[row + H] = ds * i * (T(1) - g * g);
    dA[row + 2 * H] = ds * g * i * (T(1) - i);
    dA[row + 3 * H] = dh * tc * o * (T(1) - o);
}

extern "C" __global__ void rnn_step_forward(
        T* h_next,           // (N, H) in: x_t Wx + b; out: tanh(x_t Wx + h_{t-1} Wh + b)
        const T* ah,         // (N, H) h_{t-1} Wh
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    h_next[k] = tanh(h_next[k] + ah[k]);
}

extern "C" __global__ void rnn_step_backward(
        const T* h_next,     // (N, H)
        const T* dh_out,     // (N, H) the gradient of h_t from the output
        const T* dh_next,    // (N, H) the gradient of h_t from step t+1
        T* dA,               // (N, H) out: the pre-activation's gradient
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const T h = h_next[k];
    dA[k] = (dh_out[k] + dh_next[k]) * (T(1) - h * h);
}

// GRU, slices z, r, h~ at n*3H + {0, H, 2H} + j. The book's form takes two
// kernels a step (r * h_prev goes through a product before the candidate), the
// reset-after form one.
extern "C" __global__ void gru_step_gates(
        T* A,                // (N, 3H) in: x_t Wx + b; out: z, r in the first two slices
        const T* ah,         // (N, 2H) h_{t-1} Wh[:, :2H]
        const T* h_prev,     // (N, H)
        T* reset_in,         // (N, H) out: r * h_prev
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    T* a = A + (long long)n * 3 * H + j;
    const T* b = ah + (long long)n * 2 * H + j;
    const T z = sigmoid_(a[0] + b[0]);
    const T r = sigmoid_(a[H] + b[H]);
    a[0] = z; a[H] = r;
    reset_in[k] = r * h_prev[k];
}

extern "C" __global__ void gru_step_candidate(
        T* A,                // (N, 3H) z, r; in: the candidate's x_t Wx_c + b_c; out: h~
        const T* ac,         // (N, H) (r * h_prev) Wh_c
        const T* h_prev,     // (N, H)
        T* h_next,           // (N, H)
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    T* a = A + (long long)n * 3 * H + j;
    const T c = tanh(a[2 * H] + ac[k]);
    a[2 * H] = c;
    h_next[k] = h_prev[k] + a[0] * (c - h_prev[k]);
}

extern "C" __global__ void gru_reset_after_step(
        T* A,                // (N, 3H) in: x_t Wx + b; out: z, r, h~
        const T* ah,         // (N, 3H) h_{t-1} Wh
        const T* bh,         // (3H,)
        const T* h_prev,     // (N, H)
        T* reset_in,         // (N, H) out: h_{t-1} Wh_c + bh_c
        T* h_next,           // (N, H)
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    T* a = A + (long long)n * 3 * H + j;
    const T* b = ah + (long long)n * 3 * H + j;
    const T z = sigmoid_(a[0] + b[0] + bh[j]);
    const T r = sigmoid_(a[H] + b[H] + bh[H + j]);
    const T hn = b[2 * H] + bh[2 * H + j];
    const T c = tanh(a[2 * H] + r * hn);
    a[0] = z; a[H] = r; a[2 * H] = c;
    reset_in[k] = hn;
    h_next[k] = h_prev[k] + z * (c - h_prev[k]);
}

extern "C" __global__ void gru_step_backward_zc(
        const T* A,          // (N, 3H) z, r, h~
        const T* h_prev,     // (N, H)
        const T* dh_out,     // (N, H) the gradient of h_t from the output
        const T* dh_next,    // (N, H) } the gradient of h_t from step t+1,
        const T* dh_next2,   // (N, H) } in two parts
        T* dA,               // (N, 3H) out: dz and the candidate's gradient dc
        T* dh_prev,          // (N, H) out: dh_t * (1 - z), the direct part
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    const long long row = (long long)n * 3 * H + j;
    const T z = A[row], c = A[row + 2 * H];
    const T dh = dh_out[k] + dh_next[k] + dh_next2[k];
    dA[row] = dh * (c - h_prev[k]) * z * (T(1) - z);
    dA[row + 2 * H] = dh * z * (T(1) - c * c);
    dh_prev[k] = dh * (T(1) - z);
}

extern "C" __global__ void gru_step_backward_r(
        const T* A,          // (N, 3H) z, r, h~
        const T* h_prev,     // (N, H)
        const T* drh,        // (N, H) the gradient of r * h_prev: dc Wh_c^T
        T* dA,               // (N, 3H) out: dr
        T* dh_prev,          // (N, H) in and out: adds drh * r
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    const long long row = (long long)n * 3 * H + j;
    const T r = A[row + H];
    dA[row + H] = drh[k] * h_prev[k] * r * (T(1) - r);
    dh_prev[k] += drh[k] * r;
}

extern "C" __global__ void gru_reset_after_step_backward(
        const T* A,          // (N, 3H) z, r, h~
        const T* h_prev,     // (N, H)
        const T* reset_in,   // (N, H) h_{t-1} Wh_c + bh_c
        const T* dh_out,     // (N, H) the gradient of h_t from the output
        const T* dh_next,    // (N, H) } the gradient of h_t from step t+1,
        const T* dh_next2,   // (N, H) } in two parts
        T* dA,               // (N, 3H) out: the gradient of x_t Wx + b
        T* dAh,              // (N, 3H) out: the gradient of h_{t-1} Wh + bh
        T* dh_prev,          // (N, H) out: dh_t * (1 - z), the direct part
        const int N, const int H) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * H) return;
    const int n = k / H, j = k - n * H;
    const long long row = (long long)n * 3 * H + j;
    const T z = A[row], r = A[row + H], c = A[row + 2 * H];
    const T dh = dh_out[k] + dh_next[k] + dh_next2[k];
    const T dz = dh * (c - h_prev[k]) * z * (T(1) - z);
    const T dc = dh * z * (T(1) - c * c);
    const T dr = dc * reset_in[k] * r * (T(1) - r);
    dA[row] = dz; dA[row + H] = dr; dA[row + 2 * H] = dc;
    dAh[row] = dz; dAh[row + H] = dr; dAh[row + 2 * H] = dc * r;
    dh_prev[k] = dh * (T(1) - z);
}
"""

def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return with_float_type(KERNEL_SOURCE, dtype_name)


def _launch(name, dtype, N, H, *arrays):
    """Run kernel ``name`` on one thread per element of an ``(N, H)`` block; the
    arrays must be C-contiguous."""
    launch_kernel(KERNEL_SOURCE, name, dtype.name, N * H, (*arrays, np.int32(N), np.int32(H)))


class FusedCache(NamedTuple):
    X: object       # (T*N, D) the inputs, time-major
    G: object       # (T, N, 4H) the gates f, g, i, o
    Hs: object      # (T+1, N, H) the hidden states, the initial one first
    Cs: object      # (T+1, N, H) the cell states, the initial one first
    TC: object      # (T, N, H) tanh(c_t)


class FusedLSTM(Plan):
    """The LSTM with one fused elementwise kernel per step forward and one
    backward (CuPy arrays only)."""

    def forward(self, params, xs, states, prepared=None):
        Wx, Wh, b = params
        h0, c0 = states
        xp = get_array_module(Wx)
        N, T, D = xs.shape
        H = Wh.shape[0]
        X = time_major(xs)                                 # (T*N, D)
        G = input_preactivations(X, Wx, b, T, N)           # (T, N, 4H), then the gates
        Hs = with_initial(xp.ascontiguousarray(h0), T)     # (T+1, N, H)
        Cs = with_initial(xp.ascontiguousarray(c0), T)
        TC = xp.empty((T, N, H), dtype=Wx.dtype)
        ah = xp.empty((N, 4 * H), dtype=Wx.dtype)
        for t in range(T):
            xp.matmul(Hs[t], Wh, out=ah)
            _launch("lstm_step_forward", Wx.dtype, N, H, G[t], ah, Cs[t], Cs[t + 1], TC[t],
                    Hs[t + 1])
        return (batch_major(Hs[1:], N, T), (Hs[T].copy(), Cs[T].copy()),
                FusedCache(X, G, Hs, Cs, TC))

    def backward(self, params, grads, dhs, cache, prepared=None):
        Wx, Wh, _ = params
        xp = get_array_module(Wx)
        X, G, Hs, Cs, TC = cache
        T, N, H = TC.shape
        dt = Wx.dtype
        dhs_tm = xp.ascontiguousarray(dhs.transpose(1, 0, 2))   # (T, N, H)
        dA = xp.empty((T, N, 4 * H), dtype=dt)
        dh = xp.zeros((N, H), dtype=dt)
        dc = xp.zeros((N, H), dtype=dt)
        WhT = Wh.T
        for t in range(T - 1, -1, -1):
            _launch("lstm_step_backward", dt, N, H, G[t], Cs[t], TC[t], dhs_tm[t], dh, dc, dA[t])
            xp.matmul(dA[t], WhT, out=dh)                      # dh_{t-1}
        return gradients_over_steps(X, Hs[:-1], dA, Wx, grads), (dh, dc)


class FusedRNN(Plan):
    """The tanh RNN with one fused kernel per step each way (CuPy arrays only)."""

    def forward(self, params, xs, states, prepared=None):
        Wx, Wh, b = params
        (h0,) = states
        xp = get_array_module(Wx)
        N, T, _ = xs.shape
        H = Wh.shape[0]
        X, Hs = states_over_input_products(xs, h0, Wx, b)  # Hs[t+1] = x_t Wx + b
        ah = xp.empty((N, H), dtype=Wx.dtype)
        for t in range(T):
            xp.matmul(Hs[t], Wh, out=ah)
            _launch("rnn_step_forward", Wx.dtype, N, H, Hs[t + 1], ah)
        return batch_major(Hs[1:], N, T), (Hs[T].copy(),), RNNCache(X, Hs)

    def backward(self, params, grads, dhs, cache, prepared=None):
        Wx, Wh, _ = params
        xp = get_array_module(Wx)
        X, Hs = cache
        T, N, H = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
        dhs_tm = xp.ascontiguousarray(dhs.transpose(1, 0, 2))   # (T, N, H)
        dA = xp.empty((T, N, H), dtype=Wx.dtype)
        dh = xp.zeros((N, H), dtype=Wx.dtype)
        WhT = Wh.T
        for t in range(T - 1, -1, -1):
            _launch("rnn_step_backward", Wx.dtype, N, H, Hs[t + 1], dhs_tm[t], dh, dA[t])
            xp.matmul(dA[t], WhT, out=dh)
        return gradients_over_steps(X, Hs[:-1], dA, Wx, grads), (dh,)


class FusedGRU(Plan):
    """The GRU (the book's form, or with ``reset_after`` the form whose fourth
    param is ``bh``) with fused step kernels (CuPy arrays only)."""

    def __init__(self, reset_after=False):
        self.reset_after = reset_after

    def prepare_forward(self, params):
        """The hidden weights' column blocks as contiguous copies: ``Wh_zr (H,
        2H)`` and ``Wh_c (H, H)`` (the book's form), or None (reset-after)."""
        if self.reset_after:
            return None
        xp = get_array_module(params[1])
        H = params[1].shape[0]
        return xp.ascontiguousarray(params[1][:, :2 * H]), xp.ascontiguousarray(params[1][:, 2 * H:])

    prepare_backward = prepare_forward

    def forward(self, params, xs, states, prepared=None):
        Wx, Wh, b = params[:3]
        reset_after = self.reset_after
        (h0,) = states
        xp = get_array_module(Wx)
        N, T, D = xs.shape
        H = Wh.shape[0]
        dt = Wx.dtype
        X = time_major(xs)                                 # (T*N, D)
        A = input_preactivations(X, Wx, b, T, N)           # (T, N, 3H), then z, r, h~
        Hs = with_initial(xp.ascontiguousarray(h0), T)     # (T+1, N, H)
        reset_in = xp.empty((T, N, H), dtype=dt)
        if reset_after:
            ah = xp.empty((N, 3 * H), dtype=dt)
            for t in range(T):
                xp.matmul(Hs[t], Wh, out=ah)
                _launch("gru_reset_after_step", dt, N, H, A[t], ah, params[3], Hs[t],
                        reset_in[t], Hs[t + 1])
        else:
            Wh_zr, Wh_c = prepared if prepared is not None else self.prepare_forward(params)
            ah = xp.empty((N, 2 * H), dtype=dt)
            ac = xp.empty((N, H), dtype=dt)
            for t in range(T):
                xp.matmul(Hs[t], Wh_zr, out=ah)
                _launch("gru_step_gates", dt, N, H, A[t], ah, Hs[t], reset_in[t])
                xp.matmul(reset_in[t], Wh_c, out=ac)
                _launch("gru_step_candidate", dt, N, H, A[t], ac, Hs[t], Hs[t + 1])
        return batch_major(Hs[1:], N, T), (Hs[T].copy(),), GRUCache(X, A, Hs, reset_in)

    def backward(self, params, grads, dhs, cache, prepared=None):
        Wx, Wh = params[:2]
        reset_after = self.reset_after
        xp = get_array_module(Wx)
        X, A, Hs, reset_in = cache
        T, N, H = reset_in.shape
        dt = Wx.dtype
        dhs_tm = xp.ascontiguousarray(dhs.transpose(1, 0, 2))   # (T, N, H)
        dA = xp.empty((T, N, 3 * H), dtype=dt)
        dh = xp.zeros((N, H), dtype=dt)          # the gradient of h_{t-1}: dh + through
        through = xp.zeros((N, H), dtype=dt)     # the part through the hidden product
        hprev = Hs[:-1]
        if reset_after:
            dAh = xp.empty((T, N, 3 * H), dtype=dt)
            WhT = Wh.T
            dh_t = xp.empty((N, H), dtype=dt)
            for t in range(T - 1, -1, -1):
                _launch("gru_reset_after_step_backward", dt, N, H, A[t], Hs[t], reset_in[t],
                        dhs_tm[t], dh, through, dA[t], dAh[t], dh_t)
                xp.matmul(dAh[t], WhT, out=through)
                dh, dh_t = dh_t, dh
            dAh2 = dAh.reshape(T * N, 3 * H)
            xp.matmul(hprev.reshape(T * N, H).T, dAh2, out=grads[1])
            dAh2.sum(axis=0, out=grads[3])
        else:
            Wh_zr, Wh_c = prepared if prepared is not None else self.prepare_backward(params)
            Wh_zrT, Wh_cT = Wh_zr.T, Wh_c.T
            drh = xp.empty((N, H), dtype=dt)
            dh_t = xp.empty((N, H), dtype=dt)
            for t in range(T - 1, -1, -1):
                _launch("gru_step_backward_zc", dt, N, H, A[t], Hs[t], dhs_tm[t], dh, through,
                        dA[t], dh_t)
                xp.matmul(dA[t, :, 2 * H:], Wh_cT, out=drh)
                _launch("gru_step_backward_r", dt, N, H, A[t], Hs[t], drh, dA[t], dh_t)
                xp.matmul(dA[t, :, :2 * H], Wh_zrT, out=through)
                dh, dh_t = dh_t, dh
            dA2 = dA.reshape(T * N, 3 * H)
            grads[1][:, :2 * H] = xp.matmul(hprev.reshape(T * N, H).T, dA2[:, :2 * H])
            grads[1][:, 2 * H:] = xp.matmul(reset_in.reshape(T * N, H).T, dA2[:, 2 * H:])
        dA2 = dA.reshape(T * N, 3 * H)
        xp.matmul(X.T, dA2, out=grads[0])
        dA2.sum(axis=0, out=grads[2])
        dh += through                            # the initial state's whole gradient
        return batch_major(xp.matmul(dA2, Wx.T), N, T), (dh,)

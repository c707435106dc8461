"""The LSTM on a GPU (CuPy): each step's gate arithmetic in one fused kernel.

On a GPU the time goes into launching kernels, not into the arithmetic: written
with NumPy-style operations, an LSTM step forward is about ten elementwise
kernels and its backward more. Here a step is one product ``h_{t-1} @ Wh`` and
one kernel that reads the step's pre-activations and ``c_{t-1}`` and writes the
four gates, ``c_t``, ``tanh(c_t)`` and ``h_t``; a step backward is one kernel
for the local derivatives (the book's formulas, see
:func:`~timelayers.layers.recurrent_reference.lstm_step_backward`) and one
product ``dA_t @ Wh^T``. The input products of all steps and the weight
gradients are single products over all steps, as in the CPU plans.

The kernels are compiled by CuPy (NVRTC) on first use, once per dtype; CuPy is
imported only when a plan runs, so NumPy users never load it.
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import get_array_module
from .base import Plan, batch_major, time_major, with_initial

__all__ = ["FusedLSTM", "KERNEL_SOURCE"]

_THREADS = 256

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
"""

_C_TYPES = {"float32": "float", "float64": "double"}
_kernels = {}       # (kernel name, dtype name) -> cupy.RawKernel


def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return f"typedef {_C_TYPES[dtype_name]} T;\n" + KERNEL_SOURCE


def _launch(name, dtype, N, H, *arrays):
    """Run kernel ``name`` on one thread per element of an ``(N, H)`` block; the
    arrays must be C-contiguous."""
    import cupy
    import numpy as np

    key = (name, dtype.name)
    if key not in _kernels:
        _kernels[key] = cupy.RawKernel(kernel_source(dtype.name), name)
    blocks = (N * H + _THREADS - 1) // _THREADS
    _kernels[key]((blocks,), (_THREADS,), (*arrays, np.int32(N), np.int32(H)))


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
        G = xp.matmul(X, Wx).reshape(T, N, 4 * H)         # x @ Wx for all steps, then gates
        G += b
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
        dA2 = dA.reshape(T * N, 4 * H)
        xp.matmul(X.T, dA2, out=grads[0])
        xp.matmul(Hs[:-1].reshape(T * N, H).T, dA2, out=grads[1])
        dA2.sum(axis=0, out=grads[2])
        return batch_major(xp.matmul(dA2, Wx.T), N, T), (dh, dc)

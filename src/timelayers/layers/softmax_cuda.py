"""Softmax cross entropy on the GPU in as few kernels as its math needs (CuPy
arrays only; the NumPy path is :class:`timelayers.layers.losses._SoftmaxCrossEntropy`).

For scores ``x (M, C)`` and labels ``t (M,)`` (``ignore`` for rows that do not
count), with ``m`` the row maxima and ``s = sum_j exp(x - m)``::

    nll_i = log(s_i) - (x[i, t_i] - m_i)          loss = sum_i nll_i / count
    dx[i, j] = (exp(x[i, j] - m_i) / s_i - [j == t_i]) * dout / count

Forward: the row maxima (CuPy's reduction), the row sums of ``exp(x - m)`` (one
reduction kernel, nothing written per element), one kernel over the rows for
``nll`` and the rows that count, and the two sums. Backward: one kernel over the
elements, which computes the softmax again from ``x``, ``m`` and ``s`` rather
than keeping an ``(M, C)`` array of exponentials from the forward. Nothing is
read back to the host: the loss and the count stay 0-d arrays on the device.

``forward`` and ``backward`` take the array module from their inputs, and the
two places where CuPy compiles code, :func:`_launch` (the CUDA source below) and
:func:`_row_sum_exp`, are module functions, so that the tests run these same
steps on NumPy arrays with the kernels compiled as C++.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module

__all__ = ["forward", "backward", "kernel_source", "SoftmaxCache"]

_THREADS = 256

KERNEL_SOURCE = r"""
extern "C" __global__ void softmax_ce_rows(
        const T* x, const T* row_max, const T* row_sum, const long long* t,
        T* nll_and_counted, const long long M, const long long C, const long long ignore) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M) return;
    const long long label = t[i];
    if (label == ignore) {
        nll_and_counted[i] = T(0);
        nll_and_counted[M + i] = T(0);
        return;
    }
    nll_and_counted[i] = log(row_sum[i]) - (x[i * C + label] - row_max[i]);
    nll_and_counted[M + i] = T(1);
}

extern "C" __global__ void softmax_ce_backward(
        const T* x, const T* row_max, const T* row_sum, const long long* t, const T* weight,
        T* dx, const long long M, const long long C, const long long ignore) {
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= M * C) return;
    const long long i = k / C;
    const long long label = t[i];
    if (label == ignore) {
        dx[k] = T(0);
        return;
    }
    const T p = exp(x[k] - row_max[i]) / row_sum[i];
    dx[k] = (k - i * C == label ? p - T(1) : p) * weight[0];
}
"""

_C_TYPES = {"float32": "float", "float64": "double"}
_kernels = {}  # (kernel name, dtype name) -> cupy.RawKernel, or "row_sum_exp" -> ReductionKernel


def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return f"typedef {_C_TYPES[dtype_name]} T;\n" + KERNEL_SOURCE


def _launch(name, dtype, threads, *args):
    """Run kernel ``name`` on ``threads`` threads (arrays C-contiguous)."""
    import cupy

    key = (name, np.dtype(dtype).name)
    if key not in _kernels:
        _kernels[key] = cupy.RawKernel(kernel_source(key[1]), name)
    _kernels[key](((threads + _THREADS - 1) // _THREADS,), (_THREADS,), args)


def _row_sum_exp(x2d, row_max):
    """``sum_j exp(x[i, j] - row_max[i])`` for every row, ``(M,)``, in one kernel."""
    import cupy

    if "row_sum_exp" not in _kernels:
        _kernels["row_sum_exp"] = cupy.ReductionKernel(
            "T x, T m", "T s", "exp(x - m)", "a + b", "s = a", "0", "row_sum_exp")
    return _kernels["row_sum_exp"](x2d, row_max[:, None], axis=1)


class SoftmaxCache(NamedTuple):
    x: object        # (M, C) the scores, C-contiguous
    row_max: object  # (M,)
    row_sum: object  # (M,) sum of exp(x - row_max)
    t: object        # (M,) int64 labels
    count: object    # 0-d: the rows that count
    ignore: int      # the label of the rows that do not


def forward(x2d, t1d, ignore_label=None):
    """Mean cross entropy of the softmax of ``x2d (M, C)`` against labels
    ``t1d (M,)`` over the rows whose label is not ``ignore_label`` (0 when none
    counts). Returns ``(loss, cache)``, the loss a 0-d float64 array."""
    xp = get_array_module(x2d)
    M, C = x2d.shape
    x2d = xp.ascontiguousarray(x2d)
    t = xp.ascontiguousarray(t1d, dtype=np.int64)
    ignore = -1 if ignore_label is None else int(ignore_label)  # labels are checked >= 0
    row_max = x2d.max(axis=1)
    row_sum = _row_sum_exp(x2d, row_max)
    sums = xp.empty((2, M), dtype=x2d.dtype)                       # nll, counted
    _launch("softmax_ce_rows", x2d.dtype, M, x2d, row_max, row_sum, t, sums,
            np.int64(M), np.int64(C), np.int64(ignore))
    totals = sums.sum(axis=1, dtype=np.float64)                    # (2,): exact counts
    nll, count = totals[0], totals[1]
    return nll / xp.maximum(count, 1), SoftmaxCache(x2d, row_max, row_sum, t, count, ignore)


def backward(cache, dout=1):
    """The gradient of the scores ``(M, C)``."""
    x, row_max, row_sum, t, count, ignore = cache
    xp = get_array_module(x)
    M, C = x.shape
    weight = (dout / xp.maximum(count, 1)).astype(x.dtype).reshape(1)
    dx = xp.empty_like(x)
    _launch("softmax_ce_backward", x.dtype, M * C, x, row_max, row_sum, t, weight, dx,
            np.int64(M), np.int64(C), np.int64(ignore))
    return dx

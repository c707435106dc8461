"""The softmax on the GPU in as few kernels as its math needs (CuPy arrays only;
the NumPy paths are :func:`timelayers.functions.softmax` and
:class:`timelayers.layers.losses._SoftmaxCrossEntropy`).

**Short rows** (attention weights over the encoder's steps or a window's keys,
at most :data:`MAX_ROW` entries): one thread a row, which takes the row's
maximum, its exponentials and their sum, and writes ``y = exp(x - max) / sum``
(:func:`softmax_rows`); backward, ``dx = y * dy - y * sum(y * dy)``, one thread a
row too (:func:`softmax_rows_backward`). One kernel each way instead of five and
four.

**Softmax cross entropy** over scores ``x (M, C)`` and labels ``t (M,)``
(``ignore`` for rows that do not count), with ``m`` the row maxima and
``s = sum_j exp(x - m)``::

    nll_i = log(s_i) - (x[i, t_i] - m_i)          loss = sum_i nll_i / count
    dx[i, j] = (exp(x[i, j] - m_i) / s_i - [j == t_i]) * dout / count

Forward (:func:`forward`): the row maxima (CuPy's reduction), the row sums of
``exp(x - m)`` (one reduction kernel, nothing written per element), one kernel
over the rows for ``nll`` and the rows that count, and the two sums. Backward
(:func:`backward`): one kernel over the elements, which computes the softmax
again from ``x``, ``m`` and ``s`` rather than keeping an ``(M, C)`` array of
exponentials from the forward. Nothing is read back to the host: the loss and
the count stay 0-d arrays on the device.

The functions take the array module from their inputs, and the two places
where CuPy compiles code, :func:`_launch` (the CUDA source below) and
:func:`_row_sum_exp`, are module functions, so that the tests run these same
steps on NumPy arrays with the kernels compiled as C++.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, import_cupy
from .launch import launch_kernel, with_float_type

__all__ = ["takes", "takes_rows", "softmax_rows", "softmax_rows_backward", "forward", "backward",
           "kernel_source", "SoftmaxCache", "MAX_ROW"]

MAX_ROW = 128  # the longest row the one-thread-a-row kernels take

KERNEL_SOURCE = r"""
extern "C" __global__ void softmax_rows(const T* x, T* y, const long long M, const long long C) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M) return;
    const T* xi = x + i * C;
    T* yi = y + i * C;
    T m = xi[0];
    for (long long j = 1; j < C; ++j) m = xi[j] > m ? xi[j] : m;
    T s = T(0);
    for (long long j = 0; j < C; ++j) {
        yi[j] = exp(xi[j] - m);
        s += yi[j];
    }
    for (long long j = 0; j < C; ++j) yi[j] = yi[j] / s;
}

extern "C" __global__ void softmax_rows_backward(
        const T* y, const T* dy, T* dx, const long long M, const long long C) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M) return;
    const long long at = i * C;
    T s = T(0);
    for (long long j = 0; j < C; ++j) s += y[at + j] * dy[at + j];
    for (long long j = 0; j < C; ++j) dx[at + j] = y[at + j] * dy[at + j] - y[at + j] * s;
}

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

_row_sum_exp_kernel = []  # the ReductionKernel, once made


def takes(x):
    """Whether ``x`` is a CuPy array of a dtype the kernels are built for."""
    return get_array_module(x) is not np and x.dtype.name in ("float32", "float64")


def takes_rows(x):
    """Whether :func:`softmax_rows` takes ``x``: :func:`takes` it, and its rows
    have between 1 and :data:`MAX_ROW` entries."""
    return takes(x) and x.size > 0 and x.shape[-1] <= MAX_ROW


def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return with_float_type(KERNEL_SOURCE, dtype_name)


def _launch(name, dtype, threads, *args):
    """Run kernel ``name`` on ``threads`` threads (arrays C-contiguous)."""
    launch_kernel(KERNEL_SOURCE, name, np.dtype(dtype).name, threads, args)


def _row_sum_exp(x2d, row_max):
    """``sum_j exp(x[i, j] - row_max[i])`` for every row, ``(M,)``, in one kernel."""
    if not _row_sum_exp_kernel:
        cupy = import_cupy()
        _row_sum_exp_kernel.append(cupy.ReductionKernel(
            "T x, T m", "T s", "exp(x - m)", "a + b", "s = a", "0", "row_sum_exp"))
    return _row_sum_exp_kernel[0](x2d, row_max[:, None], axis=1)


def softmax_rows(x):
    """Softmax over the last axis of ``x (..., C)``, ``C <= MAX_ROW``, one thread a row."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    C = x.shape[-1]
    M = x.size // C
    _launch("softmax_rows", x.dtype, M, x, y, np.int64(M), np.int64(C))
    return y


def softmax_rows_backward(y, dy):
    """``dx = y * (dy - sum(y * dy))`` over the last axis, ``C <= MAX_ROW``."""
    xp = get_array_module(y)
    y = xp.ascontiguousarray(y)
    dy = xp.ascontiguousarray(dy, dtype=y.dtype)
    dx = xp.empty_like(y)
    C = y.shape[-1]
    M = y.size // C
    _launch("softmax_rows_backward", y.dtype, M, y, dy, dx, np.int64(M), np.int64(C))
    return dx


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

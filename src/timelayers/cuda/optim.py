"""The optimizers' update rules on a GPU: one kernel a parameter (CuPy arrays
only; the NumPy path is each optimizer's ``_step`` in :mod:`timelayers.optim`).

Written with NumPy-style operations, an update launches a kernel for each
operation of its rule: two a parameter for SGD, ten for Adam, which is most of
the launches of a step of a small model (``benchmarks/count_gpu_operations.py``:
120 of AttentionSeq2seq's 397). Here each rule is one kernel over the elements,
doing the same operations as the NumPy path, in the same order and in the
parameter's dtype (the scalars cast to it as NumPy casts a Python float), so
that the two agree to the last bit where the compiler does not fuse a multiply
and an add (CUDA does by default: then to float32 rounding).

Every update kernel takes ``p, g``, the optimizer's state arrays in its
``_slots`` order, its scalars (:meth:`~timelayers.optim.Optimizer._kernel_scalars`)
and the element count ``n``. Clipping (:func:`norm_and_factor`) keeps the
gradients' ``vdot`` s and computes their sum, the norm and the factor in one
kernel, the same double operations in the same order as the NumPy expression.
"""

from __future__ import annotations

import numpy as np

from ..backend import import_cupy, is_cupy_array
from .launch import launch_kernel, with_float_type

__all__ = ["takes", "step", "norm_and_factor", "KERNEL_SOURCE"]

KERNEL_SOURCE = r"""
extern "C" __global__ void sgd_step(T* p, const T* g, const T lr, const long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    p[i] = p[i] - g[i] * lr;
}

extern "C" __global__ void momentum_step(T* p, const T* g, T* v, const T mu, const T lr,
                                         const long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T vi = v[i] * mu - g[i] * lr;
    v[i] = vi;
    p[i] = p[i] + vi;
}

extern "C" __global__ void nesterov_step(T* p, const T* g, T* v, const T mu2, const T mu1_lr,
                                         const T mu, const T lr, const long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    p[i] = (p[i] + v[i] * mu2) - g[i] * mu1_lr;
    v[i] = v[i] * mu - g[i] * lr;
}

extern "C" __global__ void root_scaled_step(T* p, const T* g, T* h, const T decay,
                                            const T gain, const T lr, const T eps,
                                            const long long n) {
    // AdaGrad (decay 1, gain 1: h + g g) and RMSprop (h decay + g g (1 - decay))
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T hi = h[i] * decay + (g[i] * g[i]) * gain;  // times 1 is exact
    h[i] = hi;
    p[i] = p[i] - (g[i] / (sqrt(hi) + eps)) * lr;
}

extern "C" __global__ void adam_step(T* p, const T* g, T* m, T* v, const T keep,
                                     const T one_minus_beta1, const T one_minus_beta2,
                                     const T eps, const T lr_t, const long long n) {
    // AdamW's decay first (keep = 1 - lr wd; Adam's keep is 1: p unchanged)
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T gi = g[i];
    const T mi = m[i] + (gi - m[i]) * one_minus_beta1;
    const T vi = v[i] + (gi * gi - v[i]) * one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * keep - (mi / (sqrt(vi) + eps)) * lr_t;  // times 1 is exact
}

extern "C" __global__ void clip_factor(const double* squares, const long long count,
                                       const double max_norm, double* norm, double* factor) {
    // one thread: the squares' sum in their order, its root, and the book's rate
    if ((long long)blockIdx.x * blockDim.x + threadIdx.x != 0) return;
    double total = 0.0;
    for (long long k = 0; k < count; ++k) total = total + squares[k];
    const double n = sqrt(total);
    norm[0] = n;
    factor[0] = isfinite(n) ? fmin(max_norm / (n + 1e-6), 1.0) : 1.0;
}
"""


def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return with_float_type(KERNEL_SOURCE, dtype_name)


def takes(p, g, *state) -> bool:
    """Whether :func:`step` takes these arrays: CuPy arrays of float32 or float64,
    all of one dtype and one memory layout (C or Fortran contiguous, the same
    strides), so that element ``i`` of the memory is the same element of each."""
    if not is_cupy_array(p) or p.dtype.name not in ("float32", "float64"):
        return False
    if not (p.flags.c_contiguous or p.flags.f_contiguous):
        return False
    return all(is_cupy_array(a) and a.dtype == p.dtype and a.strides == p.strides
               for a in (g, *state))


def step(kernel, p, g, *state, scalars=()) -> None:
    """Run update kernel ``kernel`` on ``p``, ``g`` and the state arrays (which
    :func:`takes`), in place, with ``scalars`` cast to the parameter's dtype."""
    order = "C" if p.flags.c_contiguous else "F"
    flat = [a.reshape(-1, order=order) for a in (p, g, *state)]  # views, in memory order
    _launch(kernel, p.dtype, p.size,
            (*flat, *(p.dtype.type(s) for s in scalars), np.int64(p.size)))


def norm_and_factor(grads, max_norm):
    """The global norm of ``grads`` (CuPy arrays) and the clipping factor
    ``min(1, max_norm / (norm + 1e-6))`` (1 when the norm is not finite), 0-d
    float64 arrays on the device, as :func:`timelayers.optim.clip_grads` computes
    them: one ``vdot`` a gradient, then one kernel for their sum in order, its
    root and the factor, instead of an addition a gradient and five operations."""
    cupy = import_cupy()
    squares = cupy.stack([cupy.vdot(g.reshape(-1), g.reshape(-1)) for g in grads],
                         dtype=cupy.float64)
    norm, factor = cupy.empty((), cupy.float64), cupy.empty((), cupy.float64)
    _launch("clip_factor", np.float64, 1,
            (squares, np.int64(len(grads)), np.float64(max_norm), norm, factor))
    return norm, factor


def _launch(name, dtype, threads, args):
    """Run kernel ``name`` on ``threads`` threads (the tests run it on the CPU)."""
    launch_kernel(KERNEL_SOURCE, name, np.dtype(dtype).name, threads, args)

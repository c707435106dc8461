"""Dropout masks drawn on the GPU, from a counter.

Element ``i`` of a mask drawn with seed ``s`` comes from a hash of ``s`` and
``i`` (the finaliser of SplitMix64, Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014): no generator state lives on the
device, a draw is one kernel, and the host only draws the 64-bit seed from the
layer's ``numpy.random.Generator`` (so a checkpoint of that generator restores
the masks too). The same seed gives the same mask on any GPU;
:func:`keep_mask_reference` computes it with NumPy, for the tests.

Uniform numbers take the hash's top 24 bits, ``u = (z >> 40) / 2**24`` in
``[0, 1)``; an element is kept when ``u >= ratio``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_mask", "keep_mask_reference", "KERNEL_SOURCE"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_THREADS = 256

KERNEL_SOURCE = r"""
extern "C" __global__ void scaled_keep_mask(
        T* mask, const unsigned long long seed, const long long n,
        const float ratio, const T scale) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const float u = (float)(z >> 40) * (1.0f / 16777216.0f);
    mask[i] = u >= ratio ? scale : T(0);
}
"""

_C_TYPES = {"float32": "float", "float64": "double"}
_kernels = {}


def kernel_source(dtype_name):
    """The kernel's CUDA source for ``"float32"`` or ``"float64"``."""
    return f"typedef {_C_TYPES[dtype_name]} T;\n" + KERNEL_SOURCE


def keep_mask(seed, shape, ratio, dtype):
    """A CuPy array of ``shape`` and ``dtype``: ``1 / (1 - ratio)`` where the
    element is kept, 0 where it is dropped."""
    import cupy

    dtype = np.dtype(dtype)
    if dtype.name not in _kernels:
        _kernels[dtype.name] = cupy.RawKernel(kernel_source(dtype.name), "scaled_keep_mask")
    mask = cupy.empty(shape, dtype=dtype)
    n = mask.size
    blocks = max(1, (n + _THREADS - 1) // _THREADS)
    _kernels[dtype.name]((blocks,), (_THREADS,),
                         (mask, np.uint64(seed), np.int64(n), np.float32(ratio),
                          dtype.type(1.0 / (1.0 - ratio))))
    return mask


def keep_mask_reference(seed, shape, ratio, dtype):
    """:func:`keep_mask` computed with NumPy (uint64 arithmetic wraps as in CUDA)."""
    n = int(np.prod(shape))
    z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(_GOLDEN))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    dtype = np.dtype(dtype)
    scale = dtype.type(1.0 / (1.0 - ratio))
    return np.where(u >= np.float32(ratio), scale, dtype.type(0)).reshape(shape)

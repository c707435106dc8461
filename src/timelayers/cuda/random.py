"""Random numbers drawn on the GPU, from a counter: dropout masks and the keys
of negative sampling.

Draw ``i`` made with seed ``s`` comes from a hash of ``s`` and ``i`` (the
finaliser of SplitMix64, Steele, Lea and Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014): no generator state lives on the device, a
draw is one kernel, and the host only draws the 64-bit seed from the layer's
``numpy.random.Generator`` (so a checkpoint of that generator restores the
draws too). The same seed gives the same numbers on any GPU;
:func:`keep_mask_reference` and :func:`exponential_keys_reference` compute
them with NumPy, for the CPU and the tests.

- Dropout: a uniform number from the hash's top 24 bits, ``u = (z >> 40) / 2**24``
  in ``[0, 1)``; an element is kept when ``u >= ratio``.
- Negative sampling: for row ``n`` and word ``w`` of a batch of vocabulary
  ``V``, draw ``i = n V + w``, a uniform number from the top 53 bits,
  ``u = ((z >> 11) + 1) / 2**53`` in ``(0, 1]``, and the key
  ``-log(u) / p[w]`` (an exponential variable over ``p[w]``; infinity for the
  row's target and for words with ``p[w] = 0``). The ``k`` smallest keys of a
  row are a draw of ``k`` words without replacement
  (:class:`~timelayers.layers.sampling.UnigramSampler`).
"""

from __future__ import annotations

import numpy as np

from .launch import launch_kernel, with_float_type

from ..backend import import_cupy

__all__ = ["keep_mask", "keep_mask_reference", "exponential_keys", "exponential_keys_reference",
           "KERNEL_SOURCE"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
KERNEL_SOURCE = r"""
__device__ __forceinline__ unsigned long long mix64(const unsigned long long seed,
                                                    const long long i) {
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

extern "C" __global__ void scaled_keep_mask(
        T* mask, const unsigned long long seed, const long long n,
        const float ratio, const T scale) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float u = (float)(mix64(seed, i) >> 40) * (1.0f / 16777216.0f);
    mask[i] = u >= ratio ? scale : T(0);
}

extern "C" __global__ void exponential_keys(
        double* keys, const double* inv_p, const long long* targets,
        const unsigned long long seed, const long long first_row, const long long rows,
        const long long vocab, const double infinity) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * vocab) return;
    const long long n = i / vocab, w = i - n * vocab;
    const double ip = inv_p[w];  // 1 / p[w], or -1 where p[w] == 0
    if (w == targets[n] || ip < 0) {
        keys[i] = infinity;
        return;
    }
    const unsigned long long z = mix64(seed, first_row * vocab + i);
    const double u = (double)((z >> 11) + 1) * (1.0 / 9007199254740992.0);
    keys[i] = -log(u) * ip;
}
"""

def kernel_source(dtype_name):
    """The kernels' CUDA source for ``"float32"`` or ``"float64"``."""
    return with_float_type(KERNEL_SOURCE, dtype_name)


def keep_mask(seed, shape, ratio, dtype):
    """A CuPy array of ``shape`` and ``dtype``: ``1 / (1 - ratio)`` where the
    element is kept, 0 where it is dropped."""
    cupy = import_cupy()
    dtype = np.dtype(dtype)
    mask = cupy.empty(shape, dtype=dtype)
    n = mask.size
    launch_kernel(KERNEL_SOURCE, "scaled_keep_mask", dtype.name, n,
                  (mask, np.uint64(seed), np.int64(n), np.float32(ratio),
                   dtype.type(1.0 / (1.0 - ratio))))
    return mask


def keep_mask_reference(seed, shape, ratio, dtype):
    """:func:`keep_mask` computed with NumPy (uint64 arithmetic wraps as in CUDA)."""
    n = int(np.prod(shape))
    z = _mix64_reference(seed, np.arange(n, dtype=np.uint64))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    dtype = np.dtype(dtype)
    scale = dtype.type(1.0 / (1.0 - ratio))
    return np.where(u >= np.float32(ratio), scale, dtype.type(0)).reshape(shape)


def inverse_probabilities(p):
    """``1 / p`` as the keys' kernel takes it: float64, -1 where ``p == 0``."""
    p = np.asarray(p, dtype=np.float64)
    inv = np.full(p.shape, -1.0)
    np.divide(1.0, p, out=inv, where=p > 0)
    return inv


def exponential_keys(seed, targets, inv_p, first_row=0):
    """The keys of negative sampling, on the GPU: a CuPy float64 array ``(n, V)``
    for the rows ``first_row ... first_row + n - 1`` of a batch drawn with
    ``seed``, whose targets are ``targets`` (CuPy ints ``(n,)``); ``inv_p`` is
    :func:`inverse_probabilities` of the sampling distribution on the device
    ``(V,)``. Rows drawn apart give the keys of the whole batch."""
    cupy = import_cupy()
    targets = cupy.ascontiguousarray(targets, dtype=cupy.int64)
    rows, vocab = targets.size, inv_p.size
    keys = cupy.empty((rows, vocab), dtype=cupy.float64)
    launch_kernel(KERNEL_SOURCE, "exponential_keys", "float64", keys.size,
                  (keys, cupy.ascontiguousarray(inv_p, dtype=cupy.float64), targets,
                   np.uint64(seed), np.int64(first_row), np.int64(rows), np.int64(vocab),
                   np.float64(np.inf)))
    return keys


def exponential_keys_reference(seed, targets, inv_p, first_row=0):
    """:func:`exponential_keys` computed with NumPy (``targets`` and ``inv_p``
    NumPy arrays)."""
    targets = np.asarray(targets, dtype=np.int64)
    rows, vocab = targets.size, inv_p.size
    i = np.arange(rows * vocab, dtype=np.uint64) + np.uint64(first_row * vocab)
    z = _mix64_reference(seed, i)
    u = ((z >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * (1.0 / 9007199254740992.0)
    keys = (-np.log(u)).reshape(rows, vocab) * inv_p
    keys[(inv_p < 0)[None, :] | (np.arange(vocab) == targets[:, None])] = np.inf
    return keys


def _mix64_reference(seed, i):
    """``mix64(seed, i)`` of the kernels for uint64 indices ``i``."""
    z = np.uint64(seed) + (i + np.uint64(1)) * np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))

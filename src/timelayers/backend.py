"""Array-module selection: NumPy by default, CuPy when the arrays are CuPy arrays.

There is no global GPU switch: code asks its inputs which module they belong to.
CuPy is imported only when an input is a CuPy array or :func:`to_gpu` is called.
"""

from __future__ import annotations

import numpy as np

__all__ = ["get_array_module", "is_cupy_array", "to_cpu", "to_gpu", "cupy_available"]


def is_cupy_array(x) -> bool:
    """True when ``x`` is a CuPy ndarray (checked without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Non-array arguments (None, Python numbers) are ignored.
    """
    for a in arrays:
        if is_cupy_array(a):
            import cupy

            return cupy
    return np


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or a CUDA runtime error when there is no GPU
        return False


def to_cpu(x):
    """Return ``x`` as a NumPy array (copying from the GPU when needed)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_gpu(x):
    """Return ``x`` as a CuPy array on the current device (imports CuPy)."""
    import cupy

    return cupy.asarray(x)


# -- CUDA kernels of the library (CuPy's RawKernel) --------------------------------------
_C_TYPES = {"float32": "float", "float64": "double"}
_THREADS = 256
_raw_kernels = {}  # (source, kernel name, dtype name) -> cupy.RawKernel


def with_float_type(source: str, dtype_name: str) -> str:
    """CUDA ``source`` with ``T`` defined as the C type of ``"float32"`` or
    ``"float64"``."""
    return f"typedef {_C_TYPES[dtype_name]} T;\n" + source


def launch_kernel(source: str, name: str, dtype_name: str, threads: int, args) -> None:
    """Run kernel ``name`` of CUDA ``source`` (``T`` the C type of
    ``dtype_name``) on ``threads`` threads, in blocks of 256; CuPy compiles it
    once per source, name and dtype. Array arguments must be C-contiguous,
    scalars NumPy scalars of the kernel's C types. No threads, no launch."""
    if threads == 0:
        return
    key = (source, name, dtype_name)  # the source's hash is computed once, with the string
    kernel = _raw_kernels.get(key)
    if kernel is None:
        import cupy

        kernel = _raw_kernels[key] = cupy.RawKernel(with_float_type(source, dtype_name), name)
    kernel(((threads + _THREADS - 1) // _THREADS,), (_THREADS,), tuple(args))

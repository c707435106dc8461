"""The library's CUDA kernels launched through CuPy's ``RawKernel``: each source is
compiled once per kernel name and float type, on first use."""

from __future__ import annotations

from ..backend import import_cupy

__all__ = ["launch_kernel", "with_float_type"]

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
        cupy = import_cupy()
        kernel = _raw_kernels[key] = cupy.RawKernel(with_float_type(source, dtype_name), name)
    kernel(((threads + _THREADS - 1) // _THREADS,), (_THREADS,), tuple(args))

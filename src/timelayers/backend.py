"""Array-module selection: NumPy by default, CuPy when the arrays are CuPy arrays.

There is no global GPU switch: code asks its inputs which module they belong to.
CuPy is imported only when an input is a CuPy array or :func:`to_gpu` is called.
"""

from __future__ import annotations

import numpy as np

from .errors import OptionError

__all__ = ["get_array_module", "is_cupy_array", "is_fortran_only", "to_cpu", "to_gpu",
           "cupy_available", "import_cupy"]


CUPY_INSTALL_HINT = ("install the CuPy package built for your CUDA version, e.g. "
                     "pip install cupy-cuda12x")


def import_cupy():
    """The ``cupy`` module: the library's one import of CuPy, made on first use
    (NumPy users never load it). Raises :class:`OptionError` when it is not
    installed."""
    try:
        import cupy
    except ImportError:
        raise OptionError(f"CuPy is not installed: {CUPY_INSTALL_HINT}") from None
    return cupy


def is_cupy_array(x) -> bool:
    """True when ``x`` is a CuPy ndarray (checked without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def is_fortran_only(a) -> bool:
    """True when ``a`` is Fortran-ordered and not also C-ordered (a tied
    embedding's transpose): arrays made to match it take its order."""
    return a.flags.f_contiguous and not a.flags.c_contiguous


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Non-array arguments (None, Python numbers) are ignored.
    """
    for a in arrays:
        if is_cupy_array(a):
            return import_cupy()
    return np


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        return import_cupy().cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or a CUDA runtime error when there is no GPU
        return False


def to_cpu(x):
    """Return ``x`` as a NumPy array (copying from the GPU when needed)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_gpu(x):
    """Return ``x`` as a CuPy array on the current device (imports CuPy)."""
    return import_cupy().asarray(x)

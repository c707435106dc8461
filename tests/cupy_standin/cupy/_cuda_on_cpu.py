"""The library's CUDA kernels built for the CPU: shared by the CuPy stand-in's
``RawKernel`` and by ``tests/support/devices.CpuKernels`` (which loads this file by its
path, without the stand-in).

A CUDA kernel is a function of one thread, whose index it computes from
``blockIdx``, ``blockDim`` and ``threadIdx``. Compiled as C++ with those three as
globals (``blockIdx = 0``, ``blockDim = 1``), beside a ``launch_<kernel>(threads,
...)`` that sets ``threadIdx.x`` to each of ``0 .. threads - 1`` in turn and calls
the kernel, it runs every thread of a launch, one after another, on the memory
of NumPy arrays. The kernels of the library use no shared memory and no
``__syncthreads``, so one thread after another is one of the orders a GPU may
run them in.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

__all__ = ["compiler", "build", "argument"]

PRELUDE = r"""
#include <cmath>
using std::exp; using std::log; using std::tanh; using std::sqrt; using std::fabs;
using std::isfinite; using std::isnan; using std::isinf; using std::fmax; using std::fmin;
struct Index { long long x, y, z; };
static Index blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, threadIdx = {0, 0, 0};
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
"""
_C_TYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
            np.dtype(np.uint32): ctypes.c_uint32, np.dtype(np.uint64): ctypes.c_uint64,
            np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}
_KERNEL = r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)'
_libraries = {}
_build_dir = []


def compiler():
    """The C++ compiler to build with (``$CXX``, ``g++`` or ``c++``), or None."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def build(source: str):
    """``source`` built as a shared library (once per source), with a
    ``launch_<kernel>(long long threads, <the kernel's parameters>)`` for every
    ``extern "C" __global__`` kernel in it."""
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _libraries:
        code = re.sub(r"//[^\n]*", "", source)
        launchers = []
        for m in re.finditer(_KERNEL, code):
            name, signature = m.group(1), m.group(2)
            params = [re.findall(r"\w+", p)[-1] for p in signature.split(",") if p.strip()]
            launchers.append(f'extern "C" void launch_{name}(long long threads, {signature}) {{\n'
                             f"    for (long long k = 0; k < threads; ++k) {{\n"
                             f"        threadIdx.x = k;\n"
                             f"        {name}({', '.join(params)});\n"
                             f"    }}\n}}\n")
        if not _build_dir:
            _build_dir.append(tempfile.mkdtemp(prefix="timelayers-cuda-on-cpu-"))
        cpp = os.path.join(_build_dir[0], f"{key[:16]}.cpp")
        so = os.path.join(_build_dir[0], f"{key[:16]}.so")
        with open(cpp, "w") as f:
            f.write(PRELUDE + source + "\n" + "\n".join(launchers))
        done = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", so, cpp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the kernel source does not build as C++:\n{done.stderr[-3000:]}")
        _libraries[key] = ctypes.CDLL(so)
    return _libraries[key]


def argument(a, where: str):
    """A kernel argument for ctypes: a C-contiguous NumPy array as its pointer, a
    NumPy scalar of a C type by value (what a CUDA launch takes)."""
    if isinstance(a, np.ndarray):
        if not a.flags.c_contiguous:
            raise ValueError(f"{where}: a kernel argument is not C-contiguous")
        return ctypes.c_void_p(a.ctypes.data)
    if not isinstance(a, np.generic) or np.dtype(type(a)) not in _C_TYPES:
        raise TypeError(f"{where}: kernel scalars must be NumPy scalars of a C type, "
                        f"got {type(a).__name__}")
    return _C_TYPES[np.dtype(type(a))](a.item())


def launch(source: str, name: str, threads: int, args, where: str) -> None:
    """Run ``threads`` threads of kernel ``name`` of ``source`` on ``args``."""
    kernel = getattr(build(source), f"launch_{name}")
    kernel(ctypes.c_longlong(threads), *[argument(a, where) for a in args])

"""Assertions and test doubles used across the tests."""

import ctypes
import os
import shutil
import subprocess
import tempfile

import numpy as np

from timelayers import check_layer
from timelayers.backend import to_cpu


def randn(xp, rng, *shape, dtype=np.float64):
    return xp.asarray(rng.standard_normal(shape).astype(dtype))


def assert_gradcheck(layer, *inputs, tol=1e-6, **kwargs):
    """Every input and param gradient within ``tol`` of central differences."""
    errors = check_layer(layer, *inputs, **kwargs)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradcheck failed for {type(layer).__name__}: {errors}"
    return errors


def assert_close(a, b, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(to_cpu(a), to_cpu(b), rtol=rtol, atol=atol)


def fail_writes_after(monkeypatch, limit, error):
    """Make the files that ``timelayers.serialization`` opens write their first
    ``limit`` bytes, then raise ``error`` (a disk that fills up part-way)."""
    import timelayers.serialization as ser

    real_fdopen = os.fdopen

    class FailsAfter:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            b = memoryview(b).cast("B")
            if self.n + len(b) > limit:
                self.f.write(b[:limit - self.n])  # a partial write
                raise error
            self.n += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(ser.os, "fdopen", lambda fd, mode: FailsAfter(real_fdopen(fd, mode)))


class HostReadError(AssertionError):
    """A value was read to the host where the code should have kept it on the device."""


class DeviceArrayDouble(np.lib.mixins.NDArrayOperatorsMixin):
    """A NumPy array posing as an array on a device (as a CuPy array is): arithmetic,
    ufuncs and NumPy functions work on it and return doubles again, but every read
    of a value on the host -- ``float()``, ``int()``, ``bool()``, ``.item()``,
    formatting, ``numpy.asarray`` -- calls ``on_read()`` first, which by default
    raises :class:`HostReadError`. Results inherit the ``on_read`` of the first
    double among their inputs. ``.array`` is the NumPy array inside."""

    def __init__(self, array, on_read=None):
        self.array = np.asarray(array)
        self.on_read = on_read or self._refuse

    @staticmethod
    def _refuse():
        raise HostReadError("a device value was read to the host")

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    size = property(lambda self: self.array.size)
    ndim = property(lambda self: self.array.ndim)

    def _wrap(self, value):
        if isinstance(value, tuple):
            return tuple(self._wrap(v) for v in value)
        if isinstance(value, (np.ndarray, np.generic)):
            return DeviceArrayDouble(value, self.on_read)
        return value

    @staticmethod
    def _unwrap(value):
        if isinstance(value, DeviceArrayDouble):
            return value.array
        if isinstance(value, (list, tuple)):
            return type(value)(DeviceArrayDouble._unwrap(v) for v in value)
        return value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = self._unwrap(out)
        result = getattr(ufunc, method)(*self._unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return self._wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return self._wrap(func(*self._unwrap(args), **{k: self._unwrap(v)
                                                        for k, v in kwargs.items()}))

    def reshape(self, *shape):
        return self._wrap(self.array.reshape(*shape))

    def astype(self, dtype):
        return self._wrap(self.array.astype(dtype))

    def copy(self):
        return self._wrap(self.array.copy())

    def __getitem__(self, key):
        return self._wrap(self.array[key])

    def _read(self, convert):
        self.on_read()
        return convert(self.array)

    def __float__(self):
        return self._read(float)

    def __int__(self):
        return self._read(int)

    def __index__(self):
        return self._read(lambda a: a.__index__())

    def __bool__(self):
        return self._read(bool)

    def __format__(self, spec):
        return self._read(lambda a: format(a.item(), spec))

    def item(self):
        return self._read(lambda a: a.item())

    def __array__(self, dtype=None, copy=None):
        return self._read(lambda a: a if dtype is None else a.astype(dtype))

    def __repr__(self):
        return f"DeviceArrayDouble({self.array!r})"


def assert_gradcheck_attention(layer, *inputs, tol=1e-6, **kwargs):
    """:func:`assert_gradcheck` for layers and models with attention key biases
    (params named ``...bk``): their true gradient is exactly zero (adding a
    constant to all of a query's scores leaves its softmax unchanged), so they
    are checked to be below 1e-12 in absolute value instead of by relative error."""
    errors = check_layer(layer, *inputs, **kwargs)
    for name, grad in zip(layer.param_names, layer.grads):
        if name.endswith("bk"):
            assert float(np.abs(to_cpu(grad)).max()) < 1e-12, f"{name}: {grad}"
            errors.pop(name)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradcheck failed for {type(layer).__name__}: {errors}"
    return errors


def no_device_sync(xp):
    """A context in which CuPy refuses to wait for the GPU
    (``cupyx.allow_synchronize(False)``); nothing for NumPy."""
    import contextlib

    if xp is np:
        return contextlib.nullcontext()
    import cupyx

    return cupyx.allow_synchronize(False)

# ----------------------------------------------------------------------------- CUDA on a CPU
# The library's CUDA kernels compiled for the CPU, to test their arithmetic and
# the plans that launch them where there is no GPU. A CUDA kernel is a function
# of one thread, whose index it computes from blockIdx, blockDim and threadIdx;
# compiled as C++ with those three as globals, it runs one thread per call.
# CpuKernels builds a source (with g++, or $CXX) into a shared library per dtype
# and launches a kernel by calling it once per thread on NumPy arrays, checking
# that every array is C-contiguous as the GPU needs.

PRELUDE = r"""
#include <cmath>
using std::exp;
using std::tanh;
struct Index { int x; };
Index blockIdx = {0}, blockDim = {1}, threadIdx = {0};
#define __global__
#define __device__
#define __forceinline__ inline
extern "C" void set_thread(int k) { threadIdx.x = k; }
"""


def cxx_compiler():
    """The C++ compiler to use, or None."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


class CpuKernels:
    """The kernels of ``source(dtype_name)`` (a function giving CUDA source for
    "float32" or "float64"), built for the CPU on first use."""

    def __init__(self, source):
        self.source = source
        self.libs = {}
        self.tmp = tempfile.mkdtemp(prefix="timelayers-cuda-on-cpu-")

    def library(self, dtype_name):
        if dtype_name not in self.libs:
            cpp = os.path.join(self.tmp, f"kernels_{dtype_name}.cpp")
            so = os.path.join(self.tmp, f"kernels_{dtype_name}.so")
            with open(cpp, "w") as f:
                f.write(PRELUDE + self.source(dtype_name))
            subprocess.run([cxx_compiler(), "-O1", "-shared", "-fPIC", "-o", so, cpp], check=True,
                           capture_output=True)
            self.libs[dtype_name] = ctypes.CDLL(so)
        return self.libs[dtype_name]

    def launch(self, name, dtype_name, threads, args):
        """Run kernel ``name`` on ``threads`` threads; ``args`` are NumPy arrays
        (passed as pointers) and NumPy scalars (passed by value)."""
        lib = self.library(dtype_name)
        kernel = getattr(lib, name)
        c_args = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{name}: an argument is not C-contiguous"
                c_args.append(ctypes.c_void_p(a.ctypes.data))
            else:
                c_args.append(_by_value(a))
        for k in range(threads):
            lib.set_thread(k)
            kernel(*c_args)


def _by_value(x):
    x = np.asarray(x)
    return {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
            np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.float32): ctypes.c_float,
            np.dtype(np.float64): ctypes.c_double}[x.dtype](x.item())

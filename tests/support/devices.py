"""Device doubles and harnesses: the CuPy switch, a device array that refuses host reads,
and the library's CUDA kernels compiled for the CPU (the CuPy stand-in's builder)."""

import contextlib
import importlib.util
import os
import warnings

import numpy as np
import pytest


CUPY_TESTS = os.environ.get("TIMELAYERS_TEST_CUPY") in ("1", "standin")
"""Whether the CuPy tests run: on a GPU (``1``) or on the stand-in (``standin``)."""


def needs_cupy(test):
    """A test of CuPy arrays alone: skipped unless ``TIMELAYERS_TEST_CUPY`` is set,
    and marked ``cupy`` (what the stand-in's run selects, with the ``xp=cupy``
    cases of the other tests)."""
    skip = pytest.mark.skipif(not CUPY_TESTS, reason="needs TIMELAYERS_TEST_CUPY=1 (CuPy and "
                                                     "a GPU) or =standin")
    return pytest.mark.cupy(skip(test))


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


@contextlib.contextmanager
def no_device_sync(xp):
    """A context in which CuPy refuses to wait for the GPU
    (``cupyx.allow_synchronize(False)``); nothing for NumPy. The id checks that
    earlier code left pending are flushed first: their flush, a host read, must
    not fall inside."""
    if xp is np:
        yield
        return
    import cupyx

    from timelayers._checks import flush_device_checks

    flush_device_checks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # CuPy warns that allow_synchronize will go
        with cupyx.allow_synchronize(False):
            yield


def _load_cuda_on_cpu():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cupy_standin", "cupy",
                        "_cuda_on_cpu.py")
    spec = importlib.util.spec_from_file_location("_timelayers_tests_cuda_on_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cuda_on_cpu = _load_cuda_on_cpu()


cxx_compiler = cuda_on_cpu.compiler


class CpuKernels:
    """The kernels of ``source(dtype_name)`` (a function giving CUDA source for
    "float32" or "float64"), built for the CPU on first use."""

    def __init__(self, source):
        self.source = source

    def launch(self, name, dtype_name, threads, args):
        """Run kernel ``name`` on ``threads`` threads; ``args`` are C-contiguous
        NumPy arrays (passed as pointers) and NumPy scalars (passed by value)."""
        cuda_on_cpu.launch(self.source(dtype_name), name, threads, args, name)

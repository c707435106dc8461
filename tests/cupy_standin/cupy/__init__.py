"""A stand-in for CuPy on the CPU, to run the library's CuPy branches where there
is no GPU: ``TIMELAYERS_TEST_CUPY=standin make test`` (see ``tests/conftest.py``).

It is NumPy underneath, and keeps the rules of CuPy that the library's GPU code
must keep, so that a fault in that code shows here before a GPU is lent:

- only the names of CuPy 14.2's namespace and ``ndarray`` exist (:mod:`._names`);
- a stand-in array is not a NumPy array: ``numpy.asarray(x)`` raises as CuPy's
  does, and a NumPy array among a function's or an operator's array arguments
  raises (only :func:`asarray` and :func:`array` take host data);
- reductions and full indexing give 0-d arrays, not scalars;
- every read of the device (``get``, ``item``, ``tolist``, ``float``, ``int``,
  ``bool``, boolean-mask indexing, ``nonzero``...) raises
  ``cupyx.DeviceSynchronized`` inside ``cupyx.allow_synchronize(False)``;
- ``RawKernel`` compiles the CUDA source as C++ (``$CXX`` or ``g++``) and runs
  every thread of the grid, one after another, on the arrays' memory (C
  contiguous arrays and NumPy scalars as arguments, as on a GPU);
- ``ReductionKernel`` evaluates its map, reduce and post-map expressions with NumPy
  (sums, maxima and minima).

It does not give CuPy's semantics where they differ from NumPy's, the GPU's
rounding, or any speed.
"""

from __future__ import annotations

import collections
import contextlib

import numpy as _np
from numpy.lib.mixins import NDArrayOperatorsMixin as _Operators

from . import _cuda_on_cpu, _names
from . import cuda, testing  # noqa: F401  (cupy.cuda, cupy.testing)

__version__ = "14.2.0+standin"

_state = {"sync_allowed": True}

operations = collections.Counter()
"""What the arrays asked of the device, by kind (``"matmul"``, ``"kernel
lstm_step_forward"``, ``"setitem"``...): one count for each operation CuPy would
run as a kernel (or a cuBLAS call, or a copy); views, shapes and ``empty`` are
not counted. ``benchmarks/count_gpu_operations.py`` reads it."""

_NO_KERNEL = {"empty", "empty_like", "ndim", "shape", "size", "result_type", "can_cast",
              "get_array_module", "isscalar", "broadcast_to", "broadcast_arrays",
              "expand_dims", "squeeze", "reshape", "transpose", "swapaxes", "moveaxis",
              "ravel", "view", "atleast_1d", "atleast_2d", "atleast_3d", "shares_memory",
              "may_share_memory", "iinfo", "finfo", "dtype"}


class DeviceSynchronized(RuntimeError):
    """A read of the device inside ``cupyx.allow_synchronize(False)``."""


def _host_read(what: str) -> None:
    if not _state["sync_allowed"]:
        raise DeviceSynchronized(f"cupy stand-in: {what} waits for the device, inside "
                                 f"cupyx.allow_synchronize(False)")


@contextlib.contextmanager
def _allow_synchronize(allow: bool):
    before = _state["sync_allowed"]
    _state["sync_allowed"] = bool(allow)
    try:
        yield
    finally:
        _state["sync_allowed"] = before


# ----------------------------------------------------------------------------- arrays

def _unwrap(x, host_ok=False, where="cupy"):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray) and not host_ok:
        raise TypeError(f"{where}: Unsupported type {type(x)} (a NumPy array where CuPy "
                        f"takes a cupy.ndarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, host_ok, where) for v in x)
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray._of(x)
    if isinstance(x, _np.generic) and not isinstance(x, (_np.str_, _np.bytes_)):
        return ndarray._of(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _result(result, kwargs):
    """``result`` wrapped; the caller's ``out`` array itself where it is the
    result (so that ``a += b`` keeps ``a`` the same object, as CuPy does)."""
    out = kwargs.get("out")
    outs = out if isinstance(out, tuple) else (out,)
    results = result if isinstance(result, tuple) else (result,)
    if out is not None and len(outs) == len(results):
        kept = tuple(o if isinstance(o, ndarray) and r is o._a else _wrap(r)
                     for o, r in zip(outs, results))
        return kept if isinstance(result, tuple) else kept[0]
    return _wrap(result)


_SYNC_METHODS = {"get", "item", "tolist", "tofile", "tobytes", "dump", "dumps", "nonzero",
                 "compress"}


class ndarray(_Operators):
    """A CuPy array held in a NumPy array ``_a``."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # -- what NumPy sees ---------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        operations[ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"] += 1
        where = f"cupy.{ufunc.__name__}"
        result = getattr(ufunc, method)(*_unwrap(inputs, where=where),
                                        **_unwrap_kwargs(kwargs, where))
        return _result(result, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in _names.MODULE:
            return NotImplemented
        return _lookup(func.__name__)(*args, **kwargs)

    # -- reads of the device ----------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        _host_read("ndarray.get()")
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        self._a[...] = arr

    def __float__(self):
        _host_read("float(ndarray)")
        return float(self._a)

    def __int__(self):
        _host_read("int(ndarray)")
        return int(self._a)

    def __complex__(self):
        _host_read("complex(ndarray)")
        return complex(self._a)

    def __bool__(self):
        _host_read("bool(ndarray)")
        return bool(self._a)

    def __repr__(self):
        _host_read("repr(ndarray)")
        return "cupy-standin." + repr(self._a)

    __str__ = __repr__

    # -- the array's protocol ------------------------------------------------------------
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(row) for row in self._a) if self._a.ndim else iter(())

    def __getitem__(self, key):
        key = self._index(key)
        if any(isinstance(k, _np.ndarray) for k in (key if isinstance(key, tuple) else (key,))):
            operations["getitem (gather)"] += 1
        return _wrap(self._a[key])

    def __setitem__(self, key, value):
        operations["setitem"] += 1
        key = self._index(key)
        self._a[key] = _unwrap(value, host_ok=True)

    def _index(self, key):
        """``key`` for the NumPy array. Integer arrays in it wrap around, as CuPy's
        do (an out-of-range index is taken modulo its axis, not an IndexError)."""
        parts = key if isinstance(key, tuple) else (key,)
        axis, out = 0, []
        for i, part in enumerate(parts):
            if isinstance(part, _np.ndarray) and part.ndim > 0:
                raise TypeError("cupy: indexing a cupy.ndarray with a NumPy array")
            if part is Ellipsis:
                rest = sum(1 for p in parts[i + 1:] if p is not None)
                axis = self._a.ndim - rest
            elif part is None:
                pass
            elif isinstance(part, ndarray) and part._a.dtype == bool:
                _host_read("indexing with a boolean mask")
                axis += part._a.ndim
                part = part._a
            elif isinstance(part, ndarray) and part._a.dtype.kind in "iu":
                part = part._a % self._a.shape[axis]
                axis += 1
            else:
                part = _unwrap(part, host_ok=True)
                axis += 1
            out.append(part)
        return tuple(out) if isinstance(key, tuple) else out[0]

    def __getattr__(self, name):
        if name not in _names.NDARRAY:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        value = getattr(self._a, name)
        if name == "flags" or not callable(value):
            return _wrap(value) if name in ("T", "real", "imag", "base", "flat") else value
        if name in _SYNC_METHODS:
            _host_read(f"ndarray.{name}()")
        method = f"ndarray.{name}"

        def call(*args, **kwargs):
            if name not in _NO_KERNEL and not (name == "astype" and kwargs.get("copy") is False
                                               and _np.dtype(args[0]) == self._a.dtype):
                operations[f"ndarray.{name}"] += 1
            result = value(*_unwrap(args, where=method), **_unwrap_kwargs(kwargs, method))
            return _result(result, kwargs)

        return call

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def data(self):
        return _Pointer(self._a.ctypes.data)

    @property
    def device(self):
        return cuda.Device(0)


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


def _unwrap_kwargs(kwargs, where):
    return {k: _unwrap(v, where=where) for k, v in kwargs.items()}


# ----------------------------------------------------------------------------- functions

_HOST_DATA = {"asarray", "array", "asanyarray"}
_SYNC_FUNCTIONS = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract",
                   "asnumpy", "array_equal", "allclose"}


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    operations["copy from the host"] += 1
    return ndarray._of(_np.array(_unwrap(a, host_ok=True), dtype=dtype, order=order or "K",
                                 copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray) and not copy:
        return asarray(obj, dtype)
    operations["copy" if isinstance(obj, ndarray) else "copy from the host"] += 1
    return ndarray._of(_np.array(_unwrap(obj, host_ok=True), dtype=dtype, order=order,
                                 copy=True, ndmin=ndmin))


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    import numpy

    return __import__("cupy") if any(isinstance(a, ndarray) for a in args) else numpy


class _Ufunc:
    """A CuPy ufunc: NumPy's, on the arrays' NumPy memory."""

    def __init__(self, ufunc):
        self._f = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        operations[self.__name__] += 1
        where = f"cupy.{self.__name__}"
        result = self._f(*_unwrap(args, where=where), **_unwrap_kwargs(kwargs, where))
        return _result(result, kwargs)

    def __getattr__(self, name):
        method = getattr(self._f, name)
        if not callable(method):
            return method
        where = f"cupy.{self.__name__}.{name}"

        def call(*args, **kwargs):
            operations[f"{self.__name__}.{name}"] += 1
            result = method(*_unwrap(args, where=where), **_unwrap_kwargs(kwargs, where))
            return _result(result, kwargs)

        return call


def _function(name, f):
    def call(*args, **kwargs):
        if name not in _NO_KERNEL and not (name == "ascontiguousarray" and args
                                           and isinstance(args[0], ndarray)
                                           and args[0]._a.flags.c_contiguous
                                           and kwargs.get("dtype") in (None, args[0].dtype)):
            operations[name] += 1
        if name in _SYNC_FUNCTIONS or (name == "where" and len(args) == 1):
            _host_read(f"cupy.{name}()")
        where = f"cupy.{name}"
        result = f(*_unwrap(args, where=where), **_unwrap_kwargs(kwargs, where))
        return _result(result, kwargs)

    call.__name__ = name
    return call


_made = {}  # name -> the stand-in's ufunc or function (not in globals(): sum, max... stay builtins)


def _lookup(name):
    return globals()[name] if name in globals() else __getattr__(name)


def __getattr__(name):
    if name not in _names.MODULE:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    if name not in _made:
        value = getattr(_np, name)
        if isinstance(value, _np.ufunc):
            value = _Ufunc(value)
        elif callable(value) and not isinstance(value, type):
            value = _function(name, value)
        _made[name] = value
    return _made[name]


# ----------------------------------------------------------------------------- kernels

class RawKernel:
    """A kernel of CUDA source, built for the CPU."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self.code, self.name = code, name

    def __call__(self, grid, block, args, shared_mem=0):
        grid = grid if isinstance(grid, tuple) else (grid,)
        block = block if isinstance(block, tuple) else (block,)
        if len(grid) > 1 or len(block) > 1:
            raise NotImplementedError("cupy stand-in: only 1-D grids and blocks")
        where = f"RawKernel {self.name!r}"
        for a in args:
            if isinstance(a, _np.ndarray):
                raise TypeError(f"{where}: a NumPy array as a kernel argument")
        operations[f"kernel {self.name}"] += 1
        _cuda_on_cpu.launch(self.code, self.name, grid[0] * block[0],
                            [a._a if isinstance(a, ndarray) else a for a in args], where)


_REDUCERS = {"a + b": _np.add, "max(a, b)": _np.maximum, "min(a, b)": _np.minimum}
_EXPRESSION_NAMES = {"exp": _np.exp, "log": _np.log, "sqrt": _np.sqrt, "abs": _np.abs,
                     "max": _np.maximum, "min": _np.minimum, "tanh": _np.tanh}


class ReductionKernel:
    """A reduction of CuPy's ``ReductionKernel`` form, with NumPy: the map
    expression over the (broadcast) inputs, a sum, maximum or minimum along
    ``axis``, then the post-map expression."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
                 name="reduce_kernel", reduce_type=None, **options):
        self.inputs = [p.split()[-1] for p in in_params.split(",")]
        self.output = out_params.split()[-1]
        self.map_expr, self.post_map_expr = map_expr, post_map_expr
        if reduce_expr not in _REDUCERS:
            raise NotImplementedError(f"cupy stand-in: reduce expression {reduce_expr!r}")
        self.reducer = _REDUCERS[reduce_expr]

    def __call__(self, *args, axis=None, keepdims=False, out=None):
        operations["reduction kernel"] += 1
        values = dict(zip(self.inputs, _unwrap(args, where="ReductionKernel")))
        mapped = eval(self.map_expr, dict(_EXPRESSION_NAMES), values)  # noqa: S307
        reduced = self.reducer.reduce(mapped, axis=axis, keepdims=keepdims)
        target, expression = (s.strip() for s in self.post_map_expr.split("=", 1))
        if target != self.output:
            raise NotImplementedError(f"cupy stand-in: post-map {self.post_map_expr!r}")
        result = eval(expression, dict(_EXPRESSION_NAMES), {"a": reduced})  # noqa: S307
        result = _np.asarray(result, dtype=_np.asarray(args[0]._a).dtype)
        if out is not None:
            out._a[...] = result
            return out
        return ndarray._of(result)

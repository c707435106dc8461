"""The CuPy stand-in keeps the rules that give the CuPy tests their teeth
(``tests/cupy_standin``): run in ``make test``'s second pass only, where
``cupy`` is the stand-in."""

import os

import numpy as np
import pytest

pytestmark = [pytest.mark.cupy, pytest.mark.skipif(
    os.environ.get("TIMELAYERS_TEST_CUPY") != "standin", reason="tests the CuPy stand-in itself")]


def test_a_device_array_is_not_silently_a_numpy_array():
    import cupy

    x = cupy.arange(5.0)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="NumPy array"):
        x + np.ones(5)
    with pytest.raises(TypeError, match="NumPy array"):
        cupy.concatenate([x, np.ones(2)])
    assert isinstance(x.sum(), cupy.ndarray) and x.sum().ndim == 0   # reductions stay 0-d arrays
    assert isinstance(x[1], cupy.ndarray)
    np.testing.assert_array_equal(x.get(), np.arange(5.0))


def test_host_reads_raise_where_synchronizing_is_not_allowed():
    import cupy
    import cupyx

    x = cupy.arange(5.0)
    reads = [lambda: x.get(), lambda: float(x[0]), lambda: int(x[1]), lambda: bool(x[0]),
             lambda: x[0].item(), lambda: x[x > 2],
             lambda: cupy.flatnonzero(x), lambda: cupy.cuda.Device().synchronize()]
    with cupyx.allow_synchronize(False):
        y = x * 2 + 1                               # launches: no read
        for read in reads:
            with pytest.raises(cupyx.DeviceSynchronized):
                read()
    assert float(y[2]) == 5.0


def test_only_cupys_names_exist_and_integer_indices_wrap():
    import cupy

    with pytest.raises(AttributeError):
        cupy.errstate                               # NumPy has it, CuPy 14.2 does not
    with pytest.raises(AttributeError):
        cupy.arange(3).tostring
    x = cupy.arange(5) * 10
    np.testing.assert_array_equal(x[cupy.asarray([5, -1, 7])].get(), [0, 40, 20])


def test_a_raw_kernel_runs_every_thread_on_the_arrays_memory():
    import cupy

    source = r'''
    extern "C" __global__ void fill(long long* out, const long long n, const double scale) {
        const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        out[i] = (long long)(i * scale);
    }'''
    kernel = cupy.RawKernel(source, "fill")
    out = cupy.full(300, -1, dtype=cupy.int64)
    kernel((2,), (256,), (out, np.int64(300), np.float64(2.0)))   # 512 threads for 300
    np.testing.assert_array_equal(out.get(), np.arange(300) * 2)
    with pytest.raises(TypeError, match="NumPy array"):
        kernel((1,), (256,), (np.zeros(3, dtype=np.int64), np.int64(3), np.float64(1.0)))
    with pytest.raises(TypeError, match="NumPy scalars"):
        kernel((1,), (256,), (out, 300, np.float64(1.0)))
    with pytest.raises(ValueError, match="not C-contiguous"):
        kernel((1,), (256,), (out[::2], np.int64(3), np.float64(1.0)))


def test_operations_are_counted_views_are_not():
    import cupy

    x = cupy.ones((4, 3), dtype=cupy.float32)
    cupy.operations.clear()
    y = x.reshape(12).T                             # views
    z = x * 2                                       # one kernel
    cupy.add(z, 1, out=z)                           # one kernel, in place
    assert dict(cupy.operations) == {"multiply": 1, "add": 1}
    assert y.shape == (12,)


def test_the_nccl_stand_in_reduces_through_mpi():
    pytest.importorskip("mpi4py")
    import cupy
    from cupy.cuda import nccl

    x = cupy.arange(6, dtype=cupy.float32)
    comm = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)   # one process: COMM_WORLD of 1
    comm.allReduce(x.data.ptr, x.data.ptr, x.size, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 0)
    comm.bcast(x.data.ptr, x.size, nccl.NCCL_FLOAT32, 0, 0)
    np.testing.assert_array_equal(x.get(), np.arange(6))

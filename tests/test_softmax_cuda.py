"""The softmax's CuPy path (``timelayers.cuda.softmax``) run on this CPU: its CUDA
kernels compiled as C++ (``support.devices.CpuKernels``), its row reduction done by
NumPy, against the NumPy paths (``functions.softmax``, the loss layers)."""

import numpy as np
import pytest

import timelayers as tl
from timelayers.functions import softmax, softmax_backward


@pytest.fixture
def softmax_kernels_on_cpu(monkeypatch):
    """``softmax_cuda`` with its CUDA kernels built for the CPU and its row
    reduction done by NumPy: the GPU path's own steps, here."""
    from support.devices import CpuKernels, cxx_compiler
    from timelayers.cuda import softmax as softmax_cuda

    if cxx_compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels for the CPU")
    kernels = CpuKernels(softmax_cuda.kernel_source)
    monkeypatch.setattr(softmax_cuda, "_launch", lambda name, dtype, threads, *args:
                        kernels.launch(name, np.dtype(dtype).name, threads, list(args)))
    monkeypatch.setattr(softmax_cuda, "_row_sum_exp",
                        lambda x, m: np.exp(x - m[:, None]).sum(axis=1))
    return softmax_cuda


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ignore", [None, -1])
def test_gpu_softmax_cross_entropy_equals_the_numpy_path(rng, softmax_kernels_on_cpu, dtype,
                                                         ignore):
    x = (3 * rng.standard_normal((7, 5))).astype(dtype)
    x[2] += 200                                    # a row far from 0: the maximum is taken off
    t = rng.integers(0, 5, 7)
    if ignore is not None:
        t[[1, 4]] = ignore
    layer = tl.TimeSoftmaxWithLoss(ignore_label=ignore) if ignore is not None else tl.SoftmaxWithLoss()
    shaped = (lambda a: a[None]) if ignore is not None else (lambda a: a)
    want_loss = layer.forward(shaped(x), shaped(t))
    want_dx = layer.backward(2.5).reshape(7, 5)
    loss, cache = softmax_kernels_on_cpu.forward(x, t, ignore)
    dx = softmax_kernels_on_cpu.backward(cache, 2.5)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert float(loss) == pytest.approx(want_loss, rel=tol)
    assert float(cache.count) == (7 if ignore is None else 5)
    assert dx.dtype == dtype and dx.shape == (7, 5)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * 1e-2)
    if ignore is not None:
        assert not dx[[1, 4]].any()


def test_gpu_softmax_cross_entropy_with_every_label_ignored(rng, softmax_kernels_on_cpu):
    x = rng.standard_normal((3, 4))
    loss, cache = softmax_kernels_on_cpu.forward(x, np.full(3, -1), -1)
    assert float(loss) == 0.0
    assert not softmax_kernels_on_cpu.backward(cache).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(6, 9), (2, 3, 1), (4, 128)])
def test_gpu_row_softmax_equals_the_numpy_path(rng, softmax_kernels_on_cpu, dtype, shape):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    x[0, ..., 0] = 300                     # far from 0: the maximum is taken off
    dy = rng.standard_normal(shape).astype(dtype)
    y = softmax_kernels_on_cpu.softmax_rows(x)
    dx = softmax_kernels_on_cpu.softmax_rows_backward(y, dy)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    assert y.dtype == dx.dtype == dtype and y.shape == dx.shape == shape
    np.testing.assert_allclose(y, softmax(x), rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(dx, softmax_backward(softmax(x), dy), rtol=tol, atol=tol * 1e-2)


def test_gpu_row_softmax_of_masked_rows(softmax_kernels_on_cpu):
    """-inf (a masked key) gives 0; a row of -inf gives NaN, as the NumPy path."""
    x = np.array([[0.5, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    with np.errstate(invalid="ignore"):
        want = softmax(x)
    got = softmax_kernels_on_cpu.softmax_rows(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-15)
    assert got[0, 1] == 0 and np.isnan(got[1]).all() and np.isnan(want[1]).all()

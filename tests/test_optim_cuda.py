"""The optimizers' GPU path (``timelayers.cuda.optim``: one kernel a parameter)
against their NumPy path: the kernels compiled as C++ and run on this CPU give
the NumPy path's parameters and state to the last bit; on CuPy (the stand-in or
a GPU) an update equals the host's to float32 rounding."""

import numpy as np
import pytest

from timelayers import optim

OPTIMIZERS = {
    "SGD": lambda: optim.SGD(lr=0.1),
    "Momentum": lambda: optim.Momentum(lr=0.05, momentum=0.9),
    "Nesterov": lambda: optim.Nesterov(lr=0.05, momentum=0.8),
    "AdaGrad": lambda: optim.AdaGrad(lr=0.1),
    "RMSprop": lambda: optim.RMSprop(lr=0.01, decay_rate=0.9),
    "Adam": lambda: optim.Adam(lr=0.01),
    "AdamW": lambda: optim.AdamW(lr=0.01, weight_decay=0.1),
}


def arrays(rng, dtype):
    """Params and three rounds of gradients: a C-ordered matrix, a Fortran-ordered
    one (as some CPU plans keep their weights) and a vector."""
    def one():
        return [rng.standard_normal((5, 3)).astype(dtype),
                np.asfortranarray(rng.standard_normal((4, 6)).astype(dtype)),
                rng.standard_normal(7).astype(dtype)]
    return one(), [one() for _ in range(3)]


@pytest.fixture
def kernel_path(monkeypatch):
    """A function that makes ``optim_cuda`` take NumPy arrays, its kernels built
    for the CPU, and returns the list of the kernels it then launches."""
    from support.devices import CpuKernels, cxx_compiler
    from timelayers.cuda import optim as optim_cuda

    if cxx_compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels for the CPU")
    kernels = CpuKernels(optim_cuda.kernel_source)

    def enable():
        launched = []

        def launch(kernel, dtype, threads, args):
            launched.append(kernel)
            kernels.launch(kernel, np.dtype(dtype).name, threads, list(args))

        monkeypatch.setattr(optim_cuda, "is_cupy_array", lambda a: isinstance(a, np.ndarray))
        monkeypatch.setattr(optim_cuda, "_launch", launch)
        return launched

    return enable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_kernel_equals_the_numpy_rule_to_the_bit(rng, kernel_path, name, dtype):
    params, rounds = arrays(rng, dtype)
    host, opt_host = [p.copy(order="K") for p in params], OPTIMIZERS[name]()
    for grads in rounds:
        opt_host.update(host, grads)
    launched = kernel_path()
    fused, opt_fused = [p.copy(order="K") for p in params], OPTIMIZERS[name]()
    for grads in rounds:
        opt_fused.update(fused, grads)
    assert launched == [opt_fused._kernel] * (3 * len(params))  # one a parameter an update
    for a, b in zip(fused, host):
        np.testing.assert_array_equal(a, b)
    for slot in opt_host._slots:
        for a, b in zip(getattr(opt_fused, slot), getattr(opt_host, slot)):
            np.testing.assert_array_equal(a, b)


def test_arrays_of_different_layouts_take_the_numpy_path(kernel_path):
    from timelayers.cuda import optim as optim_cuda

    kernel_path()
    p = np.zeros((4, 3), dtype=np.float32)
    assert optim_cuda.takes(p, np.ones_like(p), np.ones_like(p))
    assert optim_cuda.takes(np.asfortranarray(p), np.asfortranarray(p))
    assert not optim_cuda.takes(p, np.asfortranarray(np.ones_like(p)))   # strides differ
    assert not optim_cuda.takes(p, np.ones((4, 3)))                      # dtypes differ
    assert not optim_cuda.takes(np.zeros((4, 6), dtype=np.float32)[:, ::2],
                                np.ones((4, 3), dtype=np.float32))        # not contiguous
    assert not optim_cuda.takes(p.astype(np.float16), p.astype(np.float16))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_update_on_the_device_equals_the_host(xp, rng, name):
    if xp is np:
        pytest.skip("compares CuPy with NumPy")
    params, rounds = arrays(rng, np.float32)
    host, opt_host = [p.copy(order="K") for p in params], OPTIMIZERS[name]()
    device, opt_device = [xp.asarray(p, order="K") for p in params], OPTIMIZERS[name]()
    for grads in rounds:
        opt_host.update(host, grads)
        opt_device.update(device, [xp.asarray(g, order="K") for g in grads])
    for a, b in zip(device, host):
        np.testing.assert_allclose(a.get(), b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("squares", [[4.0, 9.0, 12.0], [1e-20, 2e-20], [1.0, np.inf], [np.nan, 1.0]])
def test_the_clip_factor_kernel_is_the_numpy_expression_to_the_bit(squares):
    """The one-thread kernel: the sum of the squares in order, its root and
    ``min(max_norm / (norm + 1e-6), 1)`` (1 for a non-finite norm)."""
    from support.devices import CpuKernels, cxx_compiler
    from timelayers.cuda import optim as optim_cuda

    if cxx_compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels for the CPU")
    squares = np.asarray(squares, dtype=np.float64)
    norm, factor = np.empty((), np.float64), np.empty((), np.float64)
    CpuKernels(optim_cuda.kernel_source).launch(
        "clip_factor", "float64", 256, [squares, np.int64(squares.size), np.float64(2.5), norm,
                                        factor])
    total = np.zeros((), np.float64)
    for s in squares:
        total = total + s
    want_norm = np.sqrt(total)
    want = np.where(np.isfinite(want_norm), np.minimum(2.5 / (want_norm + 1e-6), 1.0), 1.0)
    np.testing.assert_array_equal(norm, want_norm)
    np.testing.assert_array_equal(factor, want)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clipping_on_the_device_equals_the_host(xp, rng, max_norm):
    if xp is np:
        pytest.skip("compares CuPy with NumPy")
    host = [rng.standard_normal(s).astype(np.float32) for s in ((5, 3), (7,), (2, 2, 2))]
    device = [xp.asarray(g) for g in host]
    want = optim.clip_grads(host, max_norm)
    got = optim.clip_grads(device, max_norm)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    for a, b in zip(device, host):
        np.testing.assert_allclose(a.get(), b, rtol=1e-6, atol=1e-7)

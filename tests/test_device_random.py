"""The counter-based random draws of the GPU (``timelayers.cuda.random``): the
CUDA kernels, compiled as C++ and run on this CPU (``support.devices.CpuKernels``),
against their NumPy twins, and the twins' own laws."""

import numpy as np
import pytest

from support.devices import CpuKernels, cxx_compiler
from timelayers.cuda import random as device_random


@pytest.fixture(scope="module")
def kernels():
    if cxx_compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels for the CPU")
    return CpuKernels(device_random.kernel_source)


def test_dropout_kernel_equals_its_numpy_twin(kernels):
    for dtype, ratio in ((np.float32, 0.5), (np.float64, 0.1)):
        mask = np.empty((7, 13), dtype=dtype)
        kernels.launch("scaled_keep_mask", np.dtype(dtype).name, mask.size,
                       [mask, np.uint64(2**63 + 12345), np.int64(mask.size), np.float32(ratio),
                        np.dtype(dtype).type(1 / (1 - ratio))])
        np.testing.assert_array_equal(
            mask, device_random.keep_mask_reference(2**63 + 12345, mask.shape, ratio, dtype))


def launch_keys(kernels, seed, targets, inv_p, first_row):
    keys = np.empty((targets.size, inv_p.size))
    kernels.launch("exponential_keys", "float64", keys.size,
                   [keys, inv_p, targets.astype(np.int64), np.uint64(seed), np.int64(first_row),
                    np.int64(targets.size), np.int64(inv_p.size), np.float64(np.inf)])
    return keys


def test_negative_sampling_keys_kernel_equals_its_numpy_twin(kernels):
    p = np.array([0.5, 0.0, 0.2, 0.1, 0.15, 0.05])
    inv_p = device_random.inverse_probabilities(p)
    assert inv_p[1] == -1 and inv_p[0] == 2
    targets = np.array([0, 3, 3, 5, 1])
    for seed, first_row in ((7, 0), (2**63 + 99, 40)):
        got = launch_keys(kernels, seed, targets, inv_p, first_row)
        want = device_random.exponential_keys_reference(seed, targets, inv_p, first_row)
        np.testing.assert_allclose(got, want, rtol=1e-15)   # std::log and np.log may differ by an ulp
        assert np.all(np.isinf(got[:, 1]))                   # p == 0: never drawn
        assert np.all(np.isinf(got[np.arange(5), targets]))  # the row's target: never drawn
        finite = np.isfinite(got)
        assert finite.sum() == 5 * 6 - 5 - 4 and np.all(got[finite] >= 0)


def test_keys_of_rows_drawn_apart_are_the_keys_of_the_whole_batch():
    inv_p = device_random.inverse_probabilities(np.full(50, 1 / 50))
    targets = np.arange(9) % 50
    whole = device_random.exponential_keys_reference(5, targets, inv_p)
    parts = [device_random.exponential_keys_reference(5, targets[lo:lo + 4], inv_p, first_row=lo)
             for lo in (0, 4, 8)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_keys_are_exponential_over_p():
    """Keys times p are Exp(1): mean 1, variance 1, and P(E > 1) = 1/e, over 400,000 draws."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    e = device_random.exponential_keys_reference(11, np.full(100_000, -1), 1 / p) * p
    assert abs(e.mean() - 1) < 0.01 and abs(e.var() - 1) < 0.02
    assert abs((e > 1).mean() - np.exp(-1)) < 0.003
    other = device_random.exponential_keys_reference(12, np.full(100_000, -1), 1 / p) * p
    assert abs(np.corrcoef(e.ravel(), other.ravel())[0, 1]) < 0.01   # another seed, other draws

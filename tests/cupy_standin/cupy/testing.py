"""``cupy.testing`` of the stand-in: NumPy's assertions on the arrays' values
(read from the device, as CuPy's are)."""

import numpy as np


def _host(x):
    return x.get() if hasattr(x, "get") and hasattr(x, "_a") else x


def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True):
    np.testing.assert_allclose(_host(actual), _host(desired), rtol=rtol, atol=atol,
                               err_msg=err_msg, verbose=verbose)


def assert_array_equal(x, y, err_msg="", verbose=True, strides_check=False):
    np.testing.assert_array_equal(_host(x), _host(y), err_msg=err_msg, verbose=verbose)


def assert_array_almost_equal(x, y, decimal=6, err_msg="", verbose=True):
    np.testing.assert_array_almost_equal(_host(x), _host(y), decimal=decimal, err_msg=err_msg,
                                         verbose=verbose)

"""Assertions used across the layer tests."""

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

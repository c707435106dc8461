"""Assertions the tests share: closeness, gradient checks, random arrays."""

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

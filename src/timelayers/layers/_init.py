"""How params start. A layout lists a layer's or a model's params as ``(name,
shape, init)`` triples; :func:`draw` makes their arrays from one generator in
the layout's order, so the layout is the one statement of their shapes and of
the order of the random draws (which seeded results depend on). An ``init`` is
a function ``(rng, shape, dtype) -> array``: :func:`normal`, :func:`scaled_normal`,
:func:`xavier`, :func:`zeros`, :func:`ones`."""

from __future__ import annotations

import numpy as np

__all__ = ["make_rng", "draw", "under", "normal", "scaled_normal", "xavier", "zeros", "ones",
           "layer_norm"]


def make_rng(rng):
    """A ``numpy.random.Generator`` from None (fresh entropy), an int seed, or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def draw(layout, rng, dtype) -> dict:
    """Name -> array for every ``(name, shape, init)`` of ``layout``, drawn from
    ``rng`` in the layout's order."""
    return {name: init(rng, shape, dtype) for name, shape, init in layout}


def under(params: dict, prefix: str) -> list:
    """The arrays of ``params`` named ``prefix.*``, in order."""
    return [p for name, p in params.items() if name.startswith(prefix + ".")]


def normal(std):
    """``std * standard_normal(shape)``."""
    def init(rng, shape, dtype):
        return (rng.standard_normal(shape) * std).astype(dtype)
    return init


def scaled_normal(n, gain=1.0):
    """Normal with standard deviation ``n ** -0.5 * gain`` (worked out when drawn,
    so a layout read for its shapes alone takes any ``n``)."""
    def init(rng, shape, dtype):
        return normal(n ** -0.5 * gain)(rng, shape, dtype)
    return init


def xavier(rng, shape, dtype):
    """Normal with standard deviation ``1 / sqrt(shape[0])``, the fan in (the book's
    init of the recurrent and affine weights)."""
    return normal(1.0 / np.sqrt(shape[0]))(rng, shape, dtype)


def zeros(rng, shape, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(rng, shape, dtype):
    return np.ones(shape, dtype=dtype)


def layer_norm(D):
    """A ``LayerNorm``'s params over ``D`` features: ``gamma = 1``, ``beta = 0``."""
    return [("gamma", (D,), ones), ("beta", (D,), zeros)]

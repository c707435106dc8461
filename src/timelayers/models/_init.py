"""Parameter initialisation helpers shared by the models."""

from __future__ import annotations

import numpy as np


def make_rng(rng):
    """A ``numpy.random.Generator`` from None (fresh entropy), an int seed, or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def randn(rng, shape, scale, dtype):
    """``scale * standard_normal(shape)`` in ``dtype``."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def xavier(rng, fan_in, shape, dtype):
    """Normal with standard deviation ``1 / sqrt(fan_in)`` (the book's recurrent init)."""
    return randn(rng, shape, 1.0 / np.sqrt(fan_in), dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)

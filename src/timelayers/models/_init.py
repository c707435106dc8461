"""Parameter initialisation shared by the models: the random generator, and the
init rules and :func:`draw` of :mod:`timelayers.layers._init`."""

from __future__ import annotations

import numpy as np

from ..layers._init import draw, layer_norm, normal, ones, scaled_normal, under, xavier, zeros

__all__ = ["make_rng", "draw", "under", "normal", "scaled_normal", "xavier", "zeros", "ones",
           "layer_norm"]


def make_rng(rng):
    """A ``numpy.random.Generator`` from None (fresh entropy), an int seed, or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)

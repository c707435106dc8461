"""GELU, the Gaussian error linear unit (Hendrycks and Gimpel, 2016, arXiv:1606.08415).

``gelu(x) = x * Phi(x)`` with ``Phi`` the standard normal distribution function,
computed exactly or through the tanh approximation of the paper (the two names
are PyTorch's ``approximate`` argument):

- ``approximate="none"`` (PyTorch's default)::

      y  = 0.5 * x * (1 + erf(x / sqrt(2)))
      dy = Phi(x) + x * phi(x),   phi(x) = exp(-x**2 / 2) / sqrt(2 pi)

- ``approximate="tanh"``::

      u  = sqrt(2 / pi) * (x + 0.044715 * x**3),   t = tanh(u)
      y  = 0.5 * x * (1 + t)
      dy = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2 / pi) * (1 + 3 * 0.044715 * x**2)

NumPy has no ``erf``: the exact form takes SciPy's (``scipy.special.erf``) when
SciPy is installed, else ``math.erf`` element by element (exact but slow); on
CuPy it takes ``cupyx.scipy.special.erf``. The tanh form needs nothing else.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_float
from ..backend import get_array_module
from .base import Layer

__all__ = ["GELU", "APPROXIMATIONS"]

APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_CUBIC = 0.044715


def _erf(x):
    """``erf`` elementwise, in the dtype and array module of ``x``."""
    xp = get_array_module(x)
    if xp is not np:
        from cupyx.scipy.special import erf

        return erf(x)
    try:
        from scipy.special import erf
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return erf(x).astype(x.dtype, copy=False)


class GELU(Layer):
    """Elementwise GELU. Any shape; no params.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        The exact ``x * Phi(x)`` (through ``erf``) or the tanh approximation; see
        the module docstring.

    Shapes: ``x (...) -> out (...)``; ``backward(dout (...))`` returns ``dx (...)``.
    Caches only the derivative ``dy/dx (...)``, computed in ``forward`` where
    ``erf`` or ``tanh`` is at hand.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in APPROXIMATIONS:
            raise ValueError(f"GELU: argument 'approximate' expected one of {APPROXIMATIONS}, "
                             f"got {approximate!r}")
        self.approximate = approximate
        self.dydx = None

    def forward(self, x):
        check_float("GELU.forward", "x", x)
        xp = get_array_module(x)
        if self.approximate == "tanh":
            x2 = x * x
            t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _CUBIC * x2))
            half_1pt = 0.5 * (1.0 + t)  # (...)
            # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 c x^2)
            dydx = (1.0 - t * t) * (0.5 * _SQRT_2_OVER_PI) * x * (1.0 + 3.0 * _CUBIC * x2)
            dydx += half_1pt
            out = x * half_1pt
        else:
            cdf = _erf(x * _INV_SQRT_2)
            cdf += 1.0
            cdf *= 0.5  # Phi(x)
            dydx = xp.exp(-0.5 * x * x)
            dydx *= _INV_SQRT_2PI * x
            dydx += cdf  # Phi(x) + x phi(x)
            out = x * cdf
        self.dydx = dydx
        return out

    def backward(self, dout):
        return dout * self.dydx

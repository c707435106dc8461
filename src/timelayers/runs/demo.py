"""The demo's first part: a worked TimeAffine example, checked.

``TimeAffine(W, b)`` built from ``np.random.seed(1234)`` with D=1, H=5, N=4, T=5;
forward and backward; the gradients' ``id()`` before and after ``backward`` (they
are written in place, as the layer contract says); and the backward pass
verified by central differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gradcheck import check_layer
from ..layers import TimeAffine

__all__ = ["AffineCheck", "check_time_affine", "example_arrays"]


def example_arrays():
    """The example's arrays, drawn in this order after ``np.random.seed(1234)``.

    Uses a private ``RandomState(1234)``, which yields the same numbers as
    ``np.random.seed(1234)`` without touching the global state.

    Returns
    -------
    W (1, 5), b (5,), x (4, 5, 1), dout (4, 5, 5) : float64 arrays
    """
    rs = np.random.RandomState(1234)
    D, H, N, T = 1, 5, 4, 5
    W = rs.randn(D, H)
    b = np.zeros(H)
    x = rs.randn(N, T, D)
    dout = rs.randn(N, T, H)
    return W, b, x, dout


@dataclass
class AffineCheck:
    """Result of :func:`check_time_affine`.

    Attributes
    ----------
    out : (4, 5, 5) forward output
    dx : (4, 5, 1) input gradient
    grad_errors : dict, relative error of ``dx``, ``dW``, ``db`` against central differences
    identity_kept : bool, whether ``grads`` kept their ``id()`` through ``backward``
    """

    out: np.ndarray
    dx: np.ndarray
    grad_errors: dict
    identity_kept: bool

    @property
    def ok(self) -> bool:
        return self.identity_kept and max(self.grad_errors.values()) < 1e-6


def check_time_affine() -> AffineCheck:
    """Run the example through :class:`~timelayers.TimeAffine` and verify it."""
    W, b, x, dout = example_arrays()
    layer = TimeAffine(W, b)
    ids_before = [id(g) for g in layer.grads]
    out = layer.forward(x)
    dx = layer.backward(dout)
    identity_kept = ids_before == [id(g) for g in layer.grads]
    errors = check_layer(TimeAffine(W.copy(), b.copy()), x.copy(), dout=dout)
    return AffineCheck(out=out, dx=dx, grad_errors=errors, identity_kept=identity_kept)

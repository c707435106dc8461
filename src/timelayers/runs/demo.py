"""The seed notebook's TimeAffine check, replayed as a real check.

The seed builds ``TimeAffine(W, b)`` from ``np.random.seed(1234)`` with D=1, H=5,
N=4, T=5, runs forward and backward, and prints ``id(grads[i])`` before and after
``backward`` to show that the gradients are written in place. This module redoes
that with the same arrays, and verifies the backward pass by central differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gradcheck import check_layer
from ..layers import TimeAffine

__all__ = ["SeedCheck", "replay_seed_check", "seed_arrays"]


def seed_arrays():
    """The seed's arrays, drawn in its order from the legacy global seed 1234.

    Uses a private ``RandomState(1234)``, which yields the same numbers as the
    seed's ``np.random.seed(1234)`` without touching the global state.

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
class SeedCheck:
    """Result of :func:`replay_seed_check`.

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


def replay_seed_check() -> SeedCheck:
    """Run the seed's example through :class:`~timelayers.TimeAffine` and verify it."""
    W, b, x, dout = seed_arrays()
    layer = TimeAffine(W, b)
    ids_before = [id(g) for g in layer.grads]
    out = layer.forward(x)
    dx = layer.backward(dout)
    identity_kept = ids_before == [id(g) for g in layer.grads]
    errors = check_layer(TimeAffine(W.copy(), b.copy()), x.copy(), dout=dout)
    return SeedCheck(out=out, dx=dx, grad_errors=errors, identity_kept=identity_kept)

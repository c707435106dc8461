"""Layer normalization (Ba, Kiros and Hinton, 2016, arXiv:1607.06450).

Each vector of the last axis is normalized to zero mean and unit variance, then
scaled and shifted by learned ``gamma`` and ``beta``::

    mu   = mean(x, axis=-1)                    # (..., 1)
    var  = mean((x - mu)**2, axis=-1)          # (..., 1), the biased variance
    xhat = (x - mu) / sqrt(var + eps)          # (..., D)
    out  = gamma * xhat + beta                 # (..., D)

The backward pass, with ``g = dout * gamma`` and ``rstd = 1 / sqrt(var + eps)``::

    dx     = rstd * (g - mean(g) - xhat * mean(g * xhat))
    dgamma = sum over the leading axes of dout * xhat
    dbeta  = sum over the leading axes of dout
"""

from __future__ import annotations

from .._checks import check_float, check_shape
from ..backend import get_array_module
from .base import Layer

__all__ = ["LayerNorm"]


class LayerNorm(Layer):
    """Layer normalization over the last axis.

    Parameters
    ----------
    gamma : array, shape (D,)
        Scale (ones in a fresh layer), kept as ``params[0]``.
    beta : array, shape (D,)
        Shift (zeros in a fresh layer), kept as ``params[1]``.
    eps : float, default 1e-5
        Added to the variance (PyTorch's ``nn.LayerNorm`` default).

    Shapes: ``x (..., D) -> out (..., D)``; ``backward(dout (..., D))`` returns
    ``dx (..., D)``. Caches ``xhat (..., D)`` and ``rstd (..., 1)``.
    """

    param_names = ("gamma", "beta")

    def __init__(self, gamma, beta, eps=1e-5):
        super().__init__()
        check_shape("LayerNorm", "gamma", gamma, ("D",))
        check_shape("LayerNorm", "beta", beta, (gamma.shape[0],))
        self._init_params(gamma, beta)
        self.eps = float(eps)
        self.cache = None

    def forward(self, x):
        gamma, beta = self.params
        where = "LayerNorm.forward"
        check_float(where, "x", x)
        check_shape(where, "x", x, (None,) * max(x.ndim - 1, 0) + (gamma.shape[0],))
        xp = get_array_module(gamma)
        x = x.astype(gamma.dtype, copy=False)
        xhat = x - x.mean(axis=-1, keepdims=True)
        rstd = (xhat * xhat).mean(axis=-1, keepdims=True)
        rstd += self.eps
        xp.sqrt(rstd, out=rstd)
        xp.divide(1.0, rstd, out=rstd)
        xhat *= rstd
        self.cache = (xhat, rstd)
        out = xhat * gamma
        out += beta
        return out

    def backward(self, dout):
        gamma, _ = self.params
        xhat, rstd = self.cache
        D = gamma.shape[0]
        dout2d = dout.reshape(-1, D)
        (dout2d * xhat.reshape(-1, D)).sum(axis=0, out=self.grads[0])
        dout2d.sum(axis=0, out=self.grads[1])
        g = dout * gamma  # (..., D)
        dx = g - g.mean(axis=-1, keepdims=True)
        g *= xhat
        dx -= xhat * g.mean(axis=-1, keepdims=True)
        dx *= rstd
        return dx

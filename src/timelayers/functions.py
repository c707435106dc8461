"""Stateless math used by the layers: activations, softmax and its backward,
cross entropy.

Every function takes NumPy or CuPy arrays and returns arrays of the same module
and dtype. Softmax-like functions work over the last axis, for any leading shape;
on CuPy, the softmax of short rows and its backward are one kernel each
(:mod:`timelayers.cuda.softmax`).
"""

from __future__ import annotations

from .cuda import softmax as softmax_cuda
from .backend import get_array_module

__all__ = ["sigmoid", "relu", "softmax", "softmax_backward", "log_softmax", "cross_entropy",
           "softplus"]


def sigmoid(x, out=None):
    """Logistic function ``1 / (1 + exp(-x))`` computed as ``0.5 * (1 + tanh(x / 2))``.

    The tanh form never overflows, so large ``|x|`` gives no warnings. With
    ``out`` (which may be ``x`` itself, or a strided view) the result is written
    there and ``out`` is returned.
    """
    xp = get_array_module(x)
    y = xp.multiply(x, 0.5, out=out)
    xp.tanh(y, out=y)
    y += 1
    y *= 0.5
    return y


def softplus(x):
    """``log(1 + exp(x))``, stable for any ``x`` (``max(x, 0) + log1p(exp(-|x|))``)."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def relu(x):
    """``max(x, 0)`` elementwise."""
    xp = get_array_module(x)
    return xp.maximum(x, 0)


def softmax(x):
    """Softmax over the last axis, stable (the row maximum is subtracted first).

    Parameters
    ----------
    x : array, shape (..., C)

    Returns
    -------
    array, shape (..., C), rows summing to 1.
    """
    if softmax_cuda.takes_rows(x):
        return softmax_cuda.softmax_rows(x)  # one kernel
    xp = get_array_module(x)
    y = x - x.max(axis=-1, keepdims=True)
    xp.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)
    return y


def softmax_backward(y, dy):
    """Gradient of the softmax's input given its output ``y = softmax(x)`` and
    ``dy``, the gradient of ``y`` (same shape ``(..., C)``), over the last axis:
    ``dx = y * (dy - sum(y * dy))``. Modifies neither argument.
    """
    if softmax_cuda.takes_rows(y):
        return softmax_cuda.softmax_rows_backward(y, dy)  # one kernel
    dx = y * dy
    dx -= y * dx.sum(axis=-1, keepdims=True)
    return dx


def log_softmax(x):
    """Logarithm of :func:`softmax` over the last axis, without forming the softmax.

    Parameters
    ----------
    x : array, shape (..., C)
    """
    xp = get_array_module(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def cross_entropy(y, t, eps: float = 1e-7):
    """Mean cross entropy of predicted probabilities against targets (the book's
    ``cross_entropy_error``).

    Parameters
    ----------
    y : array, shape (N, C) or (C,)
        Probabilities (for example from :func:`softmax`).
    t : array, shape (N,) of integer labels, or (N, C) one-hot
    eps : float
        Added inside the logarithm so that a zero probability gives a large finite loss.

    Returns
    -------
    float
        ``-mean(log(y[n, t[n]] + eps))``.
    """
    xp = get_array_module(y, t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.ndim == 1 and t.size == y.shape[1] else t.reshape(1)
    if t.ndim == y.ndim:  # one-hot
        t = t.argmax(axis=-1)
    n = y.shape[0]
    return float(-xp.log(y[xp.arange(n), t] + eps).mean())

"""Numerical gradients by central differences, and a checker for any layer.

Use it on your own layers::

    layer = TimeAffine(W, b)                      # float64 params
    errors = check_layer(layer, x)                # {'x': 3e-11, 'W': 2e-11, 'b': 1e-11}
    assert max(errors.values()) < 1e-6
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_cpu

__all__ = ["numerical_gradient", "relative_error", "check_layer", "GradientIdentityError"]


class GradientIdentityError(AssertionError):
    """A layer's ``backward`` replaced one of its ``grads`` arrays instead of
    writing into it."""


def numerical_gradient(f, x, eps: float = 1e-6):
    """Central-difference gradient of the scalar function ``f()`` with respect to
    the array ``x``, which ``f`` reads and which is perturbed in place (and
    restored) one element at a time.

    Parameters
    ----------
    f : callable () -> float
    x : float array, any shape (float64 recommended)
    eps : float

    Returns
    -------
    array of the shape of ``x``
    """
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient: argument 'x' expected a C-contiguous array "
                         "(it is perturbed in place through a flat view), got a strided view")
    flat_x = x.reshape(-1)
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i].item()
        flat_x[i] = old + eps
        f_plus = float(f())
        flat_x[i] = old - eps
        f_minus = float(f())
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic, numeric) -> float:
    """Largest absolute difference divided by the larger of the two arrays'
    largest magnitudes (0.0 when both are zero)."""
    a = to_cpu(analytic).astype(np.float64)
    n = to_cpu(numeric).astype(np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - n).max() / scale)


def _names(layer):
    names = list(getattr(layer, "param_names", ()) or ())
    if len(names) != len(layer.params):
        names = [f"params[{i}]" for i in range(len(layer.params))]
    return names


def check_layer(layer, *inputs, dout=None, setup=None, eps: float = 1e-6, rng=None,
                input_names=None) -> dict:
    """Compare a layer's ``backward`` with numerical gradients.

    The scalar checked is ``sum(forward(*inputs) * dout)`` (``forward`` itself when
    it returns a number, as losses do). Every floating-point input and every param
    is perturbed in turn. Also checks that ``backward`` kept the identity of every
    array in ``layer.grads``.

    Parameters
    ----------
    layer : object with ``params``, ``grads``, ``forward``, ``backward``
        Use float64 params and inputs.
    *inputs : arrays
        Integer inputs (ids, labels) are passed through and not checked, and so
        are float inputs for which ``backward`` returns None (one-hot data).
    dout : array, optional
        Upstream gradient; random normal of the output's shape by default.
    setup : callable, optional
        Called before every forward, e.g. to restore a recurrent state or reseed
        a dropout generator so that every evaluation is the same function.
    eps : float
        Central-difference step.
    rng : numpy.random.Generator, optional
        Source of the default ``dout``.
    input_names : list of str, optional
        Names for the float inputs in the result (``x0``, ``x1``, ... by default,
        ``x`` when there is one).

    Returns
    -------
    dict
        Name (input or param) -> relative error, see :func:`relative_error`.

    Raises
    ------
    GradientIdentityError
        If ``backward`` rebound an item of ``layer.grads``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    float_positions = [i for i, a in enumerate(inputs)
                       if hasattr(a, "dtype") and a.dtype.kind == "f"]
    if input_names is None:
        input_names = ["x"] if len(float_positions) == 1 else [f"x{i}" for i in range(len(float_positions))]

    def run():
        if setup is not None:
            setup()
        return layer.forward(*inputs)

    out = run()
    scalar_out = np.ndim(out) == 0
    if dout is None:
        if scalar_out:
            dout = 1.0
        else:
            xp = get_array_module(out)
            dout = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)

    def f():
        y = run()
        if scalar_out:
            return float(y) * float(dout)
        xp = get_array_module(y)
        return float(xp.sum(y * dout))

    ids_before = [id(g) for g in layer.grads]
    dxs = layer.backward(dout)
    if any(id(g) != i for g, i in zip(layer.grads, ids_before)):
        raise GradientIdentityError(f"{type(layer).__name__}.backward rebound an item of grads")
    if not isinstance(dxs, tuple):
        dxs = (dxs,)
    analytic_params = [g.copy() for g in layer.grads]

    errors = {}
    for name, pos, dx in zip(input_names, float_positions, dxs):
        if dx is None:  # an input the layer does not differentiate (one-hot data)
            continue
        errors[name] = relative_error(dx, numerical_gradient(f, inputs[pos], eps))
    for name, p, g in zip(_names(layer), layer.params, analytic_params):
        errors[name] = relative_error(g, numerical_gradient(f, p, eps))
    return errors

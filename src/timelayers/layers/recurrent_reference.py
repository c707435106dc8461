"""The recurrent cells in the book's equations: the reference every faster path is
tested against.

One function computes one time step forward, one its backward, and the time
functions run them in a loop over ``t``, exactly as the book's ``TimeRNN`` and
``TimeLSTM`` run their cells. Nothing here is tuned for speed: every step makes
its own products and every intermediate is a new array. The cells
(:class:`~timelayers.layers.RNN`, :class:`~timelayers.layers.LSTM`,
:class:`~timelayers.layers.GRU`) use the step functions; the time layers run
them when built with ``plan="reference"`` (see :mod:`.plans`).

Shapes: ``x (N, D)``, ``h, c (N, H)``; gates stacked along the columns of
``Wx (D, G*H)``, ``Wh (H, G*H)``, ``b (G*H,)`` in the book's order (LSTM: f, g,
i, o; GRU: z, r, h~). A step's backward returns the gradients of its inputs
and of its params; the time functions sum the params' over the steps and
write the sums into ``grads``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from ..functions import sigmoid

__all__ = ["rnn_step", "rnn_step_backward", "lstm_step", "lstm_step_backward", "gru_step",
           "gru_step_backward", "time_forward", "time_backward"]


# --------------------------------------------------------------------------- RNN (ch. 5)

class RNNStep(NamedTuple):
    x: object        # (N, D)
    h_prev: object   # (N, H)
    h_next: object   # (N, H)


def rnn_step(x, h_prev, Wx, Wh, b):
    """``h_next = tanh(x Wx + h_prev Wh + b)``; returns ``(h_next, cache)``."""
    xp = get_array_module(Wx)
    h_next = xp.tanh(x @ Wx + h_prev @ Wh + b)
    return h_next, RNNStep(x, h_prev, h_next)


def rnn_step_backward(dh_next, cache, Wx, Wh):
    """Returns ``(dx, dh_prev)`` and ``(dWx, dWh, db)``."""
    x, h_prev, h_next = cache
    dt = dh_next * (1 - h_next ** 2)          # through tanh
    dWx, dWh, db = x.T @ dt, h_prev.T @ dt, dt.sum(axis=0)
    return (dt @ Wx.T, dt @ Wh.T), (dWx, dWh, db)


# --------------------------------------------------------------------------- LSTM (ch. 6)

class LSTMStep(NamedTuple):
    x: object        # (N, D)
    h_prev: object   # (N, H)
    c_prev: object   # (N, H)
    f: object        # (N, H) forget gate
    g: object        # (N, H) cell candidate
    i: object        # (N, H) input gate
    o: object        # (N, H) output gate
    tanh_c: object   # (N, H) tanh(c_next)


def lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step; returns ``(h_next, c_next, cache)``::

        A = x Wx + h_prev Wh + b                        (N, 4H)
        f, g, i, o = sigmoid(A_f), tanh(A_g), sigmoid(A_i), sigmoid(A_o)
        c_next = f * c_prev + g * i
        h_next = o * tanh(c_next)
    """
    xp = get_array_module(Wx)
    H = Wh.shape[0]
    A = x @ Wx + h_prev @ Wh + b
    f = sigmoid(A[:, :H])
    g = xp.tanh(A[:, H:2 * H])
    i = sigmoid(A[:, 2 * H:3 * H])
    o = sigmoid(A[:, 3 * H:])
    c_next = f * c_prev + g * i
    tanh_c = xp.tanh(c_next)
    h_next = o * tanh_c
    return h_next, c_next, LSTMStep(x, h_prev, c_prev, f, g, i, o, tanh_c)


def lstm_step_backward(dh_next, dc_next, cache, Wx, Wh):
    """Returns ``(dx, dh_prev, dc_prev)`` and ``(dWx, dWh, db)``."""
    xp = get_array_module(Wx)
    x, h_prev, c_prev, f, g, i, o, tanh_c = cache
    ds = dc_next + dh_next * o * (1 - tanh_c ** 2)   # the total gradient of c_next
    dc_prev = ds * f
    df = ds * c_prev * f * (1 - f)
    dg = ds * i * (1 - g ** 2)
    di = ds * g * i * (1 - i)
    do = dh_next * tanh_c * o * (1 - o)
    dA = xp.hstack((df, dg, di, do))                 # (N, 4H)
    dWx, dWh, db = x.T @ dA, h_prev.T @ dA, dA.sum(axis=0)
    return (dA @ Wx.T, dA @ Wh.T, dc_prev), (dWx, dWh, db)


# --------------------------------------------------------------------------- GRU (ch. 6, appendix)

class GRUStep(NamedTuple):
    x: object        # (N, D)
    h_prev: object   # (N, H)
    z: object        # (N, H) update gate
    r: object        # (N, H) reset gate
    h_hat: object    # (N, H) candidate h~
    reset_in: object  # (N, H) r * h_prev (book), or h_prev Wh_c + bh_c (reset_after)


def gru_step(x, h_prev, Wx, Wh, b, bh=None):
    """One GRU step; returns ``(h_next, cache)``. ``bh is None``: the book's GRU::

        z  = sigmoid(x Wx_z + h_prev Wh_z + b_z)
        r  = sigmoid(x Wx_r + h_prev Wh_r + b_r)
        h~ = tanh(x Wx_c + (r * h_prev) Wh_c + b_c)
        h_next = (1 - z) * h_prev + z * h~

    With ``bh (3H,)``, the reset-after form: ``bh`` is added to ``h_prev Wh``
    and ``h~ = tanh(x Wx_c + b_c + r * (h_prev Wh_c + bh_c))``.
    """
    xp = get_array_module(Wx)
    H = Wh.shape[0]
    ax = x @ Wx + b                                      # (N, 3H)
    if bh is None:
        ah = h_prev @ Wh[:, :2 * H]                      # (N, 2H)
    else:
        ah = h_prev @ Wh + bh                            # (N, 3H)
    z = sigmoid(ax[:, :H] + ah[:, :H])
    r = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    if bh is None:
        reset_in = r * h_prev
        h_hat = xp.tanh(ax[:, 2 * H:] + reset_in @ Wh[:, 2 * H:])
    else:
        reset_in = ah[:, 2 * H:]
        h_hat = xp.tanh(ax[:, 2 * H:] + r * reset_in)
    h_next = (1 - z) * h_prev + z * h_hat
    return h_next, GRUStep(x, h_prev, z, r, h_hat, reset_in)


def gru_step_backward(dh_next, cache, Wx, Wh, reset_after=False):
    """Returns ``(dx, dh_prev)`` and ``(dWx, dWh, db)``, plus ``dbh`` with
    ``reset_after=True``."""
    xp = get_array_module(Wx)
    x, h_prev, z, r, h_hat, reset_in = cache
    H = Wh.shape[0]
    dz = dh_next * (h_hat - h_prev) * z * (1 - z)
    dc = dh_next * z * (1 - h_hat ** 2)                  # the candidate's pre-activation
    dh_prev = dh_next * (1 - z)
    if not reset_after:
        drh = dc @ Wh[:, 2 * H:].T                       # the gradient of r * h_prev
        dr = drh * h_prev * r * (1 - r)
        dh_prev = dh_prev + drh * r
        dzr = xp.hstack((dz, dr))                        # (N, 2H)
        dh_prev = dh_prev + dzr @ Wh[:, :2 * H].T
        dWh = xp.hstack((h_prev.T @ dzr, reset_in.T @ dc))
        dA = xp.hstack((dz, dr, dc))
        param_grads = (x.T @ dA, dWh, dA.sum(axis=0))
    else:
        dr = dc * reset_in * r * (1 - r)
        dA = xp.hstack((dz, dr, dc))                     # input side
        dAh = xp.hstack((dz, dr, dc * r))                # hidden side: h_prev Wh + bh
        dh_prev = dh_prev + dAh @ Wh.T
        param_grads = (x.T @ dA, h_prev.T @ dAh, dA.sum(axis=0), dAh.sum(axis=0))
    return (dA @ Wx.T, dh_prev), param_grads


# --------------------------------------------------------------------------- time loops

def time_forward(cell, params, xs, states):
    """Run ``cell`` (a :class:`~timelayers.layers.cells.Cell`) over ``xs (N, T, D)`` from
    ``states`` (``(h0,)``, or ``(h0, c0)`` for the LSTM, each ``(N, H)``).

    Returns ``hs (N, T, H)``, the last states (a tuple like ``states``) and the
    list of the steps' caches.
    """
    xp = get_array_module(params[0])
    states = tuple(states)
    hs, caches = [], []
    for t in range(xs.shape[1]):
        x = xs[:, t]
        if cell.step == "rnn":
            h, cache = rnn_step(x, *states, *params)
            states = (h,)
        elif cell.step == "lstm":
            h, c, cache = lstm_step(x, *states, *params)
            states = (h, c)
        else:
            h, cache = gru_step(x, *states, *params)
            states = (h,)
        hs.append(h)
        caches.append(cache)
    return xp.stack(hs, axis=1), states, caches


def time_backward(cell, params, grads, dhs, caches):
    """Backward of :func:`time_forward` given ``dhs (N, T, H)``: writes the param
    gradients, summed over the steps, into ``grads`` and returns ``dxs (N, T,
    D)`` and the gradients of the initial states (a tuple like ``states``)."""
    xp = get_array_module(params[0])
    Wx, Wh = params[:2]
    for g in grads:
        g[...] = 0
    N, T, H = dhs.shape
    n_states = 2 if cell.has_cell_state else 1
    dstates = tuple(xp.zeros((N, H), dtype=dhs.dtype) for _ in range(n_states))
    dxs = [None] * T
    for t in reversed(range(T)):
        dh = dhs[:, t] + dstates[0]                      # from the output and from step t+1
        if cell.step == "rnn":
            (dxs[t], dh_prev), step_grads = rnn_step_backward(dh, caches[t], Wx, Wh)
            dstates = (dh_prev,)
        elif cell.step == "lstm":
            (dxs[t], dh_prev, dc_prev), step_grads = lstm_step_backward(dh, dstates[1],
                                                                        caches[t], Wx, Wh)
            dstates = (dh_prev, dc_prev)
        else:
            (dxs[t], dh_prev), step_grads = gru_step_backward(dh, caches[t], Wx, Wh,
                                                              reset_after=cell.reset_after)
            dstates = (dh_prev,)
        for g, step_g in zip(grads, step_grads):
            g += step_g
    return xp.stack(dxs, axis=1), dstates

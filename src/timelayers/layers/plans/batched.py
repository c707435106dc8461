"""RNN and GRU over a whole sequence with the products batched over the steps
(NumPy and CuPy).

The input projection ``x @ Wx + b`` of all ``T`` steps is one ``(T*N, D) @ (D,
G*H)`` product before the time loop; the loop does only the ``h @ Wh`` product
and the gate arithmetic, writing each step into preallocated time-major
buffers, with no objects and no parameter-sized temporaries per step.
``backward`` first computes the local derivatives of all steps at once, then
runs the reverse loop, which gathers the pre-activation gradients of all steps
in one ``(T, N, G*H)`` buffer ``dA``; ``dWx = X^T dA``, ``dx = dA Wx^T``,
``db = sum(dA)`` and ``dWh = H_prev^T dA`` (``H_prev``: the stacked previous
hidden states, kept in the same ``(T+1, N, H)`` buffer as the outputs) are then
single products over all steps.
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import get_array_module
from ...functions import sigmoid
from .base import Plan
from .buffers import (batch_major, gradients_over_steps, input_preactivations,
                      states_over_input_products, time_major, with_initial)

__all__ = ["BatchedRNN", "BatchedGRU"]


class RNNCache(NamedTuple):
    X: object    # (T*N, D) the inputs, time-major
    Hs: object   # (T+1, N, H) the hidden states, the initial one first


class BatchedRNN(Plan):
    """``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``."""

    def forward(self, params, xs, states, prepared=None):
        Wx, Wh, b = params
        (h0,) = states
        xp = get_array_module(Wx)
        N, T, _ = xs.shape
        H = Wh.shape[0]
        X, Hs = states_over_input_products(xs, h0, Wx, b)  # Hs[t+1] = x_t Wx + b
        work = xp.empty((N, H), dtype=Wx.dtype)
        for t in range(T):
            a = Hs[t + 1]                                 # (N, H)
            xp.matmul(Hs[t], Wh, out=work)
            a += work
            xp.tanh(a, out=a)
        return batch_major(Hs[1:], N, T), (Hs[T].copy(),), RNNCache(X, Hs)

    def backward(self, params, grads, dhs, cache, prepared=None):
        Wx, Wh, _ = params
        xp = get_array_module(Wx)
        X, Hs = cache
        T, N, H = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
        dA = Hs[1:] * Hs[1:]                              # (T, N, H): 1 - h^2, then dA
        xp.subtract(1, dA, out=dA)
        dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
        dh = xp.zeros((N, H), dtype=Wx.dtype)
        dh_t = xp.empty((N, H), dtype=Wx.dtype)
        WhT = Wh.T
        for t in range(T - 1, -1, -1):
            xp.add(dhs[t], dh, out=dh_t)
            da = dA[t]
            da *= dh_t
            xp.matmul(da, WhT, out=dh)
        return gradients_over_steps(X, Hs[:-1], dA, Wx, grads), (dh,)


class GRUCache(NamedTuple):
    X: object         # (T*N, D) the inputs, time-major
    A: object         # (T, N, 3H) the gates z, r and the candidate h~
    Hs: object        # (T+1, N, H) the hidden states, the initial one first
    reset_in: object  # (T, N, H) r * h_prev (book), or h_prev Wh_c + bh_c (reset-after)


class BatchedGRU(Plan):
    """The book's GRU, or with ``reset_after`` the form whose fourth param is
    ``bh``; see :class:`~timelayers.layers.TimeGRU` for the equations."""

    def __init__(self, reset_after=False):
        self.reset_after = reset_after

    def forward(self, params, xs, states, prepared=None):
        Wx, Wh, b = params[:3]
        bh = params[3] if self.reset_after else None
        (h0,) = states
        xp = get_array_module(Wx)
        N, T, D = xs.shape
        H = Wh.shape[0]
        dt = Wx.dtype
        X = time_major(xs)                                # (T*N, D)
        A = input_preactivations(X, Wx, b, T, N)          # (T, N, 3H), then z, r, h~
        Hs = with_initial(h0, T)                          # (T+1, N, H)
        reset_in = xp.empty((T, N, H), dtype=dt)
        if bh is None:
            Wh_zr, Wh_c = Wh[:, :2 * H], Wh[:, 2 * H:]
            work = xp.empty((N, 2 * H), dtype=dt)
        else:
            A[..., :2 * H] += bh[:2 * H]
            bh_c = bh[2 * H:]
            work = xp.empty((N, 3 * H), dtype=dt)
        tmp = xp.empty((N, H), dtype=dt)
        for t in range(T):
            a, h = A[t], Hs[t]                            # (N, 3H), (N, H)
            zr, hc = a[:, :2 * H], a[:, 2 * H:]
            if bh is None:
                xp.matmul(h, Wh_zr, out=work)
                zr += work
            else:
                xp.matmul(h, Wh, out=work)
                zr += work[:, :2 * H]
            sigmoid(zr, out=zr)                           # z, r
            z, r = a[:, :H], a[:, H:2 * H]
            if bh is None:
                xp.multiply(r, h, out=reset_in[t])
                xp.matmul(reset_in[t], Wh_c, out=tmp)     # (r * h) @ Wh_c
            else:
                xp.add(work[:, 2 * H:], bh_c, out=reset_in[t])
                xp.multiply(r, reset_in[t], out=tmp)      # r * (h @ Wh_c + bh_c)
            hc += tmp
            xp.tanh(hc, out=hc)                           # h~
            h_t = Hs[t + 1]
            xp.subtract(hc, h, out=h_t)
            h_t *= z
            h_t += h                                      # h_t = (1 - z) * h + z * h~
        return batch_major(Hs[1:], N, T), (Hs[T].copy(),), GRUCache(X, A, Hs, reset_in)

    def backward(self, params, grads, dhs, cache, prepared=None):
        Wx, Wh = params[:2]
        reset_after = self.reset_after
        xp = get_array_module(Wx)
        X, A, Hs, reset_in = cache
        T, N, H = reset_in.shape
        dt = Wx.dtype
        z, r, hc = A[..., :H], A[..., H:2 * H], A[..., 2 * H:]
        hprev = Hs[:-1]                                   # (T, N, H)
        # The local factors, dh being the total gradient of h_t:
        # dz = dh * (h~ - h_prev) * z(1-z), dc = dh * z * (1 - h~^2) (candidate),
        # book:        dr = ((dc @ Wh_c^T) * h_prev) * r(1-r);
        # reset-after: dr = (dc * hn) * r(1-r), with hn = h_prev @ Wh_c + bh_c.
        dA = xp.empty_like(A)                             # (T, N, 3H)
        dA[..., :H] = (hc - hprev) * z * (1 - z)
        dA[..., 2 * H:] = z * (1 - hc * hc)
        dA[..., H:2 * H] = (reset_in if reset_after else hprev) * r * (1 - r)
        one_minus_z = 1 - z
        dhs = dhs.transpose(1, 0, 2)                      # (T, N, H) view
        dh = xp.zeros((N, H), dtype=dt)
        dh_t = xp.empty((N, H), dtype=dt)
        tmp = xp.empty((N, H), dtype=dt)
        if not reset_after:
            Wh_zrT, Wh_cT = Wh[:, :2 * H].T, Wh[:, 2 * H:].T
            drh = xp.empty((N, H), dtype=dt)
            for t in range(T - 1, -1, -1):
                xp.add(dhs[t], dh, out=dh_t)
                da = dA[t]
                da[:, :H] *= dh_t                         # dz
                da[:, 2 * H:] *= dh_t                     # d candidate
                xp.matmul(da[:, 2 * H:], Wh_cT, out=drh)  # gradient of r * h_prev
                da[:, H:2 * H] *= drh                     # dr
                xp.multiply(dh_t, one_minus_z[t], out=dh)
                xp.multiply(drh, r[t], out=tmp)
                dh += tmp
                xp.matmul(da[:, :2 * H], Wh_zrT, out=tmp)
                dh += tmp
            dA2 = dA.reshape(T * N, 3 * H)
            grads[1][:, :2 * H] = xp.matmul(hprev.reshape(T * N, H).T, dA2[:, :2 * H])
            grads[1][:, 2 * H:] = xp.matmul(reset_in.reshape(T * N, H).T, dA2[:, 2 * H:])
        else:
            dAh = xp.empty_like(A)                        # gradient of h_prev @ Wh + bh
            WhT = Wh.T
            for t in range(T - 1, -1, -1):
                xp.add(dhs[t], dh, out=dh_t)
                da, dah = dA[t], dAh[t]
                da[:, :H] *= dh_t
                da[:, 2 * H:] *= dh_t
                da[:, H:2 * H] *= da[:, 2 * H:]
                dah[:, :2 * H] = da[:, :2 * H]
                xp.multiply(da[:, 2 * H:], r[t], out=dah[:, 2 * H:])
                xp.multiply(dh_t, one_minus_z[t], out=dh)
                xp.matmul(dah, WhT, out=tmp)
                dh += tmp
            dA2 = dA.reshape(T * N, 3 * H)
            dAh2 = dAh.reshape(T * N, 3 * H)
            xp.matmul(hprev.reshape(T * N, H).T, dAh2, out=grads[1])
            dAh2.sum(axis=0, out=grads[3])
        xp.matmul(X.T, dA2, out=grads[0])
        dA2.sum(axis=0, out=grads[2])
        return batch_major(xp.matmul(dA2, Wx.T), N, T), (dh,)

"""What the fast plans share: their per-step buffers, kept time-major ``(T, N,
...)`` inside while every public input and output stays batch-major ``(N, T,
...)``, and the products over all steps at once (the inputs' pre-activations,
the weight gradients)."""

from __future__ import annotations

from ...backend import get_array_module

__all__ = ["time_major", "batch_major", "with_initial", "input_preactivations",
           "states_over_input_products", "gradients_over_steps"]

# Time-major, so that every step works on a contiguous (N, ...) block.

def time_major(xs):
    """``(N, T, D) -> (T*N, D)``, C-contiguous, rows ordered by step then sample."""
    xp = get_array_module(xs)
    N, T, D = xs.shape
    return xp.ascontiguousarray(xs.transpose(1, 0, 2)).reshape(T * N, D)


def batch_major(a, N, T):
    """``(T*N, X)`` or ``(T, N, X)`` -> C-contiguous ``(N, T, X)``."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.reshape(T, N, -1).transpose(1, 0, 2))


def with_initial(h0, T):
    """A ``(T+1, N, H)`` buffer whose ``[0]`` is ``h0``: ``[t]`` is the state before
    step ``t``, ``[t+1]`` the state after it, and ``[:T]`` the stacked previous states."""
    xp = get_array_module(h0)
    buf = xp.empty((T + 1,) + h0.shape, dtype=h0.dtype)
    buf[0] = h0
    return buf


def input_preactivations(X, Wx, b, T, N):
    """``x_t @ Wx + b`` of all steps as one product: ``(T, N, G*H)`` from the
    time-major inputs ``X (T*N, D)``."""
    A = get_array_module(Wx).matmul(X, Wx).reshape(T, N, -1)
    A += b
    return A


def states_over_input_products(xs, h0, Wx, b):
    """The tanh RNN's start: ``X = time_major(xs) (T*N, D)`` and a state buffer
    ``Hs (T+1, N, H)`` with ``Hs[0] = h0`` and ``Hs[t+1] = x_t @ Wx + b`` (all
    steps as one product), which each step then turns into ``h_t`` in place."""
    xp = get_array_module(Wx)
    N, T, _ = xs.shape
    X = time_major(xs)
    Hs = with_initial(h0, T)
    xp.matmul(X, Wx, out=Hs[1:].reshape(T * N, -1))
    Hs[1:] += b
    return X, Hs


def gradients_over_steps(X, H_prev, dA, Wx, grads):
    """With the pre-activation gradients of all steps ``dA (T, N, G*H)``, the
    products over all steps: ``dWx = X^T dA``, ``dWh = H_prev^T dA`` and ``db =
    sum(dA)`` into ``grads[0..2]`` (``X (T*N, D)``, ``H_prev (T, N, H)`` the
    states before each step); returns ``dxs = dA Wx^T`` batch-major ``(N, T, D)``."""
    xp = get_array_module(Wx)
    T, N, GH = dA.shape
    dA2 = dA.reshape(T * N, GH)
    xp.matmul(X.T, dA2, out=grads[0])
    xp.matmul(H_prev.reshape(T * N, -1).T, dA2, out=grads[1])
    dA2.sum(axis=0, out=grads[2])
    return batch_major(xp.matmul(dA2, Wx.T), N, T)


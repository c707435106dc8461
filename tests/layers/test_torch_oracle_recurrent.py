"""PyTorch as an oracle for the recurrent layers (float64, batch-first, to 1e-9).

The weights are drawn in PyTorch's layout and mapped to the book's:
``Wx = W_ih^T`` (gate slices reordered), ``Wh = W_hh^T``, ``b = b_ih + b_hh``.
LSTM: PyTorch's slices are i, f, g, o, ours f, g, i, o. GRU (``reset_after=True``):
PyTorch's slices are r, z, n and its update gate is ``1 - z`` of ours, so the
update slice changes sign; ``b = b_ih`` and ``bh = b_hh`` (reordered).
Compared: outputs, final states, and the gradients of the input, every weight
and bias, and the initial states.
"""

import numpy as np
import pytest

from timelayers.layers.recurrent import TimeBiLSTM, TimeGRU, TimeLSTM, TimeRNN

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

TOL = dict(rtol=1e-9, atol=1e-12)
SHAPES = [(1, 1, 3, 4), (3, 5, 4, 6), (2, 7, 5, 3)]  # N, T, D, H

LSTM_ORDER = [1, 2, 0, 3]  # our slice k is PyTorch's slice LSTM_ORDER[k] (f, g, i, o <- i, f, g, o)
GRU_ORDER = [1, 0, 2]      # z, r, h~ <- r, z, n
GRU_SIGN = [-1.0, 1.0, 1.0]  # our z is PyTorch's 1 - z


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)  # PyTorch draws the modules' initial weights


def to_book(a, order, sign=None):
    """A PyTorch weight ``(G*H, X)`` or bias ``(G*H,)`` in our layout:
    ``(X, G*H)`` or ``(G*H,)``, slices reordered (and signs flipped)."""
    a = np.asarray(a.detach().numpy() if hasattr(a, "detach") else a)
    G = len(order)
    blocks = a.reshape(G, a.shape[0] // G, *a.shape[1:])[order]
    if sign is not None:
        blocks = blocks * np.asarray(sign).reshape(G, *([1] * (blocks.ndim - 1)))
    out = blocks.reshape(a.shape)
    return out.T.copy() if out.ndim == 2 else out.copy()


def run_torch(module, x, dout, states):
    tx = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    out, final = module(tx, tstates[0] if len(tstates) == 1 else tuple(tstates))
    (out * torch.tensor(dout)).sum().backward()
    final = (final,) if isinstance(final, torch.Tensor) else final
    return (out.detach().numpy(), [f.detach().numpy() for f in final], tx.grad.numpy(),
            [s.grad.numpy() for s in tstates])


@pytest.mark.parametrize("N,T,D,H", SHAPES)
def test_time_rnn_vs_torch(rng, N, T, D, H):
    m = torch.nn.RNN(D, H, batch_first=True, dtype=torch.float64)
    x, dout, h0 = (rng.standard_normal(s) for s in [(N, T, D), (N, T, H), (1, N, H)])
    out, (hn,), dx, (dh0,) = run_torch(m, x, dout, [h0])
    Wx = m.weight_ih_l0.detach().numpy().T.copy()
    Wh = m.weight_hh_l0.detach().numpy().T.copy()
    b = (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
    layer = TimeRNN(Wx, Wh, b)
    layer.set_state(h0[0])
    np.testing.assert_allclose(layer.forward(x), out, **TOL)
    np.testing.assert_allclose(layer.h, hn[0], **TOL)
    np.testing.assert_allclose(layer.backward(dout), dx, **TOL)
    np.testing.assert_allclose(layer.dh, dh0[0], **TOL)
    np.testing.assert_allclose(layer.grads[0], m.weight_ih_l0.grad.numpy().T, **TOL)
    np.testing.assert_allclose(layer.grads[1], m.weight_hh_l0.grad.numpy().T, **TOL)
    np.testing.assert_allclose(layer.grads[2], m.bias_ih_l0.grad.numpy(), **TOL)
    np.testing.assert_allclose(layer.grads[2], m.bias_hh_l0.grad.numpy(), **TOL)


def lstm_params(m, suffix):
    p = {n: getattr(m, n + suffix) for n in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]}
    return (to_book(p["weight_ih"], LSTM_ORDER), to_book(p["weight_hh"], LSTM_ORDER),
            to_book(p["bias_ih"] + p["bias_hh"], LSTM_ORDER))


def assert_lstm_grads(grads, m, suffix):
    p = {n: getattr(m, n + suffix) for n in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]}
    np.testing.assert_allclose(grads[0], to_book(p["weight_ih"].grad, LSTM_ORDER), **TOL)
    np.testing.assert_allclose(grads[1], to_book(p["weight_hh"].grad, LSTM_ORDER), **TOL)
    np.testing.assert_allclose(grads[2], to_book(p["bias_ih"].grad, LSTM_ORDER), **TOL)
    np.testing.assert_allclose(grads[2], to_book(p["bias_hh"].grad, LSTM_ORDER), **TOL)


@pytest.mark.parametrize("N,T,D,H", SHAPES)
def test_time_lstm_vs_torch(rng, N, T, D, H):
    m = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    x, dout, h0, c0 = (rng.standard_normal(s) for s in [(N, T, D), (N, T, H), (1, N, H), (1, N, H)])
    out, (hn, cn), dx, (dh0, dc0) = run_torch(m, x, dout, [h0, c0])
    layer = TimeLSTM(*lstm_params(m, "_l0"))
    layer.set_state(h0[0], c0[0])
    np.testing.assert_allclose(layer.forward(x), out, **TOL)
    np.testing.assert_allclose(layer.h, hn[0], **TOL)
    np.testing.assert_allclose(layer.c, cn[0], **TOL)
    np.testing.assert_allclose(layer.backward(dout), dx, **TOL)
    np.testing.assert_allclose(layer.dh, dh0[0], **TOL)
    np.testing.assert_allclose(layer.dc, dc0[0], **TOL)
    assert_lstm_grads(layer.grads, m, "_l0")


@pytest.mark.parametrize("N,T,D,H", SHAPES)
def test_time_gru_reset_after_vs_torch(rng, N, T, D, H):
    m = torch.nn.GRU(D, H, batch_first=True, dtype=torch.float64)
    x, dout, h0 = (rng.standard_normal(s) for s in [(N, T, D), (N, T, H), (1, N, H)])
    out, (hn,), dx, (dh0,) = run_torch(m, x, dout, [h0])
    layer = TimeGRU(to_book(m.weight_ih_l0, GRU_ORDER, GRU_SIGN),
                    to_book(m.weight_hh_l0, GRU_ORDER, GRU_SIGN),
                    to_book(m.bias_ih_l0, GRU_ORDER, GRU_SIGN),
                    reset_after=True, bh=to_book(m.bias_hh_l0, GRU_ORDER, GRU_SIGN))
    layer.set_state(h0[0])
    np.testing.assert_allclose(layer.forward(x), out, **TOL)
    np.testing.assert_allclose(layer.h, hn[0], **TOL)
    np.testing.assert_allclose(layer.backward(dout), dx, **TOL)
    np.testing.assert_allclose(layer.dh, dh0[0], **TOL)
    for g, tp in zip(layer.grads, [m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0]):
        np.testing.assert_allclose(g, to_book(tp.grad, GRU_ORDER, GRU_SIGN), **TOL)


@pytest.mark.parametrize("N,T,D,H", SHAPES)
def test_time_bilstm_vs_torch(rng, N, T, D, H):
    m = torch.nn.LSTM(D, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    x, dout, h0, c0 = (rng.standard_normal(s)
                       for s in [(N, T, D), (N, T, 2 * H), (2, N, H), (2, N, H)])
    out, (hn, cn), dx, (dh0, dc0) = run_torch(m, x, dout, [h0, c0])
    layer = TimeBiLSTM(*lstm_params(m, "_l0"), *lstm_params(m, "_l0_reverse"))
    layer.set_state(h0, c0)
    np.testing.assert_allclose(layer.forward(x), out, **TOL)
    np.testing.assert_allclose(layer.h, hn, **TOL)
    np.testing.assert_allclose(layer.c, cn, **TOL)
    np.testing.assert_allclose(layer.backward(dout), dx, **TOL)
    np.testing.assert_allclose(layer.dh, dh0, **TOL)
    np.testing.assert_allclose(layer.dc, dc0, **TOL)
    assert_lstm_grads(layer.grads[:3], m, "_l0")
    assert_lstm_grads(layer.grads[3:], m, "_l0_reverse")

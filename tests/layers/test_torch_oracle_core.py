"""PyTorch as an oracle for the core layers (float64, tight tolerances)."""

import numpy as np
import pytest

import timelayers as tl

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")


def test_time_affine_vs_linear(rng):
    W, b = rng.standard_normal((4, 6)), rng.standard_normal(6)
    x = rng.standard_normal((3, 5, 4))
    dout = rng.standard_normal((3, 5, 6))
    layer = tl.TimeAffine(W, b)
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tW = torch.tensor(W.T.copy(), requires_grad=True)  # torch weight is (out, in)
    tb = torch.tensor(b, requires_grad=True)
    tout = torch.nn.functional.linear(tx, tW, tb)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[0], tW.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[1], tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_affine_vs_linear(rng):
    W, b, x = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal((3, 4))
    out = tl.Affine(W, b).forward(x)
    ref = torch.nn.functional.linear(torch.tensor(x), torch.tensor(W.T), torch.tensor(b))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-10, atol=1e-12)


def test_embedding_vs_torch(rng):
    W = rng.standard_normal((10, 4))
    ids = rng.integers(0, 10, (3, 7))
    dout = rng.standard_normal((3, 7, 4))
    layer = tl.TimeEmbedding(W)
    out = layer.forward(ids)
    layer.backward(dout)
    tW = torch.tensor(W, requires_grad=True)
    tout = torch.nn.functional.embedding(torch.tensor(ids), tW)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(layer.grads[0], tW.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("onehot", [False, True])
def test_time_softmax_with_loss_vs_cross_entropy(rng, onehot):
    N, T, V = 4, 6, 9
    xs = rng.standard_normal((N, T, V)) * 3
    ts = rng.integers(0, V, (N, T))
    ts[rng.random((N, T)) < 0.3] = -1
    layer = tl.TimeSoftmaxWithLoss()
    if onehot:  # one-hot targets cannot express "ignore"
        ts[ts == -1] = 0
        loss = layer.forward(xs, np.eye(V)[ts])
    else:
        loss = layer.forward(xs, ts)
    dxs = layer.backward()
    txs = torch.tensor(xs, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(txs.reshape(-1, V), torch.tensor(ts).reshape(-1),
                                              ignore_index=-1)
    tloss.backward()
    assert abs(loss - tloss.item()) <= 1e-10 * max(1.0, abs(tloss.item()))
    np.testing.assert_allclose(dxs, txs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_sigmoid_with_loss_vs_bce(rng):
    x = rng.standard_normal((5, 3)) * 4
    t = rng.integers(0, 2, (5, 3))
    layer = tl.SigmoidWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward()
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(t, dtype=torch.float64))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)

"""Loss layers: values against plain NumPy, gradients against central differences."""

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_gradcheck, randn


def ref_softmax_ce(x, t, ignore=None):
    x = x.reshape(-1, x.shape[-1])
    t = t.reshape(-1)
    logp = x - x.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    keep = np.ones_like(t, bool) if ignore is None else t != ignore
    if not keep.any():
        return 0.0
    return -logp[np.arange(len(t))[keep], t[keep]].mean()


@pytest.mark.parametrize("onehot", [False, True])
def test_softmax_with_loss(xp, rng, onehot):
    x = randn(xp, rng, 4, 5)
    t = rng.integers(0, 5, 4)
    tt = xp.asarray(np.eye(5)[t] if onehot else t)
    layer = tl.SoftmaxWithLoss()
    assert float(layer.forward(x, tt)) == pytest.approx(ref_softmax_ce(tl.to_cpu(x), t), rel=1e-12)
    assert_gradcheck(tl.SoftmaxWithLoss(), x, tt)


@pytest.mark.parametrize("N,T", [(1, 1), (1, 3), (3, 1), (2, 4)])
def test_time_softmax_with_loss(xp, rng, N, T):
    xs = randn(xp, rng, N, T, 6)
    ts = rng.integers(0, 6, (N, T))
    if N * T > 1:
        ts[0, 0] = -1
    layer = tl.TimeSoftmaxWithLoss()
    loss = layer.forward(xs, xp.asarray(ts))
    assert float(loss) == pytest.approx(ref_softmax_ce(tl.to_cpu(xs), ts, ignore=-1), rel=1e-12)
    assert_gradcheck(tl.TimeSoftmaxWithLoss(), xs, xp.asarray(ts))


def test_time_softmax_backward_twice_same(xp, rng):
    xs = randn(xp, rng, 2, 3, 5)
    layer = tl.TimeSoftmaxWithLoss()
    layer.forward(xs, xp.asarray(rng.integers(0, 5, (2, 3))))
    a = tl.to_cpu(layer.backward())
    b = tl.to_cpu(layer.backward())
    np.testing.assert_array_equal(a, b)


def test_time_softmax_all_ignored(xp, rng):
    xs = randn(xp, rng, 2, 3, 5)
    layer = tl.TimeSoftmaxWithLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = layer.forward(xs, xp.full((2, 3), -1))
        dx = layer.backward()
    assert loss == 0.0
    assert dx.shape == xs.shape and not tl.to_cpu(dx).any()


def test_time_softmax_float32(xp, rng):
    xs = randn(xp, rng, 2, 3, 5, dtype=np.float32)
    layer = tl.TimeSoftmaxWithLoss()
    layer.forward(xs, xp.asarray(rng.integers(0, 5, (2, 3))))
    assert layer.backward().dtype == np.float32


def test_time_softmax_large_scores_stable(xp):
    xs = xp.asarray([[[1000.0, 0.0, -1000.0]]])
    layer = tl.TimeSoftmaxWithLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert float(layer.forward(xs, xp.asarray([[0]]))) == pytest.approx(0.0, abs=1e-12)
        assert float(layer.forward(xs, xp.asarray([[1]]))) == pytest.approx(1000.0)


@pytest.mark.parametrize("shape", [(5,), (4, 3)])
def test_sigmoid_with_loss(xp, rng, shape):
    x = randn(xp, rng, *shape)
    t = xp.asarray(rng.integers(0, 2, shape))
    xc, tc = tl.to_cpu(x), tl.to_cpu(t)
    y = 1 / (1 + np.exp(-xc))
    ref = -(tc * np.log(y) + (1 - tc) * np.log(1 - y)).mean()
    assert float(tl.SigmoidWithLoss().forward(x, t)) == pytest.approx(ref, rel=1e-12)
    assert_gradcheck(tl.SigmoidWithLoss(), x, t)


def test_time_sigmoid_with_loss(xp, rng):
    xs = randn(xp, rng, 3, 4)
    ts = xp.asarray(rng.integers(0, 2, (3, 4)))
    assert_gradcheck(tl.TimeSigmoidWithLoss(), xs, ts)
    with pytest.raises(tl.ShapeError, match="TimeSigmoidWithLoss"):
        tl.TimeSigmoidWithLoss().forward(randn(xp, rng, 3), xp.zeros(3))


def test_sigmoid_loss_extreme_scores_finite():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = tl.SigmoidWithLoss().forward(np.array([800.0, -800.0]), np.array([0, 1]))
    assert loss == pytest.approx(800.0)


def test_functions_log_softmax_and_cross_entropy(rng):
    x = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(np.exp(tl.functions.log_softmax(x)), tl.functions.softmax(x),
                               rtol=1e-12)
    y = tl.functions.softmax(x[0])
    t = np.array([0, 2, 4, 1])
    ce = tl.functions.cross_entropy(y, t)
    assert ce == pytest.approx(-np.log(y[np.arange(4), t] + 1e-7).mean())
    assert tl.functions.cross_entropy(y, np.eye(5)[t]) == pytest.approx(ce)


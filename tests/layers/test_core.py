"""Core and time layers: forward against plain NumPy, backward against central
differences in float64, float32 stays float32, grads keep their identity."""

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_close, assert_gradcheck, randn

SHAPES_NT = [(1, 1), (1, 4), (3, 1), (2, 5)]


@pytest.mark.parametrize("N", [1, 4])
def test_matmul(xp, rng, N):
    W = randn(xp, rng, 3, 5)
    x = randn(xp, rng, N, 3)
    layer = tl.MatMul(W)
    assert_close(layer.forward(x), x @ W)
    assert_gradcheck(tl.MatMul(W.copy()), x)


@pytest.mark.parametrize("N", [1, 4])
def test_affine(xp, rng, N):
    W, b, x = randn(xp, rng, 3, 5), randn(xp, rng, 5), randn(xp, rng, N, 3)
    assert_close(tl.Affine(W, b).forward(x), x @ W + b)
    assert_gradcheck(tl.Affine(W, b), x)


@pytest.mark.parametrize("cls,ref", [
    (tl.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (tl.ReLU, lambda x: np.maximum(x, 0)),
    (tl.Softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
])
@pytest.mark.parametrize("shape", [(1, 3), (4, 6), (2, 3, 4)])
def test_activations(xp, rng, cls, ref, shape):
    x = randn(xp, rng, *shape)
    if cls is tl.ReLU:  # keep away from the kink at 0
        x = x + xp.sign(x) * 0.1
    assert_close(cls().forward(x), ref(tl.to_cpu(x)), rtol=1e-12)
    assert_gradcheck(cls(), x)


def test_sigmoid_no_overflow_warning():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = tl.functions.sigmoid(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    np.testing.assert_allclose(y, [0, 0, 0.5, 1, 1])


def test_dropout_train_and_eval(xp):
    x = xp.ones((200, 50))
    layer = tl.Dropout(0.3, rng=np.random.default_rng(1))
    y = tl.to_cpu(layer.forward(x))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7)  # inverted: survivors scaled up
    dx = tl.to_cpu(layer.backward(xp.ones_like(x)))
    np.testing.assert_array_equal(dx, y)
    layer.train_flg = False
    assert layer.forward(x) is x
    # same seed, same mask
    y2 = tl.to_cpu(tl.Dropout(0.3, rng=np.random.default_rng(1)).forward(x))
    np.testing.assert_array_equal(y, y2)


def test_dropout_gradcheck(xp, rng):
    layer = tl.TimeDropout(0.4)
    x = randn(xp, rng, 2, 3, 4)

    def reseed():
        layer.rng = np.random.default_rng(7)

    assert_gradcheck(layer, x, setup=reseed)


def test_dropout_rejects_bad_ratio():
    with pytest.raises(ValueError, match="dropout_ratio"):
        tl.Dropout(1.0)


def test_embedding_repeated_ids(xp, rng):
    W = randn(xp, rng, 6, 3)
    ids = xp.asarray([[1, 1, 4], [1, 0, 4]])
    layer = tl.TimeEmbedding(W)
    out = layer.forward(ids)
    assert_close(out, tl.to_cpu(W)[tl.to_cpu(ids)])
    dout = randn(xp, rng, 2, 3, 3)
    assert layer.backward(dout) is None
    expected = np.zeros((6, 3))
    d = tl.to_cpu(dout)
    for n in range(2):
        for t in range(3):
            expected[int(ids[n, t])] += d[n, t]
    assert_close(layer.grads[0], expected, rtol=1e-12)


@pytest.mark.parametrize("N,T", SHAPES_NT)
def test_time_embedding_gradcheck(xp, rng, N, T):
    W = randn(xp, rng, 5, 3)
    ids = xp.asarray(rng.integers(0, 5, size=(N, T)))
    assert_gradcheck(tl.TimeEmbedding(W), ids)


@pytest.mark.parametrize("K", [None, 4])
def test_embedding_dot(xp, rng, K):
    W = randn(xp, rng, 7, 3)
    h = randn(xp, rng, 5, 3)
    shape = (5,) if K is None else (5, K)
    idx = xp.asarray(rng.integers(0, 7, size=shape))
    out = tl.EmbeddingDot(W).forward(h, idx)
    Wc, hc, ic = tl.to_cpu(W), tl.to_cpu(h), tl.to_cpu(idx)
    ref = (Wc[ic] * hc).sum(-1) if K is None else np.einsum("nkd,nd->nk", Wc[ic], hc)
    assert_close(out, ref, rtol=1e-12)
    assert_gradcheck(tl.EmbeddingDot(W), h, idx)


@pytest.mark.parametrize("N,T", SHAPES_NT)
def test_time_affine(xp, rng, N, T):
    W, b, x = randn(xp, rng, 3, 4), randn(xp, rng, 4), randn(xp, rng, N, T, 3)
    out = tl.TimeAffine(W, b).forward(x)
    assert out.shape == (N, T, 4)
    assert_close(out, np.einsum("ntd,dh->nth", tl.to_cpu(x), tl.to_cpu(W)) + tl.to_cpu(b))
    assert_gradcheck(tl.TimeAffine(W, b), x)


LAYER_FACTORIES = {
    "MatMul": (lambda xp, r: tl.MatMul(randn(xp, r, 3, 4, dtype=np.float32)),
               lambda xp, r: (randn(xp, r, 2, 3, dtype=np.float32),)),
    "Affine": (lambda xp, r: tl.Affine(randn(xp, r, 3, 4, dtype=np.float32),
                                       randn(xp, r, 4, dtype=np.float32)),
               lambda xp, r: (randn(xp, r, 2, 3, dtype=np.float32),)),
    "TimeAffine": (lambda xp, r: tl.TimeAffine(randn(xp, r, 3, 4, dtype=np.float32),
                                               randn(xp, r, 4, dtype=np.float32)),
                   lambda xp, r: (randn(xp, r, 2, 5, 3, dtype=np.float32),)),
    "TimeEmbedding": (lambda xp, r: tl.TimeEmbedding(randn(xp, r, 6, 4, dtype=np.float32)),
                      lambda xp, r: (xp.asarray(r.integers(0, 6, (2, 5))),)),
    "EmbeddingDot": (lambda xp, r: tl.EmbeddingDot(randn(xp, r, 6, 4, dtype=np.float32)),
                     lambda xp, r: (randn(xp, r, 3, 4, dtype=np.float32),
                                    xp.asarray(r.integers(0, 6, (3, 2))))),
}


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_float32_stays_float32_and_grads_keep_identity(xp, rng, name):
    make_layer, make_inputs = LAYER_FACTORIES[name]
    layer = make_layer(xp, rng)
    inputs = make_inputs(xp, rng)
    ids = [id(g) for g in layer.grads]
    for _ in range(2):
        out = layer.forward(*inputs)
        assert out.dtype == np.float32
        dx = layer.backward(xp.ones_like(out))
        if dx is not None:
            assert dx.dtype == np.float32
    assert [id(g) for g in layer.grads] == ids
    assert all(g.dtype == np.float32 for g in layer.grads)


def test_float64_input_computed_in_param_dtype(rng):
    layer = tl.TimeAffine(np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert layer.forward(rng.standard_normal((1, 2, 3))).dtype == np.float32


def test_backward_overwrites_not_accumulates(rng):
    layer = tl.Affine(rng.standard_normal((3, 2)), rng.standard_normal(2))
    x = rng.standard_normal((4, 3))
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    first = [g.copy() for g in layer.grads]
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    for a, b in zip(first, layer.grads):
        np.testing.assert_array_equal(a, b)

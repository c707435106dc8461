"""Attention layers: forward against plain NumPy, gradients against central
differences (float64, both scores), TimeAttention against a loop of the
single-step Attention, and PyTorch autograd as an oracle."""

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_close, assert_gradcheck, randn
from timelayers.layers.attention import Attention, AttentionWeight, TimeAttention, WeightSum

SCORES = ["dot", "general"]
SHAPES = [(1, 1, 1, 3), (2, 5, 3, 4), (3, 1, 6, 2)]  # (N, Te, Td, H)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _make(cls, score, xp, rng, H):
    if score == "general":
        return cls(score="general", W=randn(xp, rng, H, H) * 0.5)
    return cls()


def _reference(hs_enc, hs_dec, W=None):
    """NumPy reference for all decoder steps: contexts (N, Td, H), weights (N, Td, Te)."""
    q = hs_dec if W is None else hs_dec @ W
    a = _softmax(np.einsum("nih,njh->nij", q, hs_enc))
    return np.einsum("nij,njh->nih", a, hs_enc), a


def test_weight_sum(xp, rng):
    hs, a = randn(xp, rng, 2, 5, 3), randn(xp, rng, 2, 5)
    layer = WeightSum()
    assert_close(layer.forward(hs, a), np.einsum("nt,nth->nh", tl.to_cpu(a), tl.to_cpu(hs)))
    assert layer.params == [] and layer.grads == []
    assert_gradcheck(WeightSum(), hs, a)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("N,T,H", [(1, 1, 2), (2, 5, 3), (4, 2, 1)])
def test_attention_weight(xp, rng, score, N, T, H):
    layer = _make(AttentionWeight, score, xp, rng, H)
    hs, h = randn(xp, rng, N, T, H), randn(xp, rng, N, H)
    a = layer.forward(hs, h)
    W = tl.to_cpu(layer.params[0]) if layer.params else np.eye(H)
    want = _softmax(np.einsum("nh,nth->nt", tl.to_cpu(h) @ W, tl.to_cpu(hs)))
    assert a.shape == (N, T)
    assert_close(a, want, rtol=1e-12)
    assert_gradcheck(layer, hs, h, input_names=["hs", "h"])


@pytest.mark.parametrize("score", SCORES)
def test_attention_single_step(xp, rng, score):
    N, T, H = 3, 4, 5
    layer = _make(Attention, score, xp, rng, H)
    hs, h = randn(xp, rng, N, T, H), randn(xp, rng, N, H)
    c = layer.forward(hs, h)
    W = tl.to_cpu(layer.params[0]) if layer.params else None
    want_c, want_a = _reference(tl.to_cpu(hs), tl.to_cpu(h)[:, None, :], W)
    assert_close(c, want_c[:, 0], rtol=1e-12)
    assert_close(layer.attention_weight, want_a[:, 0], rtol=1e-12)
    errors = assert_gradcheck(layer, hs, h, input_names=["hs", "h"])
    assert set(errors) == ({"hs", "h", "W"} if score == "general" else {"hs", "h"})


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("N,Te,Td,H", SHAPES)
def test_time_attention_forward_and_gradcheck(xp, rng, score, N, Te, Td, H):
    layer = _make(TimeAttention, score, xp, rng, H)
    hs_enc, hs_dec = randn(xp, rng, N, Te, H), randn(xp, rng, N, Td, H)
    c = layer.forward(hs_enc, hs_dec)
    W = tl.to_cpu(layer.params[0]) if layer.params else None
    want_c, want_a = _reference(tl.to_cpu(hs_enc), tl.to_cpu(hs_dec), W)
    assert c.shape == (N, Td, H)
    assert layer.attention_weights.shape == (N, Td, Te)
    assert_close(c, want_c, rtol=1e-12)
    assert_close(layer.attention_weights, want_a, rtol=1e-12)
    assert_close(layer.attention_weights.sum(axis=-1), np.ones((N, Td)), rtol=1e-12)
    assert_gradcheck(layer, hs_enc, hs_dec, input_names=["hs_enc", "hs_dec"])


@pytest.mark.parametrize("score", SCORES)
def test_time_attention_matches_loop_of_single_steps(xp, rng, score):
    N, Te, Td, H = 2, 6, 4, 3
    W = randn(xp, rng, H, H) if score == "general" else None
    hs_enc, hs_dec = randn(xp, rng, N, Te, H), randn(xp, rng, N, Td, H)
    dout = randn(xp, rng, N, Td, H)
    layer = TimeAttention(score, W)
    c = layer.forward(hs_enc, hs_dec)
    dhs_enc, dhs_dec = layer.backward(dout)
    dW = layer.grads[0].copy() if W is not None else None
    sum_denc, sum_dW = xp.zeros_like(hs_enc), xp.zeros_like(W) if W is not None else None
    for t in range(Td):  # the book's TimeAttention: one Attention per step
        step = Attention(score, W)
        assert_close(step.forward(hs_enc, hs_dec[:, t]), c[:, t], rtol=1e-12)
        assert_close(step.attention_weight, layer.attention_weights[:, t], rtol=1e-12)
        denc, ddec = step.backward(dout[:, t])
        sum_denc += denc
        assert_close(ddec, dhs_dec[:, t], rtol=1e-10)
        if W is not None:
            sum_dW += step.grads[0]
    assert_close(sum_denc, dhs_enc, rtol=1e-10)
    if W is not None:
        assert_close(sum_dW, dW, rtol=1e-10)


def test_general_score_params_are_the_array_passed(xp, rng):
    W = randn(xp, rng, 3, 3)
    for cls in (AttentionWeight, Attention, TimeAttention):
        layer = cls(score="general", W=W)
        assert layer.params[0] is W and layer.param_names == ("W",)
        assert layer.grads[0].shape == W.shape and layer.grads[0] is not W
    assert TimeAttention().params == [] and TimeAttention().param_names == ()


def test_backward_does_not_mutate_weights_and_is_repeatable(xp, rng):
    layer = TimeAttention("general", randn(xp, rng, 4, 4))
    layer.forward(randn(xp, rng, 2, 5, 4), randn(xp, rng, 2, 3, 4))
    a = layer.attention_weights
    before = a.copy()
    dout = randn(xp, rng, 2, 3, 4)
    first = layer.backward(dout)
    dW = layer.grads[0].copy()
    second = layer.backward(dout)
    assert layer.attention_weights is a
    assert_close(a, before, rtol=0, atol=0)
    for x, y in zip(first, second):
        assert_close(x, y, rtol=0, atol=0)
    assert_close(layer.grads[0], dW, rtol=0, atol=0)  # overwritten, not accumulated


@pytest.mark.parametrize("score", SCORES)
def test_float32_stays_float32(xp, rng, score):
    H = 4
    W = randn(xp, rng, H, H, dtype=np.float32) if score == "general" else None
    layer = TimeAttention(score, W)
    hs_enc = randn(xp, rng, 2, 5, H, dtype=np.float32)
    hs_dec = randn(xp, rng, 2, 3, H, dtype=np.float32)
    c = layer.forward(hs_enc, hs_dec)
    dhs_enc, dhs_dec = layer.backward(xp.ones_like(c))
    assert c.dtype == dhs_enc.dtype == dhs_dec.dtype == layer.attention_weights.dtype == np.float32


@pytest.mark.parametrize("score", SCORES)
def test_time_attention_on_threads_equals_one_thread(rng, score):
    """A large batch (32 rows of 128 x 256 encoder states per thread) is split
    between threads; every row's products are its own, so the numbers are the
    same to the bit, and the backward after it too."""
    from timelayers.threads import get_num_threads, set_num_threads

    N, Te, Td, H = 64, 128, 2, 256
    W = randn(np, rng, H, H, dtype=np.float32) * 0.1 if score == "general" else None
    hs_enc = randn(np, rng, N, Te, H, dtype=np.float32)
    hs_dec = randn(np, rng, N, Td, H, dtype=np.float32)
    dout = randn(np, rng, N, Td, H, dtype=np.float32)
    before = get_num_threads()
    results = []
    try:
        for n in (1, 2):
            set_num_threads(n)
            layer = TimeAttention(score, W)
            results.append([layer.forward(hs_enc, hs_dec), layer.attention_weights,
                            *layer.backward(dout)])
    finally:
        set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    want_c, want_a = _reference(hs_enc.astype(np.float64), hs_dec.astype(np.float64),
                                None if W is None else W.astype(np.float64))
    assert_close(results[1][0], want_c, rtol=1e-4, atol=1e-4)


def test_shape_errors_name_the_argument(rng):
    layer = TimeAttention()
    with pytest.raises(tl.ShapeError, match="hs_dec.*\\(2, 3, 4\\).*\\(2, 3, 5\\)"):
        layer.forward(np.zeros((2, 5, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(tl.ShapeError, match="hs_enc"):
        layer.forward(np.zeros((2, 4)), np.zeros((2, 3, 4)))
    general = TimeAttention("general", np.zeros((4, 4)))
    with pytest.raises(tl.ShapeError, match="hs_enc.*\\(2, 5, 4\\).*\\(2, 5, 3\\)"):
        general.forward(np.zeros((2, 5, 3)), np.zeros((2, 3, 3)))
    with pytest.raises(tl.ShapeError, match="'h'"):
        AttentionWeight().forward(np.zeros((2, 5, 4)), np.zeros((3, 4)))
    with pytest.raises(tl.ShapeError, match="'a'"):
        WeightSum().forward(np.zeros((2, 5, 4)), np.zeros((2, 4)))


def test_score_argument_errors():
    with pytest.raises(ValueError, match="score"):
        TimeAttention("additive")
    with pytest.raises(ValueError, match="'W'.*required"):
        TimeAttention("general")
    with pytest.raises(ValueError, match="'W' is only used"):
        Attention("dot", np.zeros((3, 3)))
    with pytest.raises(tl.ShapeError, match="'W'"):
        TimeAttention("general", np.zeros((3, 4)))


@pytest.mark.parametrize("score", SCORES)
def test_time_attention_vs_torch(rng, score):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    N, Te, Td, H = 3, 7, 5, 4
    hs_enc, hs_dec = rng.standard_normal((N, Te, H)), rng.standard_normal((N, Td, H))
    W = rng.standard_normal((H, H)) if score == "general" else None
    dout = rng.standard_normal((N, Td, H))
    layer = TimeAttention(score, W)
    c = layer.forward(hs_enc, hs_dec)
    dhs_enc, dhs_dec = layer.backward(dout)

    t_enc = torch.tensor(hs_enc, requires_grad=True)
    t_dec = torch.tensor(hs_dec, requires_grad=True)
    t_W = torch.tensor(W, requires_grad=True) if W is not None else None
    q = t_dec if t_W is None else t_dec @ t_W
    a = torch.softmax(torch.bmm(q, t_enc.transpose(1, 2)), dim=-1)  # (N, Td, Te)
    t_c = torch.bmm(a, t_enc)
    t_c.backward(torch.tensor(dout))

    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c, t_c.detach().numpy(), **tol)
    np.testing.assert_allclose(layer.attention_weights, a.detach().numpy(), **tol)
    np.testing.assert_allclose(dhs_enc, t_enc.grad.numpy(), **tol)
    np.testing.assert_allclose(dhs_dec, t_dec.grad.numpy(), **tol)
    if W is not None:
        np.testing.assert_allclose(layer.grads[0], t_W.grad.numpy(), **tol)

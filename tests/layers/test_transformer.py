"""The Transformer's layers: LayerNorm, GELU, MultiHeadAttention, the positional
layers and TransformerBlock -- gradients against central differences (float64),
forward against plain NumPy, masks, dropout, dtypes and input errors."""

import math
import sys

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_close, assert_gradcheck, assert_gradcheck_attention, randn
from timelayers.layers import (GELU, LayerNorm, LearnedPositionalEmbedding, MultiHeadAttention,
                               PositionalEncoding, TransformerBlock)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_mha(xp, rng, D, heads, causal=False, dtype=np.float64):
    arrays = []
    for _ in range(4):
        arrays += [randn(xp, rng, D, D, dtype=dtype) * 0.5, randn(xp, rng, D, dtype=dtype) * 0.1]
    return MultiHeadAttention(*arrays, num_heads=heads, causal=causal)


# -- LayerNorm -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 6)])
def test_layer_norm_forward_and_gradcheck(xp, rng, shape):
    D = shape[-1]
    layer = LayerNorm(randn(xp, rng, D), randn(xp, rng, D))
    x = randn(xp, rng, *shape) * 3 + 1
    out = tl.to_cpu(layer.forward(x))
    xc = tl.to_cpu(x)
    xhat = (xc - xc.mean(-1, keepdims=True)) / np.sqrt(xc.var(-1, keepdims=True) + 1e-5)
    assert_close(out, xhat * tl.to_cpu(layer.params[0]) + tl.to_cpu(layer.params[1]), rtol=1e-12)
    assert_gradcheck(layer, x)


def test_layer_norm_errors():
    with pytest.raises(tl.ShapeError, match="beta"):
        LayerNorm(np.ones(4), np.zeros(3))
    with pytest.raises(tl.ShapeError, match="'x'.*\\(None, 4\\).*\\(2, 5\\)"):
        LayerNorm(np.ones(4), np.zeros(4)).forward(np.zeros((2, 5)))


# -- GELU ----------------------------------------------------------------------------
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_forward_and_gradcheck(xp, rng, approximate):
    x = randn(xp, rng, 3, 4, 5) * 2
    layer = GELU(approximate)
    xc = tl.to_cpu(x)
    if approximate == "none":
        want = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(xc)
    else:
        want = 0.5 * xc * (1 + np.tanh(math.sqrt(2 / math.pi) * (xc + 0.044715 * xc ** 3)))
    assert_close(layer.forward(x), want, rtol=1e-13, atol=1e-15)
    assert_gradcheck(layer, x)


def test_gelu_exact_without_scipy(monkeypatch, rng):
    x = rng.standard_normal((4, 3))
    with_scipy = GELU().forward(x)
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # the import now fails
    assert_close(GELU().forward(x), with_scipy, rtol=1e-15, atol=0)


def test_gelu_argument_error():
    with pytest.raises(ValueError, match="approximate.*'erf'"):
        GELU("erf")


# -- MultiHeadAttention -----------------------------------------------------------
def mha_reference(layer, x, memory=None, mask=None):
    """Plain NumPy, one head at a time: (out (N, Tq, D), weights (N, h, Tq, Tk))."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (tl.to_cpu(p) for p in layer.params)
    x = tl.to_cpu(x)
    memory = x if memory is None else tl.to_cpu(memory)
    h, D = layer.num_heads, Wq.shape[0]
    dh = D // h
    q, k, v = x @ Wq + bq, memory @ Wk + bk, memory @ Wv + bv
    heads, weights = [], []
    for i in range(h):
        cols = slice(i * dh, (i + 1) * dh)
        s = q[..., cols] @ k[..., cols].transpose(0, 2, 1) / math.sqrt(dh)
        if mask is not None:
            s = np.where(mask, -np.inf, s)
        a = _softmax(s)
        weights.append(a)
        heads.append(a @ v[..., cols])
    return np.concatenate(heads, axis=-1) @ Wo + bo, np.stack(weights, axis=1)


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_forward_and_gradcheck(xp, rng, heads, causal):
    N, T, D = 2, 5, 8
    layer = make_mha(xp, rng, D, heads, causal=causal)
    x = randn(xp, rng, N, T, D)
    out = layer.forward(x)
    mask = np.triu(np.ones((T, T), dtype=bool), 1) if causal else None
    want, weights = mha_reference(layer, x, mask=mask)
    assert_close(out, want, rtol=1e-12)
    assert_close(layer.attention_weights, weights, rtol=1e-12)
    assert_gradcheck_attention(layer, x)


def test_causal_attention_does_not_look_ahead(rng):
    layer = make_mha(np, rng, 6, 3, causal=True)
    x = rng.standard_normal((2, 5, 6))
    out = layer.forward(x)
    x2 = x.copy()
    x2[:, 3:] = rng.standard_normal((2, 2, 6))  # change the future
    assert_close(layer.forward(x2)[:, :3], out[:, :3], rtol=1e-14, atol=0)
    assert (tl.to_cpu(layer.attention_weights)[:, :, 0, 1:] == 0).all()


@pytest.mark.parametrize("Tq,Tk", [(3, 5), (4, 1), (2, 2)])
def test_cross_attention_forward_and_gradcheck(xp, rng, Tq, Tk):
    N, D, heads = 2, 6, 3
    layer = make_mha(xp, rng, D, heads)
    x, memory = randn(xp, rng, N, Tq, D), randn(xp, rng, N, Tk, D)
    out = layer.forward(x, memory)
    assert out.shape == (N, Tq, D)
    assert_close(out, mha_reference(layer, x, memory)[0], rtol=1e-12)
    errors = assert_gradcheck_attention(layer, x, memory, input_names=["x", "memory"])
    assert {"x", "memory"} <= set(errors)


def test_key_padding_mask(xp, rng):
    N, Tq, Tk, D = 2, 3, 5, 4
    layer = make_mha(xp, rng, D, 2)
    x, memory = randn(xp, rng, N, Tq, D), randn(xp, rng, N, Tk, D)
    pad = np.zeros((N, Tk), dtype=bool)
    pad[0, 3:] = True
    pad[1, 4:] = True
    pad_xp = xp.asarray(pad)
    out = layer.forward(x, memory, pad_xp)
    want, weights = mha_reference(layer, x, memory, mask=pad[:, None, :])
    assert_close(out, want, rtol=1e-12)
    assert (tl.to_cpu(layer.attention_weights)[0, :, :, 3:] == 0).all()
    # padded keys do not matter: change them, the output stays
    memory2 = memory.copy()
    memory2[0, 3:] += 5.0
    assert_close(layer.forward(x, memory2, pad_xp), out, rtol=1e-13, atol=1e-14)
    assert_gradcheck_attention(layer, x, memory, pad_xp, input_names=["x", "memory"])
    dx, dmemory = layer.backward(xp.ones((N, Tq, D)))
    assert (tl.to_cpu(dmemory)[0, 3:] == 0).all()


def test_causal_self_attention_with_padding(xp, rng):
    layer = make_mha(xp, rng, 4, 2, causal=True)
    x = randn(xp, rng, 2, 4, 4)
    pad = xp.asarray(np.array([[False] * 4, [False, False, False, True]]))
    mask = np.triu(np.ones((4, 4), bool), 1) | tl.to_cpu(pad)[:, None, :]  # (2, 4, 4)
    want = mha_reference(layer, x, mask=mask)[0]
    assert_close(layer.forward(x, None, pad), want, rtol=1e-12)
    assert_gradcheck_attention(layer, x, None, pad)


def test_attention_backward_overwrites_and_keeps_weights(rng):
    layer = make_mha(np, rng, 4, 2)
    x = rng.standard_normal((2, 3, 4))
    layer.forward(x)
    a = layer.attention_weights.copy()
    dout = rng.standard_normal((2, 3, 4))
    first = layer.backward(dout)
    grads = [g.copy() for g in layer.grads]
    second = layer.backward(dout)
    assert_close(first, second, rtol=0, atol=0)
    for g, h in zip(grads, layer.grads):
        assert_close(g, h, rtol=0, atol=0)  # overwritten, not accumulated
    assert_close(layer.attention_weights, a, rtol=0, atol=0)


def test_attention_errors(rng):
    with pytest.raises(ValueError, match="num_heads.*D=6.*4"):
        make_mha(np, rng, 6, 4)
    layer = make_mha(np, rng, 4, 2)
    with pytest.raises(tl.ShapeError, match="'x'"):
        layer.forward(np.zeros((2, 3, 5)))
    with pytest.raises(tl.ShapeError, match="'memory'.*\\(2, Tk, 4\\).*\\(3, 5, 4\\)"):
        layer.forward(np.zeros((2, 3, 4)), np.zeros((3, 5, 4)))
    with pytest.raises(tl.ShapeError, match="key_padding_mask.*\\(2, 3\\)"):
        layer.forward(np.zeros((2, 3, 4)), None, np.zeros((2, 4), dtype=bool))
    with pytest.raises(tl.ShapeError, match="key_padding_mask.*bool"):
        layer.forward(np.zeros((2, 3, 4)), None, np.zeros((2, 3)))


# -- positions --------------------------------------------------------------------------
def test_sinusoidal_table():
    table = PositionalEncoding(50, 6).table
    pos, i = 7, 1
    assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)), abs=1e-15)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)), abs=1e-15)
    assert_close(table[0], [0, 1, 0, 1, 0, 1], rtol=0, atol=0)
    assert PositionalEncoding(4, 5).table.shape == (4, 5)


def test_positional_encoding_adds_rows_from_offset(xp, rng):
    layer = PositionalEncoding(10, 4)
    x = randn(xp, rng, 2, 3, 4, dtype=np.float32)
    out = layer.forward(x, offset=2)
    assert out.dtype == np.float32
    assert_close(out, tl.to_cpu(x) + layer.table[2:5].astype(np.float32), rtol=1e-6)
    assert_gradcheck(layer, randn(xp, rng, 2, 3, 4))
    with pytest.raises(ValueError, match="max_len=10.*offset=8 and T=3"):
        layer.forward(x, offset=8)


def test_learned_positional_embedding(xp, rng):
    W = randn(xp, rng, 6, 4)
    layer = LearnedPositionalEmbedding(W)
    assert layer.params[0] is W
    x = randn(xp, rng, 2, 3, 4)
    assert_close(layer.forward(x, offset=1), tl.to_cpu(x) + tl.to_cpu(W)[1:4], rtol=1e-14)
    dout = randn(xp, rng, 2, 3, 4)
    layer.backward(dout)
    dW = tl.to_cpu(layer.grads[0])
    assert (dW[[0, 4, 5]] == 0).all()
    assert_close(dW[1:4], tl.to_cpu(dout).sum(0), rtol=1e-14)
    assert_gradcheck(LearnedPositionalEmbedding(W), x)
    with pytest.raises(ValueError, match="max_len=6"):
        layer.forward(randn(xp, rng, 1, 7, 4))


# -- TransformerBlock ------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_block_gradcheck(rng, activation, causal):
    block = TransformerBlock(8, 2, 12, causal=causal, activation=activation, dtype="float64",
                             rng=1)
    x = rng.standard_normal((2, 4, 8))
    assert_gradcheck_attention(block, x)


def test_decoder_block_gradcheck_with_masks(rng):
    block = TransformerBlock(6, 3, 10, causal=True, cross_attention=True, dtype="float64", rng=1)
    x, memory = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 5, 6))
    pad = np.array([[False] * 5, [False, False, False, True, True]])
    assert_gradcheck_attention(block, x, memory, None, pad, input_names=["x", "memory"])


def test_block_dropout_train_and_eval(rng):
    block = TransformerBlock(8, 2, 16, dropout=0.3, dtype="float64", rng=2)
    x = rng.standard_normal((2, 5, 8))
    block.train_flg = False
    assert all(not d.train_flg for d in block.dropouts)
    out_eval = block.forward(x)
    assert_close(block.forward(x), out_eval, rtol=0, atol=0)
    block.train_flg = True
    assert not np.allclose(block.forward(x), out_eval)
    # with the dropout generator reset before every forward, the masks are fixed
    state = block.dropouts[0].rng.bit_generator.state

    def setup():
        block.dropouts[0].rng.bit_generator.state = state

    assert_gradcheck_attention(block, x, setup=setup)


def test_block_params_are_the_sublayers_arrays():
    block = TransformerBlock(4, 2, 8, cross_attention=True, rng=0)
    assert len(block.params) == len(block.grads) == len(block.param_names) == 8 * 2 + 2 * 3 + 4
    assert block.param_names[:3] == ("self_attn_norm.gamma", "self_attn_norm.beta",
                                     "self_attn.Wq")
    assert block.params[2] is block.self_attn.params[0]
    assert block.grads[2] is block.self_attn.grads[0]
    assert all(p.dtype == np.float32 for p in block.params)
    out = block.forward(np.ones((1, 2, 4), np.float32), np.ones((1, 3, 4), np.float32))
    dx, dm = block.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == dm.dtype == np.float32


def test_block_errors():
    with pytest.raises(ValueError, match="activation"):
        TransformerBlock(4, 2, 8, activation="tanh")
    with pytest.raises(ValueError, match="num_heads"):
        TransformerBlock(6, 4, 8)
    with pytest.raises(ValueError, match="ff_size"):
        TransformerBlock(4, 2, 0)
    with pytest.raises(ValueError, match="'memory'.*required"):
        TransformerBlock(4, 2, 8, cross_attention=True).forward(np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match="'memory' is only used"):
        TransformerBlock(4, 2, 8).forward(np.zeros((1, 2, 4), np.float32),
                                          np.zeros((1, 2, 4), np.float32))
    with pytest.raises(tl.ShapeError, match="'x'"):
        TransformerBlock(4, 2, 8).forward(np.zeros((1, 2, 5), np.float32))


def test_attention_float32_stays_float32(xp, rng):
    layer = make_mha(xp, rng, 4, 2, causal=True, dtype=np.float32)
    x = randn(xp, rng, 2, 3, 4, dtype=np.float32)
    memory_pad = xp.asarray(np.array([[False, False, True], [False] * 3]))
    out = layer.forward(x, None, memory_pad)
    dx = layer.backward(xp.ones_like(out))
    assert out.dtype == dx.dtype == layer.attention_weights.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads)

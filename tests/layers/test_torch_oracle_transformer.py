"""PyTorch as an oracle for the Transformer layers (float64, forward and backward):
nn.LayerNorm, F.gelu, nn.MultiheadAttention with the weights mapped, and
nn.TransformerEncoderLayer / nn.TransformerDecoderLayer (norm_first=True,
batch_first=True, dropout=0) against TransformerBlock."""

import numpy as np
import pytest

from timelayers.layers import GELU, LayerNorm, MultiHeadAttention, TransformerBlock

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

TOL = dict(rtol=1e-10, atol=1e-12)


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def assert_close(ours, theirs, **tol):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), **(tol or TOL))


def load_mha(torch_mha, layer):
    """Copy our MultiHeadAttention's params into nn.MultiheadAttention."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = layer.params
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(t(np.concatenate([Wq.T, Wk.T, Wv.T])))
        torch_mha.in_proj_bias.copy_(t(np.concatenate([bq, bk, bv])))
        torch_mha.out_proj.weight.copy_(t(Wo.T))
        torch_mha.out_proj.bias.copy_(t(bo))


def assert_mha_grads(layer, torch_mha):
    dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo = layer.grads
    D = dWq.shape[0]
    w, b = torch_mha.in_proj_weight.grad.numpy(), torch_mha.in_proj_bias.grad.numpy()
    for i, (dW, db) in enumerate([(dWq, dbq), (dWk, dbk), (dWv, dbv)]):
        np.testing.assert_allclose(dW, w[i * D:(i + 1) * D].T, **TOL)
        np.testing.assert_allclose(db, b[i * D:(i + 1) * D], **TOL)
    np.testing.assert_allclose(dWo, torch_mha.out_proj.weight.grad.numpy().T, **TOL)
    np.testing.assert_allclose(dbo, torch_mha.out_proj.bias.grad.numpy(), **TOL)


def assert_norm_grads(layer, torch_norm):
    np.testing.assert_allclose(layer.grads[0], torch_norm.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(layer.grads[1], torch_norm.bias.grad.numpy(), **TOL)


def test_layer_norm_vs_torch(rng):
    D = 7
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    x, dout = rng.standard_normal((3, 4, D)) * 2 + 1, rng.standard_normal((3, 4, D))
    layer = LayerNorm(gamma, beta)
    out = layer.forward(x)
    dx = layer.backward(dout)
    norm = torch.nn.LayerNorm(D, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.copy_(t(gamma))
        norm.bias.copy_(t(beta))
    tx = t(x, grad=True)
    tout = norm(tx)
    tout.backward(t(dout))
    assert_close(out, tout)
    assert_close(dx, tx.grad)
    assert_norm_grads(layer, norm)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_vs_torch(rng, approximate):
    x, dout = rng.standard_normal((5, 6)) * 3, rng.standard_normal((5, 6))
    layer = GELU(approximate)
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = t(x, grad=True)
    tout = torch.nn.functional.gelu(tx, approximate=approximate)
    tout.backward(t(dout))
    assert_close(out, tout, rtol=1e-13, atol=1e-15)
    assert_close(dx, tx.grad, rtol=1e-12, atol=1e-14)


def _mha(rng, D, heads, causal=False):
    arrays = []
    for _ in range(4):
        arrays += [rng.standard_normal((D, D)) * 0.5, rng.standard_normal(D) * 0.1]
    return MultiHeadAttention(*arrays, num_heads=heads, causal=causal)


@pytest.mark.parametrize("causal,padded", [(False, False), (True, False), (False, True),
                                           (True, True)])
def test_self_attention_vs_torch(rng, causal, padded):
    N, T, D, heads = 3, 5, 8, 2
    layer = _mha(rng, D, heads, causal)
    x, dout = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, D))
    pad = np.zeros((N, T), dtype=bool)
    if padded:
        pad[1, 3:] = True
        pad[2, 4:] = True
    out = layer.forward(x, None, pad if padded else None)
    dx = layer.backward(dout)

    mha = torch.nn.MultiheadAttention(D, heads, batch_first=True, dtype=torch.float64)
    load_mha(mha, layer)
    tx = t(x, grad=True)
    causal_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    tout, tweights = mha(tx, tx, tx, key_padding_mask=torch.tensor(pad) if padded else None,
                         attn_mask=causal_mask, need_weights=True, average_attn_weights=False)
    tout.backward(t(dout))
    assert_close(out, tout)
    assert_close(layer.attention_weights, tweights)
    assert_close(dx, tx.grad)
    assert_mha_grads(layer, mha)


def test_cross_attention_vs_torch(rng):
    N, Tq, Tk, D, heads = 2, 3, 6, 12, 4
    layer = _mha(rng, D, heads)
    x, memory = rng.standard_normal((N, Tq, D)), rng.standard_normal((N, Tk, D))
    dout = rng.standard_normal((N, Tq, D))
    pad = np.zeros((N, Tk), dtype=bool)
    pad[0, 4:] = True
    out = layer.forward(x, memory, pad)
    dx, dmemory = layer.backward(dout)

    mha = torch.nn.MultiheadAttention(D, heads, batch_first=True, dtype=torch.float64)
    load_mha(mha, layer)
    tx, tm = t(x, grad=True), t(memory, grad=True)
    tout, _ = mha(tx, tm, tm, key_padding_mask=torch.tensor(pad), need_weights=False)
    tout.backward(t(dout))
    assert_close(out, tout)
    assert_close(dx, tx.grad)
    assert_close(dmemory, tm.grad)
    assert_mha_grads(layer, mha)


def load_block(torch_layer, block):
    """Copy a TransformerBlock's params into nn.TransformerEncoderLayer (norm1 before
    self-attention, norm2 before the feed-forward network) or
    nn.TransformerDecoderLayer (norm1, norm2 before cross-attention, norm3)."""
    norms = [block.self_attn_norm] + ([block.cross_attn_norm] if block.cross_attention else [])
    norms.append(block.ff_norm)
    with torch.no_grad():
        for i, norm in enumerate(norms, 1):
            getattr(torch_layer, f"norm{i}").weight.copy_(t(norm.params[0]))
            getattr(torch_layer, f"norm{i}").bias.copy_(t(norm.params[1]))
        for lin, affine in ((torch_layer.linear1, block.ff1), (torch_layer.linear2, block.ff2)):
            lin.weight.copy_(t(affine.params[0].T))
            lin.bias.copy_(t(affine.params[1]))
    load_mha(torch_layer.self_attn, block.self_attn)
    if block.cross_attention:
        load_mha(torch_layer.multihead_attn, block.cross_attn)
    return norms


def assert_block_grads(block, torch_layer, norms):
    for i, norm in enumerate(norms, 1):
        assert_norm_grads(norm, getattr(torch_layer, f"norm{i}"))
    for lin, affine in ((torch_layer.linear1, block.ff1), (torch_layer.linear2, block.ff2)):
        np.testing.assert_allclose(affine.grads[0], lin.weight.grad.numpy().T, **TOL)
        np.testing.assert_allclose(affine.grads[1], lin.bias.grad.numpy(), **TOL)
    assert_mha_grads(block.self_attn, torch_layer.self_attn)
    if block.cross_attention:
        assert_mha_grads(block.cross_attn, torch_layer.multihead_attn)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal,padded", [(False, False), (True, True)])
def test_block_vs_transformer_encoder_layer(rng, activation, causal, padded):
    N, T, D, heads, F = 3, 6, 8, 2, 16
    block = TransformerBlock(D, heads, F, causal=causal, activation=activation, dtype="float64",
                             rng=rng)
    x, dout = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, D))
    pad = np.zeros((N, T), dtype=bool)
    pad[2, 4:] = padded
    out = block.forward(x, None, pad if padded else None)
    dx = block.backward(dout)

    layer = torch.nn.TransformerEncoderLayer(D, heads, F, dropout=0.0, activation=activation,
                                             batch_first=True, norm_first=True,
                                             dtype=torch.float64)
    norms = load_block(layer, block)
    tx = t(x, grad=True)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    tout = layer(tx, src_mask=mask, src_key_padding_mask=torch.tensor(pad) if padded else None)
    tout.backward(t(dout))
    assert_close(out, tout)
    assert_close(dx, tx.grad)
    assert_block_grads(block, layer, norms)


def test_decoder_block_vs_transformer_decoder_layer(rng):
    N, T, Tm, D, heads, F = 2, 4, 5, 6, 3, 10
    block = TransformerBlock(D, heads, F, causal=True, cross_attention=True, activation="gelu",
                             dtype="float64", rng=rng)
    x, memory = rng.standard_normal((N, T, D)), rng.standard_normal((N, Tm, D))
    dout = rng.standard_normal((N, T, D))
    pad = np.zeros((N, Tm), dtype=bool)
    pad[1, 3:] = True
    out = block.forward(x, memory, None, pad)
    dx, dmemory = block.backward(dout)

    layer = torch.nn.TransformerDecoderLayer(D, heads, F, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True,
                                             dtype=torch.float64)
    norms = load_block(layer, block)
    tx, tm = t(x, grad=True), t(memory, grad=True)
    tout = layer(tx, tm, tgt_mask=torch.triu(torch.ones(T, T, dtype=torch.bool), 1),
                 memory_key_padding_mask=torch.tensor(pad))
    tout.backward(t(dout))
    assert_close(out, tout)
    assert_close(dx, tx.grad)
    assert_close(dmemory, tm.grad)
    assert_block_grads(block, layer, norms)

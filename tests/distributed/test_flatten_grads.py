"""``distributed.flat_buffers.flatten_grads``: every model's gradients laid in one flat buffer per
dtype, the layers' gradient arrays views of it; training goes on to the bit as
without it (the data-parallel reduction uses it to reduce without copies)."""


import numpy as np
import pytest

from support.devices import needs_cupy

from support.tiny_models import MODEL_FACTORIES
from timelayers import models
from timelayers.distributed.flat_buffers import flatten_grads
from timelayers.optim import Adam

V = 7


def transformer_lm():
    return models.TransformerLM(vocab_size=V, d_model=8, num_heads=2, num_layers=2, ff_size=12,
                                max_len=12, dropout=0.2, dtype="float64", rng=0)


def transformer_seq2seq():
    return models.TransformerSeq2seq(vocab_size=V, d_model=8, num_heads=2, encoder_layers=1,
                                     decoder_layers=2, ff_size=12, max_len=10, dropout=0.2,
                                     dtype="float64", rng=0)


FACTORIES = {**MODEL_FACTORIES,
             "TransformerLM": (transformer_lm, lambda r: (r.integers(0, V, (2, 5)),
                                                          r.integers(0, V, (2, 5)))),
             "TransformerSeq2seq": (transformer_seq2seq, lambda r: (r.integers(0, V, (2, 6)),
                                                                    r.integers(0, V, (2, 4))))}


def one_step(model, inputs, optimizer):
    loss = model.forward(*inputs)
    model.backward()
    optimizer.update(model.params, model.grads)
    return loss


@pytest.mark.parametrize("before_any_step", [True, False])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_training_is_unchanged_and_the_gradients_live_in_the_buffers(name, before_any_step):
    make, data = FACTORIES[name]
    rng = np.random.default_rng(3)
    batches = [data(rng) for _ in range(3)]
    plain, flat = make(), make()
    opt_plain, opt_flat = Adam(lr=0.01), Adam(lr=0.01)
    if before_any_step:
        buffers = flatten_grads(flat)
    losses_flat = [one_step(flat, batches[0], opt_flat)]
    grads_after_one = [g.copy() for g in flat.grads]
    if not before_any_step:
        buffers = flatten_grads(flat)   # the gradients of the step just taken are kept
        for g, kept in zip(flat.grads, grads_after_one):
            np.testing.assert_array_equal(g, kept)
    losses_flat += [one_step(flat, b, opt_flat) for b in batches[1:]]
    losses_plain = [one_step(plain, b, opt_plain) for b in batches]

    assert losses_flat == losses_plain
    for a, b in zip(flat.params, plain.params):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(flat.grads, plain.grads):
        np.testing.assert_array_equal(a, b)
    assert sum(buf.data.size for buf in buffers) == sum(g.size for g in flat.grads)
    for g in flat.grads:   # each gradient is a view of exactly one buffer
        assert sum(np.shares_memory(g, buf.data) for buf in buffers) == 1
    by_slot = {id(g) for _, _, g in flat.named_param_slots()}
    assert {id(g) for g in flat.grads} <= by_slot   # the layers hold the views themselves
    written = np.concatenate([buf.data for buf in buffers])
    assert np.count_nonzero(written) > 0.5 * written.size   # the backward wrote into them


def test_tied_weights_are_in_the_buffer_once_with_the_summed_gradient():
    model = models.BetterRnnlm(V, 4, 4, dropout_ratio=0.0, dtype="float64", rng=0)
    twin = models.BetterRnnlm(V, 4, 4, dropout_ratio=0.0, dtype="float64", rng=0)
    (buffer,) = flatten_grads(model)
    xs, ts = MODEL_FACTORIES["BetterRnnlm"][1](np.random.default_rng(0))
    for m in (model, twin):
        m.forward(xs, ts)
        m.backward()
    embed_grad = dict(zip(model.param_names, model.grads))["embed.W"]
    assert np.shares_memory(embed_grad, buffer.data)
    assert "affine.W" not in model.param_names
    np.testing.assert_array_equal(embed_grad, dict(zip(twin.param_names, twin.grads))["embed.W"])


@needs_cupy
@pytest.mark.parametrize("name", ["BetterRnnlm", "AttentionSeq2seq", "TransformerLM"])
def test_flattened_gradients_on_the_gpu(name):
    import cupy

    from timelayers.backend import to_gpu

    make, data = FACTORIES[name]
    batches = [[to_gpu(x) for x in data(np.random.default_rng(4))] for _ in range(2)]
    plain, flat = make().to_gpu(), make().to_gpu()
    buffers = flatten_grads(flat)
    opt_plain, opt_flat = Adam(lr=0.01), Adam(lr=0.01)
    for b in batches:
        assert float(one_step(flat, b, opt_flat)) == pytest.approx(float(one_step(plain, b, opt_plain)),
                                                                 rel=1e-12)
    for a, b in zip(flat.params, plain.params):   # (atomic adds may sum in another order)
        cupy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    for g in flat.grads:
        assert sum(cupy.shares_memory(g, buf.data) for buf in buffers) == 1


def test_flattened_gradients_through_row_blocks():
    """The LSTM plan that splits the batch into row blocks keeps buffers of its
    own for the later blocks and adds them into the layer's gradients: into the
    flat buffer's views, after flattening."""
    from timelayers.layers.plans import FastLSTM, RowBlocks

    def trained(flat):
        model = models.BetterRnnlm(V, 6, 6, dropout_ratio=0.0, dtype="float64", rng=0)
        for _, layer in model.named_layers():
            if hasattr(layer, "_plan"):
                layer.plan = RowBlocks(FastLSTM(False, False, True, True, False), 3)
        opt = Adam(lr=0.01)
        rng = np.random.default_rng(5)
        losses = []
        for step in range(3):
            if flat and step == 1:   # after a step: the plan has made its block buffers
                flatten_grads(model)
            batch = rng.integers(0, V, (7, 4)), rng.integers(0, V, (7, 4))
            losses.append(one_step(model, batch, opt))
        assert all(type(layer._plan) is RowBlocks
                   for _, layer in model.named_layers() if hasattr(layer, "_plan"))
        return losses, model.params

    (losses_plain, plain), (losses_flat, flat) = trained(False), trained(True)
    assert losses_flat == losses_plain
    for a, b in zip(flat, plain):
        np.testing.assert_array_equal(a, b)

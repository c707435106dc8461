"""Every model: one forward/backward against numerical gradients on a tiny
configuration, save/load giving identical predictions, and a few hundred steps
on a tiny task driving the loss down."""

import numpy as np
import pytest

import timelayers as tl
from timelayers import models
from timelayers.gradcheck import check_layer
from timelayers.optim import SGD, Adam

from support.tiny_models import MODEL_FACTORIES, TINY_CORPUS, V, freeze_randomness, lm_data, onehot_data, s2s_data, scale_params, w2v_data

@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_model_gradcheck(name):
    make, data = MODEL_FACTORIES[name]
    rng = np.random.default_rng(1)
    model = make()
    scale_params(model, rng)
    inputs = data(rng)
    setup = freeze_randomness(model)
    errors = check_layer(model, *inputs, setup=setup, eps=1e-5)
    params_only = {k: v for k, v in errors.items() if k in model.param_names}
    assert set(params_only) == set(model.param_names)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_model_save_load_identical_predictions(tmp_path, name):
    make, data = MODEL_FACTORIES[name]
    rng = np.random.default_rng(2)
    model = make()
    scale_params(model, rng)
    model.vocab = tl.Vocabulary()
    for w in "abcdefg":
        model.vocab.add(w)
    model.save(tmp_path / "m.safetensors")
    loaded = models.Model.load(tmp_path / "m.safetensors")
    assert type(loaded) is type(model)
    assert loaded.vocab.word_to_id == model.vocab.word_to_id
    inputs = data(rng)
    model.eval()
    loaded.eval()
    if hasattr(model, "ns_loss"):
        model.ns_loss.sampler.rng = np.random.default_rng(0)
        loaded.ns_loss.sampler.rng = np.random.default_rng(0)
    model.reset_state()
    loaded.reset_state()
    assert model.forward(*inputs) == loaded.forward(*inputs)
    for a, b in zip(model.params, loaded.params):
        np.testing.assert_array_equal(a, b)


def test_load_wrong_class_is_checkpoint_error(tmp_path):
    models.Rnnlm(V, 3, 4, rng=0).save(tmp_path / "m.safetensors")
    with pytest.raises(tl.CheckpointError, match="Rnnlm.*not a Seq2seq"):
        models.Seq2seq.load(tmp_path / "m.safetensors")


def test_better_rnnlm_ties_output_to_embedding():
    model = models.BetterRnnlm(V, 4, 4, rng=0)
    assert "affine.W" not in model.param_names
    assert np.shares_memory(model.affine.params[0], model.embed.params[0])
    with pytest.raises(ValueError, match="wordvec_size == hidden_size"):
        models.BetterRnnlm(V, 4, 5)


def _train(model, batches, optimizer, steps, max_grad=None):
    losses = []
    for i in range(steps):
        x, t = batches(i)
        losses.append(model.forward(x, t))
        model.backward()
        if max_grad:
            tl.optim.clip_grads(model.grads, max_grad)
        optimizer.update(model.params, model.grads)
    return losses


def _decreases(losses, factor=0.7):
    k = max(5, len(losses) // 10)
    return np.mean(losses[-k:]) < factor * np.mean(losses[:k])


def test_two_layer_net_learns_spiral():
    from timelayers.datasets import load_spiral

    x, t = load_spiral()
    model = models.TwoLayerNet(2, 10, 3, rng=0)
    rng = np.random.default_rng(0)

    def batches(i):
        idx = rng.permutation(len(x))[:30]
        return x[idx], t[idx]

    assert _decreases(_train(model, batches, SGD(lr=1.0), 600))


@pytest.mark.parametrize("name", ["SimpleRnnlm", "Rnnlm", "Rnnlm-gru", "BetterRnnlm"])
def test_language_models_learn_a_repeating_text(name):
    make = {"SimpleRnnlm": lambda: models.SimpleRnnlm(V, 8, 16, rng=0),
            "Rnnlm": lambda: models.Rnnlm(V, 8, 16, rng=0),
            "Rnnlm-gru": lambda: models.Rnnlm(V, 8, 16, cell="gru", rng=0),
            "BetterRnnlm": lambda: models.BetterRnnlm(V, 16, 16, dropout_ratio=0.1, rng=0)}[name]
    model = make()
    text = np.tile(np.array([0, 3, 1, 4, 1, 5, 6, 2]), 50)

    def batches(i):
        start = (i * 5) % (len(text) - 6)
        return text[None, start:start + 5], text[None, start + 1:start + 6]

    assert _decreases(_train(model, batches, Adam(lr=0.01), 300, max_grad=5.0), 0.5)


@pytest.mark.parametrize("name", ["CBOW", "SkipGram", "SimpleCBOW", "SimpleSkipGram"])
def test_word2vec_models_learn(name):
    from timelayers.text import convert_one_hot, create_contexts_target

    corpus = np.tile(np.arange(V), 40)
    contexts, target = create_contexts_target(corpus, 1)
    model = {"CBOW": lambda: models.CBOW(V, 8, 1, corpus, sample_size=2, rng=0),
             "SkipGram": lambda: models.SkipGram(V, 8, 1, corpus, sample_size=2, rng=0),
             "SimpleCBOW": lambda: models.SimpleCBOW(V, 8, 1, rng=0),
             "SimpleSkipGram": lambda: models.SimpleSkipGram(V, 8, 1, rng=0)}[name]()
    if name.startswith("Simple"):
        contexts, target = convert_one_hot(contexts, V), convert_one_hot(target, V)
    rng = np.random.default_rng(0)

    def batches(i):
        idx = rng.permutation(len(target))[:20]
        return contexts[idx], target[idx]

    assert _decreases(_train(model, batches, Adam(lr=0.05), 300))


@pytest.mark.parametrize("cls", [models.Seq2seq, models.PeekySeq2seq, models.AttentionSeq2seq])
def test_seq2seq_models_learn_to_copy(cls):
    rng = np.random.default_rng(0)
    model = cls(V, 8, 32, rng=0)

    def batches(i):
        x = rng.integers(1, V, (16, 3))
        return x, np.concatenate([np.zeros((16, 1), int), x[:, ::-1]], axis=1)

    losses = _train(model, batches, Adam(lr=0.02), 300, max_grad=5.0)
    assert _decreases(losses, 0.3)
    x, t = batches(0)
    assert (model.generate(x, 0, 3) == t[:, 1:]).mean() > 0.9


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_language_model_state_get_set_for_generation(cell):
    model = models.BetterRnnlm(V, 6, 6, dropout_ratio=0.5, cell=cell, rng=0).eval()
    rng = np.random.default_rng(0)
    model.predict(rng.integers(0, V, (1, 5)))
    state = model.get_state()
    nxt = rng.integers(0, V, (1, 3))
    a = model.predict(nxt)
    model.predict(rng.integers(0, V, (1, 4)))  # wander off
    model.set_state(state)
    np.testing.assert_array_equal(model.predict(nxt), a)
    model.reset_state()
    fresh = model.predict(nxt)
    assert not np.allclose(fresh, a)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_replica_holds_the_same_arrays_in_layers_of_its_own(name):
    """Model.replica (what the seq2seq decoders run row blocks on): every param and
    grad slot the very array of the model (ties included), every layer its own, and
    a forward on the replica leaves the model's layers as they were."""
    make, data = MODEL_FACTORIES[name]
    model = make()
    replica = model.replica()
    assert replica.param_names == model.param_names
    for (n1, p1, g1), (n2, p2, g2) in zip(model.named_param_slots(), replica.named_param_slots(),
                                          strict=True):
        assert n1 == n2 and p1 is p2 and g1 is g2
    layers = list(zip(model.named_layers(), replica.named_layers(), strict=True))
    assert all(n1 == n2 and a is not b for (n1, a), (n2, b) in layers)
    before = [dict(vars(layer)) for _, layer in model.named_layers()]
    replica.eval()
    replica.forward(*data(np.random.default_rng(3)))
    after = [dict(vars(layer)) for _, layer in model.named_layers()]
    assert all(b.keys() == a.keys() and all(b[k] is a[k] for k in b)
               for b, a in zip(before, after))

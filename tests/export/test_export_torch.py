"""to_torch / from_torch: nn.Embedding, nn.LSTM/nn.GRU/nn.RNN and nn.Linear holding our
weights, the same loss, an exact round trip, and training that goes on in PyTorch
(step for step as ours, ``test_trains_as_ours``)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")

from timelayers.errors import OptionError  # noqa: E402
from timelayers.export import from_torch, to_torch  # noqa: E402
from timelayers.export.torch_modules import BookGRU, load_torch, save_torch  # noqa: E402
from timelayers.models import (CBOW, AttentionSeq2seq, BetterRnnlm, PeekySeq2seq, Rnnlm,  # noqa: E402
                               Seq2seq, SimpleRnnlm, SkipGram, TransformerLM)
from timelayers.optim import SGD, clip_grads  # noqa: E402
from timelayers.vocab import Vocabulary  # noqa: E402

V = 30


def shaken(model, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    for p in model.params:
        p[...] += rng.normal(0, scale, p.shape).astype(p.dtype)
    return model.eval()


def ids(shape, seed=2):
    return np.random.default_rng(seed).integers(0, V, shape)


MODELS = {
    "rnnlm": lambda: Rnnlm(V, 8, 6, rng=0),
    "rnnlm-gru": lambda: Rnnlm(V, 8, 6, "gru", rng=0),
    "rnnlm-gru-reset-after": lambda: Rnnlm(V, 8, 6, "gru-reset-after", rng=0),
    "simple-rnnlm": lambda: SimpleRnnlm(V, 8, 6, rng=0),
    "better-rnnlm": lambda: BetterRnnlm(V, 10, 10, 0.5, rng=0),
    "better-rnnlm-gru": lambda: BetterRnnlm(V, 10, 10, 0.5, 2, "gru", rng=0),
    "seq2seq": lambda: Seq2seq(V, 8, 12, rng=0),
    "peeky": lambda: PeekySeq2seq(V, 8, 12, rng=0),
    "attention": lambda: AttentionSeq2seq(V, 8, 12, rng=0),
    "attention-general": lambda: AttentionSeq2seq(V, 8, 12, score="general", rng=0),
    "cbow": lambda: CBOW(V, 8, 2, counts=np.arange(1, V + 1), rng=0),
    "skipgram": lambda: SkipGram(V, 8, 2, counts=np.arange(1, V + 1), rng=0),
}


def loss_pair(model, module, seed=3):
    """Our loss and the module's on the same batch (evaluation mode)."""
    if hasattr(module, "encoder_rnn"):
        xs, ts = ids((5, 7), seed), ids((5, 6), seed + 1)
        theirs = module.loss(torch.from_numpy(xs), torch.from_numpy(ts))
    else:
        xs, ts = ids((4, 9), seed), ids((4, 9), seed + 1)
        theirs, _ = module.loss(torch.from_numpy(xs), torch.from_numpy(ts))
    model.reset_state()
    return float(model.forward(xs, ts)), theirs


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_exact(name):
    model = shaken(MODELS[name]())
    back = from_torch(to_torch(model))
    assert type(back) is type(model)
    for (key, ours), (key_back, theirs) in zip(model.state_dict().items(),
                                               back.state_dict().items()):
        assert key == key_back
        np.testing.assert_array_equal(theirs, ours, err_msg=key)


@pytest.mark.parametrize("name", [n for n in MODELS if n not in ("cbow", "skipgram")])
def test_loss_equals_ours(name):
    model = shaken(MODELS[name]())
    module = to_torch(model).eval()
    ours, theirs = loss_pair(model, module)
    assert abs(theirs.item() - ours) <= 2e-6 * abs(ours)


def test_built_from_torch_layers():
    module = to_torch(BetterRnnlm(V, 10, 10, rng=0))
    assert isinstance(module.embed, torch.nn.Embedding)
    assert isinstance(module.rnn, torch.nn.LSTM) and module.rnn.num_layers == 2
    assert isinstance(module.linear, torch.nn.Linear)
    assert module.linear.weight is module.embed.weight                 # tied, as ours
    assert isinstance(to_torch(Rnnlm(V, 8, 6, "gru-reset-after")).rnn, torch.nn.GRU)
    assert isinstance(to_torch(Rnnlm(V, 8, 6, "gru")).rnn, BookGRU)    # nn.GRU is reset-after
    # one bias in ours: torch's second one is a frozen zero; the reset-after GRU has two
    assert not any(getattr(module.rnn, f"bias_hh_l{k}").requires_grad for k in range(2))
    assert module.rnn.bias_ih_l0.requires_grad
    assert to_torch(Rnnlm(V, 8, 6, "gru-reset-after")).rnn.bias_hh_l0.requires_grad


def test_word_vectors_equal_ours():
    model = shaken(MODELS["cbow"]())
    xs = ids((6,))
    np.testing.assert_array_equal(to_torch(model)(torch.from_numpy(xs)).detach().numpy(),
                                  model.word_vecs[xs])


def test_state_carries_across_windows_as_ours():
    model = shaken(Rnnlm(V, 8, 6, rng=0))
    module = to_torch(model).eval()
    xs = ids((3, 10))
    ours = model.predict(xs)
    a, state = module(torch.from_numpy(xs[:, :4]))
    b, _ = module(torch.from_numpy(xs[:, 4:]), state)
    np.testing.assert_allclose(torch.cat([a, b], 1).detach().numpy(), ours, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["better-rnnlm", "attention"])
def test_training_goes_on_in_torch_and_comes_back(name):
    model = shaken(MODELS[name]())
    module = to_torch(model).train()
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    before = None
    for step in range(5):
        opt.zero_grad()
        _, loss = loss_pair(model, module, seed=10)
        loss.backward()
        opt.step()
        before = loss.item() if before is None else before
    module.eval()
    back = from_torch(module)
    ours, theirs = loss_pair(back.eval(), module, seed=10)
    assert theirs.item() < before                                      # it trained
    assert abs(theirs.item() - ours) <= 2e-6 * abs(ours)               # and came back


TRAINED = {
    "rnnlm": lambda: Rnnlm(V, 8, 6, dtype="float64", rng=0),
    "rnnlm-gru": lambda: Rnnlm(V, 8, 6, "gru", dtype="float64", rng=0),
    "better-rnnlm": lambda: BetterRnnlm(V, 10, 10, 0.5, dtype="float64", rng=0),
    "attention": lambda: AttentionSeq2seq(V, 8, 12, dtype="float64", rng=0),
}


@pytest.mark.parametrize("name", list(TRAINED))
def test_trains_as_ours(name):
    """Equal gradients are not enough for a training oracle: ten SGD steps with
    clipping at the book's lr 20, float64, dropout off, give our losses (the
    language models carrying their state, detached, from batch to batch). A
    trainable ``bias_hh`` beside ``bias_ih`` would move the bias twice as fast as
    ours and count twice in the clipping norm."""
    model = TRAINED[name]().eval()
    module = to_torch(model).eval()
    opt, topt = SGD(lr=20.0), torch.optim.SGD(module.parameters(), lr=20.0)
    lm = not hasattr(module, "encoder_rnn")
    state = None
    for step in range(10):
        xs, ts = ids((3, 5) if lm else (3, 7), step), ids((3, 5), 100 + step)
        topt.zero_grad()
        if lm:
            loss, state = module.loss(torch.from_numpy(xs), torch.from_numpy(ts), state)
            state = state.detach() if torch.is_tensor(state) else tuple(s.detach() for s in state)
        else:
            loss = module.loss(torch.from_numpy(xs), torch.from_numpy(ts))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 0.25)
        topt.step()
        ours = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, 0.25)
        opt.update(model.params, model.grads)
        assert ours == pytest.approx(loss.item(), rel=1e-9), f"{name} step {step}"


def test_generate_equals_ours():
    model = shaken(AttentionSeq2seq(V, 8, 12, rng=0))
    xs = ids((7, 8))
    theirs = to_torch(model).eval().generate(torch.from_numpy(xs), 3, 6).numpy()
    np.testing.assert_array_equal(theirs, model.generate(xs, 3, 6))


def test_save_and_load_keep_config_and_vocabulary(tmp_path):
    model = shaken(Rnnlm(V, 8, 6, rng=0))
    model.vocab = Vocabulary(f"w{i}" for i in range(V))
    save_torch(model, tmp_path / "m.pt", {"recipe": "rnnlm"})
    module = load_torch(tmp_path / "m.pt")
    back = from_torch(module)
    assert back.vocab == model.vocab
    np.testing.assert_array_equal(back.state_dict()["rnn.Wx"], model.state_dict()["rnn.Wx"])


def test_refusals_are_one_line():
    with pytest.raises(OptionError, match="got a TransformerLM \\(export it with to_onnx\\)"):
        to_torch(TransformerLM(V, 8, 2, 1, 16, max_len=8))
    with pytest.raises(OptionError, match="expected a module made by to_torch"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(OptionError, match="expected a Rnnlm"):
        from_torch(to_torch(Rnnlm(V, 8, 6)), Seq2seq(V, 8, 6))

"""to_torch / from_torch: nn.Embedding, nn.LSTM/nn.GRU/nn.RNN, nn.Linear and, for the
Transformers, nn.TransformerEncoderLayer/nn.TransformerDecoderLayer and nn.LayerNorm
holding our weights, the same loss, an exact round trip, and training that goes on
in PyTorch (step for step as ours, ``test_trains_as_ours``). Gradients are compared
in ``tests/models/test_torch_models_equivalence.py``."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")

from timelayers.errors import OptionError  # noqa: E402
from timelayers.export import EXPORT_KINDS, from_torch, to_torch  # noqa: E402
from timelayers.export.torch_modules import BookGRU, load_torch, save_torch  # noqa: E402
from timelayers.models import (CBOW, AttentionSeq2seq, BetterRnnlm, PeekySeq2seq, Rnnlm,  # noqa: E402
                               Seq2seq, SimpleRnnlm, SkipGram, TransformerLM,
                               TransformerSeq2seq)
from timelayers.models.mlp import TwoLayerNet  # noqa: E402
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
    "transformer-lm": lambda: TransformerLM(V, 12, 3, 2, 20, max_len=10, rng=0),
    "transformer-lm-learned-gelu": lambda: TransformerLM(V, 12, 3, 2, 20, max_len=10,
                                                         positional="learned",
                                                         activation="gelu", rng=0),
    "transformer-seq2seq": lambda: TransformerSeq2seq(V, 12, 3, 2, 1, 20, max_len=10, rng=0),
    "transformer-seq2seq-learned-relu": lambda: TransformerSeq2seq(
        V, 12, 3, 1, 2, 20, max_len=10, positional="learned", activation="relu", rng=0),
}
TRANSFORMERS = [n for n in MODELS if n.startswith("transformer")]


def loss_pair(model, module, seed=3):
    """Our loss and the module's on the same batch (evaluation mode)."""
    if hasattr(module, "encode"):                                   # the seq2seq modules
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


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_round_trip_is_exact_in_float64(name):
    model = MODELS[name]()
    model = shaken(type(model)(**{**model.config.__dict__, "dtype": "float64"}, rng=0))
    module = to_torch(model)
    assert module.linear.weight.dtype == torch.float64
    back = from_torch(module)
    assert back.config == model.config
    assert back.state_dict().keys() == model.state_dict().keys()
    for key, ours in model.state_dict().items():
        assert back.state_dict()[key].dtype == ours.dtype
        np.testing.assert_array_equal(back.state_dict()[key], ours, err_msg=key)


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
    lm = not hasattr(module, "encoder_rnn")
    carried = [None]

    def loss_of(xs, ts):
        if not lm:
            return module.loss(xs, ts)
        loss, state = module.loss(xs, ts, carried[0])
        carried[0] = (state.detach() if torch.is_tensor(state)
                      else tuple(s.detach() for s in state))
        return loss

    assert_trains_as_ours(model, module, loss_of, lr=20.0, max_grad=0.25,
                          shapes=((3, 5) if lm else (3, 7), (3, 5)), label=name)


def assert_trains_as_ours(model, module, loss_of, lr, max_grad, shapes, label):
    """Ten SGD steps with gradient clipping on each side, on the same batches of
    ids of ``shapes`` (questions or inputs, targets): our loss equals the module's
    (``loss_of(xs, ts)``, torch tensors in) at every step."""
    opt, topt = SGD(lr=lr), torch.optim.SGD(module.parameters(), lr=lr)
    for step in range(10):
        xs, ts = ids(shapes[0], step), ids(shapes[1], 100 + step)
        topt.zero_grad()
        loss = loss_of(torch.from_numpy(xs), torch.from_numpy(ts))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad)
        topt.step()
        ours = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, max_grad)
        opt.update(model.params, model.grads)
        assert ours == pytest.approx(loss.item(), rel=1e-9), f"{label} step {step}"


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


def test_transformers_built_from_torch_layers():
    nn = torch.nn
    lm = TransformerLM(V, 12, 3, 2, 20, max_len=10, dropout=0.25, rng=0)
    module = to_torch(lm)
    assert isinstance(module.input.embed, nn.Embedding)
    assert all(isinstance(b, nn.TransformerEncoderLayer) and b.norm_first
               and b.self_attn.batch_first for b in module.blocks)
    assert isinstance(module.norm, nn.LayerNorm) and module.norm.eps == lm.norm.eps == 1e-5
    assert module.linear.weight is module.input.embed.weight             # tied, as ours
    # the model's dropout where ours has it, none on the attention weights (ours has none)
    assert module.input.dropout.p == 0.25
    assert all(b.dropout1.p == b.dropout.p == b.dropout2.p == 0.25 and b.self_attn.dropout == 0
               for b in module.blocks)
    # the sinusoidal table is a buffer that the state_dict leaves out (the config rebuilds it)
    assert "input.position" in dict(module.named_buffers())
    assert not any("position" in k for k in module.state_dict())
    assert sum(p.numel() for p in module.parameters()) == sum(p.size for p in lm.params)

    s2s = TransformerSeq2seq(V, 12, 3, 1, 2, 20, max_len=10, dropout=0.25,
                             positional="learned", rng=0)
    module = to_torch(s2s)
    assert all(isinstance(b, nn.TransformerEncoderLayer) for b in module.encoder.blocks)
    assert all(isinstance(b, nn.TransformerDecoderLayer) and b.norm_first
               and b.self_attn.dropout == b.multihead_attn.dropout == 0
               and b.dropout3.p == 0.25 for b in module.decoder.blocks)
    W = module.encoder.input.embed.weight                                # one Parameter for
    assert module.decoder.input.embed.weight is W and module.linear.weight is W   # all three
    assert isinstance(module.encoder.input.position, nn.Parameter)     # learned: trained
    assert isinstance(module.decoder.input.position, nn.Parameter)
    assert sum(p.numel() for p in module.parameters()) == sum(p.size for p in s2s.params)


def test_every_export_kind_converts():
    """MODELS holds every exportable class, so the round trip covers them all."""
    assert {type(make()).__name__ for make in MODELS.values()} == set(EXPORT_KINDS)


def test_transformer_context_carries_across_windows_as_ours():
    """In evaluation mode ours reads each batch after the last ``max_len`` ids it has
    read; the module does so with the context it returns (windows of 4 ids with
    max_len 6: the context is cut)."""
    model = shaken(TransformerLM(V, 12, 3, 2, 20, max_len=6, positional="learned", rng=0))
    module = to_torch(model).eval()
    xs = ids((3, 12))
    context, theirs = None, []
    for k in range(0, 12, 4):
        logits, context = module(torch.from_numpy(xs[:, k:k + 4]), context)
        theirs.append(logits.detach().numpy())
        np.testing.assert_allclose(theirs[-1], model.predict(xs[:, k:k + 4]), rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_array_equal(context.numpy(), model.context)
    with pytest.raises(ValueError, match="T <= max_len=6"):
        module(torch.from_numpy(xs[:, :7]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_transformer_generate_equals_ours(dtype, positional):
    model = shaken(TransformerSeq2seq(V, 12, 3, 2, 2, 20, max_len=10, positional=positional,
                                      dtype=dtype, rng=0))
    module = to_torch(model).eval()
    for seed in range(3):
        xs = ids((6, 9), seed)
        theirs = module.generate(torch.from_numpy(xs), 3, 8).numpy()
        np.testing.assert_array_equal(theirs, model.generate(xs, 3, 8))


@pytest.mark.parametrize("kind", ["lm", "seq2seq"])
def test_transformer_trained_in_torch_comes_back(kind):
    """One Adam step in PyTorch (float64, dropout 0, training mode), then
    from_torch: our model gives the module's new loss."""
    if kind == "lm":
        model = TransformerLM(V, 12, 3, 2, 20, max_len=9, dropout=0.0, positional="learned",
                              dtype="float64", rng=0)
        xs, ts = ids((4, 9), 5), ids((4, 9), 6)
    else:
        model = TransformerSeq2seq(V, 12, 3, 2, 2, 20, max_len=9, dropout=0.0,
                                   positional="learned", dtype="float64", rng=0)
        xs, ts = ids((4, 8), 5), ids((4, 7), 6)
    module = to_torch(model).train()

    def module_loss():
        out = module.loss(torch.from_numpy(xs), torch.from_numpy(ts))
        return out[0] if kind == "lm" else out

    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    before = module_loss()
    before.backward()
    opt.step()
    after = module_loss().item()
    back = from_torch(module).train()
    assert after < before.item()
    assert back.forward(xs, ts) == pytest.approx(after, rel=1e-12)
    assert model.forward(xs, ts) == pytest.approx(before.item(), rel=1e-12)   # not moved
    moved = [k for k, v in back.state_dict().items()
             if not np.array_equal(v, model.state_dict()[k])]
    assert len(moved) > len(model.state_dict()) // 2


@pytest.mark.parametrize("kind", ["lm", "seq2seq"])
def test_transformers_train_as_ours(kind):
    """Ten clipped SGD steps, float64, dropout 0, training mode: our losses (the tied
    embedding, one Parameter in torch, moves as ours)."""
    if kind == "lm":
        model = TransformerLM(V, 12, 3, 2, 20, max_len=5, dropout=0.0, dtype="float64", rng=0)
    else:
        model = TransformerSeq2seq(V, 12, 3, 1, 1, 20, max_len=7, dropout=0.0,
                                   dtype="float64", rng=0)
    module = to_torch(model).train()

    def loss_of(xs, ts):
        loss = module.loss(xs, ts)
        return loss[0] if kind == "lm" else loss     # the LM's: (loss, context)

    assert_trains_as_ours(model, module, loss_of, lr=1.0, max_grad=0.5,
                          shapes=((3, 5) if kind == "lm" else (3, 7), (3, 5)), label=kind)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_transformer_save_and_load(tmp_path, positional):
    model = shaken(TransformerSeq2seq(V, 12, 3, 1, 1, 20, max_len=10, positional=positional,
                                      rng=0))
    save_torch(model, tmp_path / "m.pt")
    module = load_torch(tmp_path / "m.pt")
    assert isinstance(module.decoder.input.position, torch.nn.Parameter) == \
        (positional == "learned")
    back = from_torch(module)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
    xs = ids((5, 7))
    np.testing.assert_array_equal(module.eval().generate(torch.from_numpy(xs), 3, 5).numpy(),
                                  model.generate(xs, 3, 5))


def test_refusals_are_one_line():
    with pytest.raises(OptionError, match="got a TwoLayerNet \\(it cannot be exported\\)"):
        to_torch(TwoLayerNet(2, 3, 2))
    with pytest.raises(OptionError, match="expected a module made by to_torch .*"
                                          "TransformerSeq2seqModule\\), got a Linear"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(OptionError, match="expected a Rnnlm"):
        from_torch(to_torch(Rnnlm(V, 8, 6)), Seq2seq(V, 8, 6))

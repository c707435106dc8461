"""Training checkpoints: bit-exact resume, atomic writes, no NaN over a good
checkpoint, and loading checks that leave the trainer untouched."""

import json
from pathlib import Path

import numpy as np
import pytest

from timelayers.errors import CheckpointError, NonFiniteLossError
from timelayers.metrics import evaluation_mode, perplexity
from timelayers.models.base import Model
from timelayers.optim import SGD, Adam, Momentum
from timelayers.schedules import ReduceOnPlateau
from timelayers.serialization import load_tensors, save_tensors
from timelayers.training import RnnlmTrainer, Trainer
from support.faults import fail_writes_after
from support.tiny_models import TinyLM


class CkptLM(TinyLM):
    """:class:`TinyLM` with the sizes these tests use: vocabulary 9, hidden 6,
    dropout 0.3 (so that resuming must restore the model's generator)."""

    def __init__(self, vocab_size=9, hidden=6, dropout=0.3, stateful=False, scale=0.3, rng=None):
        super().__init__(vocab_size, hidden, dropout, stateful, scale, rng)


def data(seed=0, n=30, T=4, V=9):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (n, T))
    return x, (x + 1) % V


def val_loss(model):
    x, t = data(seed=99, n=8)
    with evaluation_mode(model):
        return {"val_loss": model.forward(x, t)}


def make_trainer(model_seed=1, rng=5):
    model = CkptLM(rng=model_seed)
    opt = Adam(lr=0.05)
    return Trainer(model, opt, max_grad=1.0, rng=rng, progress=False,
                   schedule=ReduceOnPlateau(opt, factor=2.0, monitor="val_loss"))


def assert_same_params(a, b):
    assert list(a.state_dict()) == list(b.state_dict())
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(p, q), k


# -- bit-exact resume ---------------------------------------------------------------------------
def test_trainer_resume_is_bit_exact(tmp_path):
    x, t = data()
    full = make_trainer()
    full.fit(x, t, max_epoch=4, batch_size=7, eval_fn=val_loss, eval_interval=2)

    path = tmp_path / "run" / "ckpt.safetensors"
    first = make_trainer()
    first.fit(x, t, max_epoch=2, batch_size=7, eval_fn=val_loss, eval_interval=2,
              checkpoint=path)
    resumed = Trainer.resume(path, progress=False)
    assert resumed.epoch == 2 and resumed.max_grad == 1.0
    assert isinstance(resumed.optimizer, Adam) and resumed.optimizer.iter == 8
    assert resumed.schedule.monitor == "val_loss"
    resumed.fit(x, t, max_epoch=4, batch_size=7, eval_fn=val_loss, eval_interval=2)

    for key in ("loss", "val_loss", "lr", "epoch", "iteration", "interval_loss"):
        assert resumed.history[key] == full.history[key], key  # exact float equality
    assert_same_params(resumed.model, full.model)

    # the same through load_checkpoint into a fresh trainer with other seeds
    other = make_trainer(model_seed=2, rng=123)
    other.load_checkpoint(path)
    other.fit(x, t, max_epoch=4, batch_size=7, eval_fn=val_loss, eval_interval=2)
    assert other.history["loss"] == full.history["loss"]
    assert_same_params(other.model, full.model)


def test_rnnlm_resume_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 9, 260)
    val = rng.integers(0, 9, 61)

    def run(max_epoch, trainer=None, checkpoint=None):
        if trainer is None:
            model = CkptLM(stateful=True, rng=4)
            opt = Momentum(lr=0.2)
            trainer = RnnlmTrainer(model, opt, max_grad=0.5, progress=False,
                                   schedule=ReduceOnPlateau(opt))
        trainer.fit(corpus[:-1], corpus[1:], max_epoch=max_epoch, batch_size=4, time_size=6,
                    eval_fn=lambda m: {"val_perplexity": perplexity(m, val, 3, 5)},
                    checkpoint=checkpoint)
        return trainer

    full = run(5)
    path = tmp_path / "lm.safetensors"
    run(3, checkpoint=path)
    resumed = run(5, trainer=RnnlmTrainer.resume(path, progress=False))
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.history["val_perplexity"] == full.history["val_perplexity"]
    assert resumed.history["lr"] == full.history["lr"]
    assert resumed.time_idx == full.time_idx
    assert_same_params(resumed.model, full.model)

    names = set(load_tensors(path)[0])
    assert {"optimizer.v.0", "trainer_state.layers.0.h", "embed.W"} <= names


def test_real_better_rnnlm_resume(tmp_path):
    rnnlm = pytest.importorskip("timelayers.models.rnnlm")
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, 12, 300)

    def new():
        model = rnnlm.BetterRnnlm(12, 6, 6, dropout_ratio=0.3, num_layers=2, dtype="float64",
                                  rng=3)
        return RnnlmTrainer(model, SGD(lr=1.0), max_grad=0.25, progress=False)

    full = new()
    full.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=3, time_size=5)
    path = tmp_path / "better.safetensors"
    half = new()
    half.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=3, time_size=5, checkpoint=path)
    resumed = RnnlmTrainer.resume(path, progress=False)
    resumed.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=3, time_size=5)
    assert resumed.history["loss"] == full.history["loss"]
    assert_same_params(resumed.model, full.model)


def test_generator_states_survive_json(tmp_path):
    x, t = data()
    model = CkptLM(rng=np.random.Generator(np.random.MT19937(11)))  # array-valued state
    trainer = Trainer(model, SGD(), rng=np.random.Generator(np.random.SFC64(2**100)),
                      progress=False)
    trainer.fit(x, t, max_epoch=1, batch_size=10, checkpoint=tmp_path / "c")
    clone = Trainer(CkptLM(rng=np.random.Generator(np.random.MT19937(0))), SGD(),
                    rng=np.random.Generator(np.random.SFC64(0)), progress=False)
    clone.load_checkpoint(tmp_path / "c")
    assert clone.rng.random() == trainer.rng.random()
    assert clone.model.rng.random() == trainer.model.rng.random()
    pcg = Trainer(CkptLM(rng=0), SGD(), rng=2**127 + 3, progress=False)
    state = pcg.rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # a 128-bit int
    pcg.fit(x, t, max_epoch=1, batch_size=10, checkpoint=tmp_path / "p")
    meta = json.loads(load_tensors(tmp_path / "p")[1]["timelayers"])
    assert meta["training"]["rng_state"] == pcg.rng.bit_generator.state


def test_checkpoint_metadata(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    x, t = data()
    trainer = make_trainer()
    trainer.fit(x, t, max_epoch=1, batch_size=10, eval_fn=val_loss, checkpoint=tmp_path / "c")
    tensors = safetensors_numpy.load_file(str(tmp_path / "c"))
    assert set(tensors) == {"embed.W", "affine.W", "affine.b"} | {
        f"optimizer.{s}.{i}" for s in "mv" for i in range(3)}
    meta = json.loads(load_tensors(tmp_path / "c")[1]["timelayers"])
    training = meta["training"]
    assert meta["model"] == "CkptLM" and meta["config"]["hidden"] == 6
    assert training["epoch"] == 1 and training["iteration"] == 3
    assert training["optimizer"] == {"type": "Adam", "hyper": {
        "lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "iter": 3}}
    assert training["schedule"]["type"] == "ReduceOnPlateau"
    assert training["history"]["val_loss"] == trainer.history["val_loss"]
    assert training["model_rng_state"]["bit_generator"] == "PCG64"
    # a training checkpoint is also a model file
    assert_same_params(Model.load(tmp_path / "c"), trainer.model)


# -- files written before ----------------------------------------------------------------------
LEGACY = Path(__file__).parents[1] / "data"


def test_checkpoints_written_before_the_training_package_resume_exactly():
    """``tests/data/legacy_*.safetensors`` were written by the single-module
    ``timelayers/training.py`` (before the ``training`` package), after epoch 2 of
    the runs below; ``legacy_checkpoints.json`` holds what the uninterrupted
    4-epoch runs gave then. Resumed today they must give the same."""
    want = json.loads((LEGACY / "legacy_checkpoints.json").read_text())
    x, t = data()
    trainer = Trainer.resume(LEGACY / "legacy_trainer.safetensors", progress=False)
    assert trainer.epoch == 2 and trainer.max_grad == 1.0
    trainer.fit(x, t, max_epoch=4, batch_size=7, eval_interval=2)
    for key in ("loss", "lr", "interval_loss"):
        np.testing.assert_allclose(trainer.history[key], want["trainer"][key], rtol=1e-12)

    corpus = np.random.default_rng(0).integers(0, 9, 260)
    lm = RnnlmTrainer.resume(LEGACY / "legacy_rnnlm_trainer.safetensors", progress=False)
    assert set(lm.carried_state) == {"layers.0.h"}
    lm.fit(corpus[:-1], corpus[1:], max_epoch=4, batch_size=4, time_size=6, eval_interval=5)
    for key in ("loss", "perplexity", "interval_loss"):
        np.testing.assert_allclose(lm.history[key], want["rnnlm_trainer"][key], rtol=1e-12)
    assert lm.time_idx == want["rnnlm_trainer"]["time_idx"]


# -- atomic writes and non-finite weights -------------------------------------------------------
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    x, t = data()
    path = tmp_path / "ckpt.safetensors"
    trainer = make_trainer()
    trainer.fit(x, t, max_epoch=1, batch_size=10, eval_fn=val_loss, checkpoint=path)
    before = path.read_bytes()

    fail_writes_after(monkeypatch, 300, OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space"):
        trainer.fit(x, t, max_epoch=2, batch_size=10, eval_fn=val_loss, checkpoint=path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
    assert Trainer.resume(path, progress=False).epoch == 1


def test_nan_weights_never_overwrite_a_good_checkpoint(tmp_path):
    x, t = data()
    path = tmp_path / "ckpt.safetensors"

    def diverge(trainer, event, info):
        if event == "epoch_end" and info["epoch"] == 2:
            trainer.model.affine.params[0][0, 0] = np.nan

    trainer = make_trainer()
    trainer.callbacks.append(diverge)
    trainer.fit(x, t, max_epoch=1, batch_size=10, eval_fn=val_loss, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"\['affine.W'\] are not finite after epoch 2"):
        trainer.fit(x, t, max_epoch=3, batch_size=10, eval_fn=val_loss, checkpoint=path)
    assert path.read_bytes() == before
    with pytest.raises(NonFiniteLossError):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before


# -- loading checks ------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    x, t = data()
    path = tmp_path / "ckpt.safetensors"
    make_trainer().fit(x, t, max_epoch=1, batch_size=10, eval_fn=val_loss, checkpoint=path)
    return path


def snapshot(trainer):
    return ({k: v.copy() for k, v in trainer.model.state_dict().items()},
            {k: (v.copy() if hasattr(v, "copy") else v)
             for k, v in trainer.optimizer.state_dict()["hyper"].items()},
            trainer.rng.bit_generator.state, trainer.model.rng.bit_generator.state,
            trainer.epoch, json.dumps(trainer.history))


def assert_untouched(trainer, snap):
    now = snapshot(trainer)
    for k in snap[0]:
        assert np.array_equal(now[0][k], snap[0][k]), k
    assert now[1:] == snap[1:]


def test_rewritten(tmp_path, checkpoint):
    """The rewrite helper keeps an unedited file as it was: the rewrite restores
    the same trainer state as the original, and training goes on the same."""
    out = rewrite(checkpoint, tmp_path / "same", lambda tensors, meta: None)
    original, rewritten = make_trainer(model_seed=8, rng=9), make_trainer(model_seed=8, rng=9)
    original.load_checkpoint(checkpoint)
    rewritten.load_checkpoint(out)
    assert original.epoch == 1
    assert_untouched(rewritten, snapshot(original))
    arrays = original.optimizer.state_dict()["arrays"]
    assert arrays and arrays.keys() == rewritten.optimizer.state_dict()["arrays"].keys()
    for k, v in rewritten.optimizer.state_dict()["arrays"].items():
        assert np.array_equal(v, arrays[k]), k
    x, t = data()
    for trainer in (original, rewritten):
        trainer.fit(x, t, max_epoch=2, batch_size=10, eval_fn=val_loss)
    assert rewritten.history == original.history | {"seconds": rewritten.history["seconds"]}
    assert_same_params(rewritten.model, original.model)


def rewrite(path, out, edit):
    tensors, raw = load_tensors(path)
    meta = json.loads(raw["timelayers"])
    edit(tensors, meta)
    save_tensors(out, tensors, {"timelayers": json.dumps(meta)})
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda ts, m: ts.update({"optimizer.m.1": np.zeros((2, 2))}), "'m.1' has shape"),
    (lambda ts, m: ts.update({"embed.W": ts["embed.W"].astype(np.float32)}),
     "'embed.W' has dtype float32"),
    (lambda ts, m: ts.update({"affine.b": np.zeros(4)}), "'affine.b' has shape"),
    (lambda ts, m: ts.pop("affine.b"), r"missing \['affine.b'\]"),
    (lambda ts, m: ts.pop("optimizer.v.1"), "numbered"),
    (lambda ts, m: m["training"]["optimizer"].update(type="SGD"), "SGD"),
    (lambda ts, m: m["training"]["schedule"].update(type="StepDecay"), "StepDecay"),
    (lambda ts, m: m["config"].update(hidden=7), r"config differs .* \['hidden'\]"),
    (lambda ts, m: m.update(model="Rnnlm"), "holds a Rnnlm"),
    (lambda ts, m: m["training"].update(trainer="RnnlmTrainer"), "RnnlmTrainer"),
    (lambda ts, m: m["training"].pop("rng_state"), "lacks 'rng_state'"),
    (lambda ts, m: m["training"]["rng_state"].update(bit_generator="MT19937"), "rng state"),
    (lambda ts, m: m["training"].update(model_rng_state=None), "random generator of the model"),
    (lambda ts, m: m.pop("training"), "not a training checkpoint"),
])
def test_bad_checkpoints_change_nothing(tmp_path, checkpoint, edit, message):
    bad = rewrite(checkpoint, tmp_path / "bad.safetensors", edit)
    x, t = data()
    trainer = make_trainer(model_seed=8, rng=9)
    trainer.fit(x, t, max_epoch=1, batch_size=10, eval_fn=val_loss)
    snap = snapshot(trainer)
    with pytest.raises(CheckpointError, match=message):
        trainer.load_checkpoint(bad)
    assert_untouched(trainer, snap)


def test_truncated_checkpoint_changes_nothing(tmp_path, checkpoint):
    data_bytes = checkpoint.read_bytes()
    bad = tmp_path / "bad"
    trainer = make_trainer(model_seed=8)
    snap = snapshot(trainer)
    for cut in (5, 100, len(data_bytes) // 2, len(data_bytes) - 1):
        bad.write_bytes(data_bytes[:cut])
        with pytest.raises(CheckpointError):
            trainer.load_checkpoint(bad)
        with pytest.raises(CheckpointError):
            Trainer.resume(bad)
    assert_untouched(trainer, snap)


def test_resume_needs_a_training_checkpoint(tmp_path):
    CkptLM(rng=0).save(tmp_path / "model")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        Trainer.resume(tmp_path / "model")


def test_rnnlm_resume_refuses_trainer_checkpoint(checkpoint):
    with pytest.raises(CheckpointError, match="written by a Trainer"):
        RnnlmTrainer.resume(checkpoint)


# -- the RnnlmTrainer's own fields and carried state (the audit of issue 17) --------------------
def make_rnnlm_trainer():
    model = CkptLM(stateful=True, rng=4)
    return RnnlmTrainer(model, Momentum(lr=0.2), max_grad=0.5, progress=False)


@pytest.fixture(scope="module")
def rnnlm_checkpoint(tmp_path_factory):
    """An RnnlmTrainer's checkpoint after one epoch: it carries the state of
    ``layers.0`` (4 streams, hidden 6)."""
    corpus = np.random.default_rng(0).integers(0, 9, 130)
    path = tmp_path_factory.mktemp("lm") / "lm.safetensors"
    make_rnnlm_trainer().fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=4, time_size=6,
                             checkpoint=path)
    return path


STATE = "trainer_state.layers.0.h"


@pytest.mark.parametrize("edit, message", [
    (lambda ts, m: m["training"].update(time_idx="x"), "'time_idx' should be an integer"),
    (lambda ts, m: m["training"].update(time_idx=10**30), "'time_idx' should be an integer"),
    (lambda ts, m: m["training"].update(time_idx=-6), "'time_idx' should be an integer"),
    (lambda ts, m: m["training"].pop("time_idx"), r"lacks \['time_idx'\]"),
    (lambda ts, m: m["training"].update(has_state="no"), "'has_state' should be true or false"),
    (lambda ts, m: m["training"].update(state_batch_size="4"), "'state_batch_size' should be"),
    (lambda ts, m: m["training"].update(state_batch_size=9),
     r"carried state 'layers.0.h' has shape \(4, 6\), expected \(9, H\)"),
    (lambda ts, m: ts.update({STATE: np.zeros((3, 6), ts[STATE].dtype)}),
     r"has shape \(3, 6\), expected \(4, H\)"),
    (lambda ts, m: ts.update({STATE: ts[STATE].astype(np.float32)}), "has dtype float32"),
    (lambda ts, m: ts[STATE].__setitem__((0, 0), np.nan), "has NaN or infinite values"),
    (lambda ts, m: ts.pop(STATE), r"the carried state holds \[\], .* need \['layers.0.h'\]"),
    (lambda ts, m: ts.update({"trainer_state.zzz": np.zeros(2)}),
     r"holds \['layers.0.h', 'zzz'\]"),
    (lambda ts, m: m["training"].update(has_state=False), "is saved, but 'has_state' is false"),
])
def test_bad_rnnlm_trainer_fields_are_refused_and_change_nothing(tmp_path, rnnlm_checkpoint,
                                                                 edit, message):
    bad = rewrite(rnnlm_checkpoint, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=message) as info:
        RnnlmTrainer.resume(bad, progress=False)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    trainer = make_rnnlm_trainer()
    trainer.time_idx = 17
    snap = snapshot(trainer)
    with pytest.raises(CheckpointError, match=message):
        trainer.load_checkpoint(bad)
    assert_untouched(trainer, snap)
    assert trainer.time_idx == 17 and trainer.carried_state is None


def test_the_untouched_rnnlm_checkpoint_resumes(tmp_path, rnnlm_checkpoint):
    same = rewrite(rnnlm_checkpoint, tmp_path / "same.safetensors", lambda ts, m: None)
    trainer = RnnlmTrainer.resume(same, progress=False)
    assert trainer.time_idx > 0 and set(trainer.carried_state) == {"layers.0.h"}

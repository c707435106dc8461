"""The Python API checks its numeric arguments up front: the optimizers'
hyper-parameters (whenever they are set, also by a schedule or a checkpoint),
the trainers' arguments, ``clip_grads``' norm and the models' sizes and ratios.
A bad value raises a one-line OptionError naming the class or function, the
argument, what was expected and what was received."""

import json
import math

import numpy as np
import pytest

from timelayers import models, optim
from timelayers.errors import CheckpointError, OptionError
from timelayers.serialization import load_tensors, save_tensors
from timelayers.training import RnnlmTrainer, Trainer
from support.tiny_models import TinyLM


def refused(call, match):
    with pytest.raises(OptionError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return info.value


# -- optimizers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(lr=-0.1), r"SGD: argument 'lr' expected a non-negative finite number, got -0.1"),
    (lambda: optim.SGD(lr=math.nan), r"SGD: argument 'lr' .* got nan"),
    (lambda: optim.SGD(lr="0.1"), r"SGD: argument 'lr' .* got '0.1'"),
    (lambda: optim.SGD(lr=True), r"SGD: argument 'lr' .* got True"),
    (lambda: optim.Momentum(momentum=1.0), r"Momentum: argument 'momentum' expected a number in \[0, 1\)"),
    (lambda: optim.Nesterov(momentum=-0.5), r"Nesterov: argument 'momentum'"),
    (lambda: optim.AdaGrad(eps=-1e-7), r"AdaGrad: argument 'eps' expected a non-negative"),
    (lambda: optim.RMSprop(decay_rate=1.5), r"RMSprop: argument 'decay_rate'"),
    (lambda: optim.Adam(beta1=1.0), r"Adam: argument 'beta1' expected a number in \[0, 1\), got 1.0"),
    (lambda: optim.Adam(beta2=math.inf), r"Adam: argument 'beta2'"),
    (lambda: optim.AdamW(weight_decay=-0.01), r"AdamW: argument 'weight_decay'"),
])
def test_bad_hyper_parameters_are_refused_by_the_constructor(make, match):
    refused(make, match)


def test_good_hyper_parameters_are_taken_as_floats():
    opt = optim.Adam(lr=0, beta1=np.float32(0.5), beta2=0.9, eps=0)  # eps 0: as PyTorch allows
    assert (opt.lr, opt.beta1, opt.eps) == (0.0, 0.5, 0.0)
    assert all(type(getattr(opt, h)) is float for h in opt._hyper)


def test_a_hyper_parameter_set_later_is_checked_too():
    opt = optim.SGD(lr=1.0)
    refused(lambda: setattr(opt, "lr", -1.0), r"SGD: argument 'lr'")
    assert opt.lr == 1.0
    opt.lr = 0.25
    assert opt.lr == 0.25


def test_a_saved_bad_hyper_parameter_changes_nothing():
    state = optim.Adam(lr=0.01).state_dict()
    state["hyper"]["beta2"] = 1.5
    opt = optim.Adam(lr=0.5)
    with pytest.raises(CheckpointError, match=r"Adam: hyper-parameter 'beta2' expected a number "
                                              r"in \[0, 1\), got 1.5"):
        opt.load_state_dict(state)
    assert (opt.lr, opt.beta2) == (0.5, 0.999)
    with pytest.raises(CheckpointError, match="hyper-parameter 'beta2'"):
        optim.optimizer_from_state(state)
    state["hyper"].update(beta2=0.9, iter=-3)
    with pytest.raises(CheckpointError, match="update count 'iter' expected a non-negative int"):
        opt.load_state_dict(state)


@pytest.fixture()
def checkpoint_with_lr(tmp_path):
    """A training checkpoint rewritten with the optimizer's lr set to a value."""
    path = tmp_path / "trainer.safetensors"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (20, 4))
    trainer = Trainer(TinyLM(rng=1), optim.SGD(lr=0.05), rng=2, progress=False)
    trainer.fit(x, (x + 1) % 8, max_epoch=1, batch_size=10, checkpoint=path)

    def rewritten(lr):
        tensors, raw = load_tensors(path)
        meta = json.loads(raw["timelayers"])
        meta["training"]["optimizer"]["hyper"]["lr"] = lr
        out = tmp_path / "bad.safetensors"
        save_tensors(out, tensors, {"timelayers": json.dumps(meta)})
        return out

    return rewritten


@pytest.mark.parametrize("lr", [math.nan, -20.0, "fast"])
def test_a_checkpoint_with_a_bad_learning_rate_is_refused_naming_the_file(checkpoint_with_lr, lr):
    bad = checkpoint_with_lr(lr)
    with pytest.raises(CheckpointError, match="SGD: hyper-parameter 'lr'") as info:
        Trainer.resume(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    trainer = Trainer(TinyLM(rng=1), optim.SGD(lr=0.05), progress=False)
    with pytest.raises(CheckpointError, match="SGD: hyper-parameter 'lr'") as info:
        trainer.load_checkpoint(bad)
    assert str(bad) in str(info.value)
    assert trainer.optimizer.lr == 0.05 and trainer.epoch == 0


# -- trainers and clipping ----------------------------------------------------------------------------
def _fit(**kwargs):
    x = np.zeros((40, 5), dtype=np.int64)
    Trainer(TinyLM(rng=0), optim.SGD(1.0), progress=False).fit(x, x, **{"max_epoch": 1, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"Trainer.fit: argument 'batch_size' expected a positive int, got 0"),
    (dict(batch_size=2.5), r"argument 'batch_size' expected a positive int, got 2.5"),
    (dict(max_epoch=-1), r"argument 'max_epoch' expected a non-negative int, got -1"),
    (dict(eval_interval=-5), r"argument 'eval_interval'"),
    (dict(max_grad=-1.0), r"argument 'max_grad' expected a positive finite number, got -1.0"),
    (dict(max_grad=math.nan), r"argument 'max_grad' .* got nan"),
    (dict(check_interval=0), r"argument 'check_interval' expected a positive int, got 0"),
])
def test_bad_fit_arguments_are_refused_before_training(kwargs, match):
    refused(lambda: _fit(**kwargs), match)


def test_good_fit_arguments_are_taken():
    _fit(batch_size=8, eval_interval=None, max_grad=None, check_interval=None)
    _fit(batch_size=np.int64(8), eval_interval=0, max_grad=0.5, check_interval=2)


def test_rnnlm_trainer_checks_its_own_arguments():
    corpus = np.arange(200) % 7
    trainer = RnnlmTrainer(models.Rnnlm(7, 3, 3, rng=0), optim.SGD(1.0), progress=False)
    refused(lambda: trainer.fit(corpus[:-1], corpus[1:], time_size=0),
            r"RnnlmTrainer.fit: argument 'time_size' expected a positive int, got 0")
    refused(lambda: trainer.fit(corpus[:-1], corpus[1:], batch_size=-2),
            r"RnnlmTrainer.fit: argument 'batch_size'")
    assert trainer.iteration == 0


def test_a_negative_clipping_norm_is_refused_not_a_reversed_gradient():
    refused(lambda: Trainer(TinyLM(rng=0), optim.SGD(1.0), max_grad=-0.25),
            r"Trainer: argument 'max_grad' expected a positive finite number, got -0.25")
    grads = [np.ones(3)]
    refused(lambda: optim.clip_grads(grads, -1.0), r"clip_grads: argument 'max_norm'")
    np.testing.assert_array_equal(grads[0], np.ones(3))


# -- models ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: models.Rnnlm(0, 4, 4), r"Rnnlm: argument 'vocab_size' expected a positive int, got 0"),
    (lambda: models.Rnnlm(10, 2.5, 4), r"Rnnlm: argument 'wordvec_size' .* got 2.5"),
    (lambda: models.BetterRnnlm(10, 4, 4, num_layers=0), r"BetterRnnlm: argument 'num_layers'"),
    (lambda: models.BetterRnnlm(10, 4, 4, dropout_ratio=1.0),
     r"BetterRnnlm: argument 'dropout_ratio' expected a number in \[0, 1\), got 1.0"),
    (lambda: models.TwoLayerNet(2, 3, 0), r"TwoLayerNet: argument 'output_size'"),
    (lambda: models.Seq2seq(True, 4, 4), r"Seq2seq: argument 'vocab_size' .* got True"),
    (lambda: models.AttentionSeq2seq(10, 4, -4), r"AttentionSeq2seq: argument 'hidden_size'"),
    (lambda: models.SimpleCBOW(10, 4, 0), r"Word2vec: argument 'window_size'"),
    (lambda: models.CBOW(10, 4, 2, [1] * 10, sample_size=0),
     r"NegativeSampling: argument 'sample_size'"),
    (lambda: models.TransformerLM(10, d_model=8, num_heads=0), r"TransformerLM: argument 'num_heads'"),
    (lambda: models.TransformerSeq2seq(10, d_model=8, num_heads=2, dropout=-0.1),
     r"TransformerSeq2seq: argument 'dropout'"),
])
def test_bad_model_sizes_are_refused_before_anything_is_allocated(make, match):
    refused(make, match)


def test_numpy_integers_are_sizes_too():
    assert models.Rnnlm(np.int64(10), np.int32(4), 4, rng=0).embed.params[0].shape == (10, 4)


def test_rnnlm_trainer_reset_each_epoch_is_a_bool():
    refused(lambda: RnnlmTrainer(models.Rnnlm(7, 3, 3, rng=0), optim.SGD(1.0),
                                 reset_each_epoch="no"),
            r"RnnlmTrainer: argument 'reset_each_epoch' expected a bool, got 'no'")


@pytest.fixture()
def rnnlm_checkpoint(tmp_path):
    """A RnnlmTrainer checkpoint with a StepDecay schedule, and a way to rewrite it."""
    from timelayers.schedules import StepDecay

    path = tmp_path / "lm.safetensors"
    corpus = np.arange(200) % 7
    opt = optim.SGD(1.0)
    trainer = RnnlmTrainer(models.Rnnlm(7, 3, 3, rng=0), opt, schedule=StepDecay(opt, 1),
                           progress=False)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=2, time_size=5,
                checkpoint=path)

    def rewritten(edit):
        tensors, raw = load_tensors(path)
        meta = json.loads(raw["timelayers"])
        edit(meta["training"])
        out = tmp_path / "bad.safetensors"
        save_tensors(out, tensors, {"timelayers": json.dumps(meta)})
        return out

    return rewritten


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["trainer_config"].update(reset_each_epoch="no"),
     "trainer_config: argument 'reset_each_epoch' expected a bool, got 'no'"),
    (lambda t: t["trainer_config"].update(max_grad=-1),
     "trainer_config: argument 'max_grad' expected a positive finite number, got -1"),
    (lambda t: t["schedule"].pop("args"), "StepDecay schedule state cannot be restored"),
    (lambda t: t["schedule"].update(args=[1]), "StepDecay schedule: 'args' should be a JSON"),
])
def test_a_bad_trainer_config_or_schedule_is_refused_naming_the_file(rnnlm_checkpoint, edit,
                                                                     message):
    bad = rnnlm_checkpoint(edit)
    with pytest.raises(CheckpointError, match=message) as info:
        RnnlmTrainer.resume(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)

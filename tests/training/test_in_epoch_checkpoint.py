"""Checkpoints inside an epoch (fit's checkpoint_every, Ctrl-C) and short epochs
(max_iters, $TIMELAYERS_MAX_ITERS): a run stopped inside an epoch and resumed
gives the losses and parameters of an uninterrupted run, to the bit."""

import signal

import numpy as np
import pytest

from timelayers.errors import CheckpointError, OptionError
from timelayers.metrics import perplexity
from timelayers.models import BetterRnnlm
from timelayers.optim import Adam, Momentum
from timelayers.schedules import ReduceOnPlateau
from timelayers.serialization import load_tensors
from timelayers.training import RnnlmTrainer, Trainer
from timelayers.training.checkpoint import load_checkpoint
from support.tiny_models import TinyLM


class Stop(Exception):
    pass


def stop_at(epoch, iteration):
    def callback(trainer, event, info):
        if event == "iteration_end" and (info["epoch"], info["iteration"]) == (epoch, iteration):
            raise Stop
    return callback


def interrupt_at(epoch, iteration):
    def callback(trainer, event, info):
        if event == "iteration_end" and (info["epoch"], info["iteration"]) == (epoch, iteration):
            signal.raise_signal(signal.SIGINT)
    return callback


def data(n=40, T=4, V=9):
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (n, T))
    return x, (x + 1) % V


def new_trainer(callbacks=()):
    model = TinyLM(9, 6, dropout=0.3, rng=1)
    return Trainer(model, Adam(lr=0.05), max_grad=1.0, rng=5, progress=False,
                   callbacks=callbacks)


def same_params(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.params, b.params))


def test_max_iters_cuts_every_epoch():
    x, t = data()
    trainer = new_trainer()
    trainer.fit(x, t, max_epoch=2, batch_size=4, max_iters=3)
    assert trainer.history["iteration"] == [3, 6]


def test_max_iters_from_the_environment(monkeypatch):
    x, t = data()
    monkeypatch.setenv("TIMELAYERS_MAX_ITERS", "2")
    trainer = new_trainer()
    trainer.fit(x, t, max_epoch=2, batch_size=4)
    assert trainer.history["iteration"] == [2, 4]
    monkeypatch.setenv("TIMELAYERS_MAX_ITERS", "two")
    with pytest.raises(OptionError, match=r"\$TIMELAYERS_MAX_ITERS expected a positive int"):
        new_trainer().fit(x, t, max_epoch=1, batch_size=4)
    with pytest.raises(OptionError, match="'max_iters' expected a positive int, got 0"):
        new_trainer().fit(x, t, max_epoch=1, batch_size=4, max_iters=0)


def test_trainer_resumes_inside_an_epoch_bit_for_bit(tmp_path):
    x, t = data()
    full = new_trainer()
    full.fit(x, t, max_epoch=3, batch_size=4, eval_interval=3)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(Stop):
        new_trainer([stop_at(2, 6)]).fit(x, t, max_epoch=3, batch_size=4, eval_interval=3,
                                         checkpoint=path, checkpoint_every=4)
    resumed = Trainer.resume(path, progress=False)
    assert resumed.epoch == 1 and resumed.iteration == 14
    resumed.fit(x, t, max_epoch=3, batch_size=4, eval_interval=3)
    for key in ("loss", "iteration", "interval_loss", "interval_epoch", "lr"):
        assert resumed.history[key] == full.history[key], key
    assert same_params(resumed.model, full.model)


def test_the_resumed_fit_must_have_the_same_epoch(tmp_path):
    x, t = data()
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(Stop):
        new_trainer([stop_at(1, 3)]).fit(x, t, max_epoch=2, batch_size=4, checkpoint=path,
                                         checkpoint_every=2)
    with pytest.raises(OptionError, match="stopped at iteration 2 of an epoch of 10 iterations "
                                          "of batch_size=4; this fit's epoch has 5 iterations"):
        Trainer.resume(path, progress=False).fit(x, t, max_epoch=2, batch_size=8)


def test_ctrl_c_writes_a_checkpoint_and_resume_continues(tmp_path):
    x, t = data()
    full = new_trainer()
    full.fit(x, t, max_epoch=2, batch_size=4)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt, match="written at epoch 1, iteration 7 of 10"):
        new_trainer([interrupt_at(1, 7)]).fit(x, t, max_epoch=2, batch_size=4, checkpoint=path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = Trainer.resume(path, progress=False)
    resumed.fit(x, t, max_epoch=2, batch_size=4)
    assert resumed.history["loss"] == full.history["loss"]
    assert same_params(resumed.model, full.model)


def test_ctrl_c_without_a_checkpoint_stops_at_once():
    x, t = data()
    with pytest.raises(KeyboardInterrupt):
        new_trainer([interrupt_at(1, 2)]).fit(x, t, max_epoch=1, batch_size=4)


def lm_corpus():
    rng = np.random.default_rng(0)
    return rng.integers(0, 12, 400), rng.integers(0, 12, 61)


def new_lm_trainer(callbacks=()):
    model = BetterRnnlm(12, 6, 6, dropout_ratio=0.3, num_layers=2, dtype="float64", rng=3)
    opt = Momentum(lr=0.5)
    return RnnlmTrainer(model, opt, max_grad=0.25, progress=False, callbacks=callbacks,
                        schedule=ReduceOnPlateau(opt))


def test_rnnlm_trainer_resumes_inside_an_epoch_bit_for_bit(tmp_path):
    corpus, val = lm_corpus()

    def fit(trainer, **kwargs):
        trainer.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=3, time_size=5,
                    eval_interval=4, max_iters=20,
                    eval_fn=lambda m: {"val_perplexity": perplexity(m, val, 3, 5)}, **kwargs)
        return trainer

    full = fit(new_lm_trainer())
    path = tmp_path / "lm.safetensors"
    with pytest.raises(Stop):
        fit(new_lm_trainer([stop_at(2, 13)]), checkpoint=path, checkpoint_every=6)
    assert any(k.startswith("trainer_state.in_epoch.rnns.") for k in load_tensors(path)[0])
    resumed = fit(RnnlmTrainer.resume(path, progress=False))
    for key in ("loss", "val_perplexity", "interval_loss", "lr", "iteration"):
        assert resumed.history[key] == full.history[key], key
    assert resumed.time_idx == full.time_idx
    assert same_params(resumed.model, full.model)


def test_a_bad_epoch_progress_is_refused(tmp_path):
    x, t = data()
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(Stop):
        new_trainer([stop_at(1, 3)]).fit(x, t, max_epoch=1, batch_size=4, checkpoint=path,
                                         checkpoint_every=2)
    import json

    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = dict(f.metadata())
    record = json.loads(meta["timelayers"])
    record["training"]["epoch_progress"]["iterations"] = 10
    meta["timelayers"] = json.dumps(record)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata=meta)
    trainer = new_trainer()
    with pytest.raises(CheckpointError, match="epoch_progress 'iterations' \\(10\\) should be "
                                              "fewer than its 'max_iters' \\(10\\)"):
        load_checkpoint(trainer, bad)
    assert trainer.epoch == 0 and trainer._epoch_progress is None

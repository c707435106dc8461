"""Trainer and RnnlmTrainer: batching, ties, clipping, non-finite losses,
history, progress output, callbacks."""

import json
import logging
import math

import numpy as np
import pytest

from timelayers import numerical_gradient
from timelayers.errors import NonFiniteLossError
from timelayers.layers import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.models.base import Model
from timelayers.optim import SGD, Adam, global_norm
from timelayers.schedules import ReduceOnPlateau, StepDecay
from timelayers.training import RnnlmTrainer, SaveBest, Trainer, load_history
from timelayers.training.meters import FiniteCheck, RunningLoss, default_check_interval
from support.devices import DeviceArrayDouble, no_device_sync
from support.tiny_models import TinyLM


# -- tiny models (TinyLM: tests/support/tiny_models.py) ----------------------------------------------
class Recorder:
    """A duck-typed model that records the batches it is given."""

    def __init__(self):
        self.params, self.grads = [np.zeros(2)], [np.zeros(2)]
        self.seen, self.resets = [], 0

    def forward(self, x, t):
        self.seen.append((np.array(x), np.array(t)))
        return 1.0

    def backward(self, dout=1):
        self.grads[0][...] = 1.0

    def reset_state(self):
        self.resets += 1

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


def copy_data(rng, n=24, T=3, V=8):
    x = rng.integers(0, V, (n, T))
    return x, x.copy()  # learn the identity


# -- weight tying and parameter identity -------------------------------------------------------
class TiedLM(Model):
    def __init__(self, V=7, D=4, seed=0):
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((V, D))
        self.embed = TimeEmbedding(W)
        self.affine = TimeAffine(W.T, rng.standard_normal(V))  # the same memory, transposed
        self.loss_layer = TimeSoftmaxWithLoss()
        self.tie("affine.W", "embed.W", transpose=True)

    def forward(self, xs, ts):
        return self.loss_layer.forward(self.affine.forward(self.embed.forward(xs)), ts)

    def _backward(self, dout=1):
        self.embed.backward(self.affine.backward(self.loss_layer.backward(dout)))


def test_tied_weights_one_param_summed_gradient(rng):
    model = TiedLM()
    assert model.param_names == ["embed.W", "affine.b"]
    x = rng.integers(0, 7, (3, 4))
    t = rng.integers(0, 7, (3, 4))
    W = model.embed.params[0]
    W0 = W.copy()
    want = numerical_gradient(lambda: model.forward(x, t), W)  # both uses see the change
    model.forward(x, t)
    model.backward()
    np.testing.assert_allclose(model.grads[0], want, rtol=1e-6, atol=1e-8)

    trainer = Trainer(model, SGD(lr=0.5), rng=0, progress=False)
    trainer.fit(x, t, max_epoch=1, batch_size=3)  # one batch (a permutation of all rows)
    np.testing.assert_allclose(W, W0 - 0.5 * want, rtol=1e-6, atol=1e-8)
    assert np.shares_memory(model.affine.params[0], W)
    np.testing.assert_array_equal(model.affine.params[0], W.T)


class EqualValuedLM(Model):
    """Two distinct square weights that start equal (identity): the book's
    remove_duplicate would merge them (it compares W.T == W2 by value)."""

    def __init__(self, V=5, D=3, seed=0):
        rng = np.random.default_rng(seed)
        self.embed = TimeEmbedding(rng.standard_normal((V, D)))
        self.a1 = TimeAffine(np.eye(D), np.ones(D))
        self.a2 = TimeAffine(np.eye(D), np.zeros(D))
        self.out = TimeAffine(rng.standard_normal((D, V)), np.zeros(V))
        self.loss_layer = TimeSoftmaxWithLoss()

    def forward(self, xs, ts):
        h = self.a2.forward(self.a1.forward(self.embed.forward(xs)))
        return self.loss_layer.forward(self.out.forward(h), ts)

    def _backward(self, dout=1):
        d = self.a1.backward(self.a2.backward(self.out.backward(self.loss_layer.backward(dout))))
        self.embed.backward(d)


def test_equal_valued_params_stay_separate(rng):
    model = EqualValuedLM()
    assert len(model.params) == 7
    x, t = rng.integers(0, 5, (4, 3)), rng.integers(0, 5, (4, 3))
    model.forward(x, t)
    model.backward()
    g1, g2 = model.a1.grads[0].copy(), model.a2.grads[0].copy()
    assert not np.allclose(g1, g2)
    Trainer(model, SGD(lr=0.1), rng=0, progress=False).fit(x, t, max_epoch=1, batch_size=4)
    np.testing.assert_allclose(model.a1.params[0], np.eye(3) - 0.1 * g1, rtol=1e-10)
    np.testing.assert_allclose(model.a2.params[0], np.eye(3) - 0.1 * g2, rtol=1e-10)


# -- Trainer --------------------------------------------------------------------------------------
def test_trainer_batches_follow_the_rng():
    x = np.arange(10)[:, None] * np.ones((1, 2), dtype=int)
    t = x + 100
    model = Recorder()
    trainer = Trainer(model, SGD(), rng=7, progress=False)
    trainer.fit(x, t, max_epoch=2, batch_size=3, eval_interval=None)
    check = np.random.default_rng(7)
    seen = iter(model.seen)
    for _ in range(2):
        perm = check.permutation(10)
        for i in range(3):  # 10 // 3 batches, the remainder dropped
            bx, bt = next(seen)
            np.testing.assert_array_equal(bx, x[perm[i * 3:(i + 1) * 3]])
            np.testing.assert_array_equal(bt, bx + 100)
    assert next(seen, None) is None
    assert trainer.epoch == 2 and trainer.iteration == 6
    assert trainer.history["iteration"] == [3, 6]


def test_trainer_learns_and_records_history(rng):
    x, t = copy_data(rng)
    model = TinyLM()
    opt = Adam(lr=0.05)
    trainer = Trainer(model, opt, rng=0, progress=False, schedule=StepDecay(opt, 2, 0.5))
    calls = []

    def eval_fn(m):
        calls.append(m.training)
        return {"val_loss": 0.5, "val_accuracy": 0.25}

    h = trainer.fit(x, t, max_epoch=4, batch_size=8, eval_interval=1, eval_fn=eval_fn)
    assert h is trainer.history
    assert h["epoch"] == [1, 2, 3, 4]
    assert h["loss"][-1] < h["loss"][0]
    assert h["lr"] == [0.05, 0.05, 0.025, 0.025]
    assert opt.lr == 0.0125
    assert h["val_accuracy"] == [0.25] * 4 and h["skipped"] == [0] * 4
    assert len(h["interval_loss"]) == 12 and h["interval_epoch"][:3] == [1 / 3, 2 / 3, 1.0]
    assert all(s >= 0 for s in h["seconds"])
    assert "perplexity" not in h
    assert len(calls) == 4


def test_trainer_input_checks():
    trainer = Trainer(Recorder(), SGD(), progress=False)
    with pytest.raises(ValueError, match="x has 4 examples, t has 3"):
        trainer.fit(np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="fewer than batch_size"):
        trainer.fit(np.zeros((4, 2)), np.zeros((4, 2)), batch_size=5)


def test_max_epoch_counts_all_epochs():
    model = Recorder()
    trainer = Trainer(model, SGD(), rng=0, progress=False)
    x = np.zeros((4, 1))
    trainer.fit(x, x, max_epoch=2, batch_size=2)
    trainer.fit(x, x, max_epoch=3, batch_size=2)
    assert trainer.epoch == 3 and len(model.seen) == 6
    with pytest.warns(UserWarning, match="nothing to train"):
        trainer.fit(x, x, max_epoch=3, batch_size=2)
    assert len(model.seen) == 6


def test_gradients_are_clipped(rng):
    x, t = copy_data(rng)
    model = TinyLM()
    norms = []

    class Spy(SGD):
        def update(self, params, grads):
            norms.append(global_norm(grads))
            super().update(params, grads)

    trainer = Trainer(model, Spy(lr=0.1), max_grad=0.01, rng=0, progress=False)
    trainer.fit(x, t, max_epoch=1, batch_size=8)
    assert len(norms) == 3 and max(norms) <= 0.01 + 1e-9
    norms.clear()
    trainer.fit(x, t, max_epoch=2, batch_size=8, max_grad=1e-4)  # fit's max_grad wins
    assert max(norms) <= 1e-4 + 1e-9


def test_eval_fn_key_clash(rng):
    x, t = copy_data(rng)
    trainer = Trainer(TinyLM(), SGD(), progress=False)
    with pytest.raises(ValueError, match="val_loss"):
        trainer.fit(x, t, max_epoch=1, batch_size=8, eval_fn=lambda m: {"loss": 1.0})


def test_eval_fn_number_and_late_keys(rng):
    x, t = copy_data(rng)
    trainer = Trainer(TinyLM(), SGD(), progress=False)
    results = iter([0.5, {"eval": 0.4, "extra": 1.0}, None])
    trainer.fit(x, t, max_epoch=3, batch_size=8, eval_fn=lambda m: next(results))
    assert trainer.history["eval"] == [0.5, 0.4, None]
    assert trainer.history["extra"] == [None, 1.0, None]


# -- non-finite losses ------------------------------------------------------------------------
def test_nonfinite_loss_stops_before_update(rng):
    x, t = copy_data(rng)
    model = TinyLM()
    model.nan_at = (5,)  # epoch 2, iteration 2 with 3 batches per epoch
    snapshots = []

    class Spy(SGD):
        def update(self, params, grads):
            super().update(params, grads)
            snapshots.append([p.copy() for p in params])

    trainer = Trainer(model, Spy(lr=0.1), rng=0, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, iteration 2 \(of 3\)"):
        trainer.fit(x, t, max_epoch=3, batch_size=8)
    assert len(snapshots) == 4
    for p, s in zip(model.params, snapshots[-1]):
        np.testing.assert_array_equal(p, s)
    assert trainer.epoch == 1 and trainer.history["epoch"] == [1]
    assert isinstance(NonFiniteLossError("x"), FloatingPointError)


def test_nonfinite_loss_skipped_when_asked(rng):
    x, t = copy_data(rng)
    model = TinyLM()
    model.nan_at = (2, 3, 7)
    trainer = Trainer(model, SGD(lr=0.1), rng=0, progress=False)
    h = trainer.fit(x, t, max_epoch=3, batch_size=8, skip_nonfinite=True)
    assert h["skipped"] == [2, 0, 1]
    assert all(math.isfinite(v) for v in h["loss"])
    assert all(np.isfinite(p).all() for p in model.params)


def test_nonfinite_gradient_norm(rng):
    x, t = copy_data(rng)
    model = TinyLM()
    model.embed.params[0][...] = np.inf  # finite loss impossible -> the loss catches it
    with pytest.raises(NonFiniteLossError, match="epoch 1, iteration 1"), \
            np.errstate(invalid="ignore"):
        Trainer(model, SGD(), progress=False).fit(x, t, max_epoch=1, batch_size=8)

    class HugeGrad(Recorder):
        def backward(self, dout=1):
            self.grads[0][...] = np.inf

    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        Trainer(HugeGrad(), SGD(), max_grad=1.0, progress=False).fit(x, t, batch_size=8)


class DeviceLossLM(TinyLM):
    """:class:`TinyLM` whose loss poses as a device array: every read of it (or of
    a sum made from it) on the host is noted with the number of forwards so far."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def forward(self, xs, ts):
        loss = super().forward(xs, ts)
        return DeviceArrayDouble(loss, on_read=lambda: self.reads.append(self.calls))


def test_losses_are_read_only_at_intervals_and_epoch_ends(rng):
    x, t = copy_data(rng, n=80)  # 10 batches of 8 per epoch
    model = DeviceLossLM()
    trainer = Trainer(model, SGD(lr=0.1), max_grad=1.0, rng=0, progress=False)
    trainer.fit(x, t, max_epoch=2, batch_size=8, eval_interval=5, check_interval=5)
    assert set(model.reads) == {5, 10, 15, 20}
    plain = Trainer(TinyLM(), SGD(lr=0.1), max_grad=1.0, rng=0, progress=False)
    plain.fit(x, t, max_epoch=2, batch_size=8, eval_interval=5)
    for key in ("loss", "interval_loss", "interval_epoch"):
        assert trainer.history[key] == plain.history[key], key


def test_running_loss_reads_only_when_asked():
    reads = []
    meter = RunningLoss(np)
    for value in (1.5, 2.0, 4.0):
        meter.add(DeviceArrayDouble(np.float32(value), on_read=lambda: reads.append(1)))
    assert reads == [] and meter.count == 3
    assert meter.mean() == 2.5 and reads == [1]
    meter.reset()
    assert math.isnan(meter.mean())


def test_default_check_interval():
    assert default_check_interval(on_host=True, eval_interval=20, skip_nonfinite=False) == 1
    assert default_check_interval(on_host=False, eval_interval=20, skip_nonfinite=False) == 20
    assert default_check_interval(on_host=False, eval_interval=None, skip_nonfinite=False) is None
    assert default_check_interval(on_host=False, eval_interval=20, skip_nonfinite=True) == 1


def test_nonfinite_loss_found_at_the_check_interval_says_so(rng):
    x, t = copy_data(rng, n=80)
    model = TinyLM()
    model.nan_at = (7,)
    trainer = Trainer(model, SGD(lr=0.1), rng=0, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, in iterations 6\.\.10 \(of 10\); "
                                                 r"it was found late.*check_interval=1 stops"):
        trainer.fit(x, t, max_epoch=1, batch_size=8, eval_interval=5, check_interval=5)
    model.calls, model.nan_at = 0, (7,)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, iteration 7 \(of 10\)"):
        trainer.fit(x, t, max_epoch=1, batch_size=8, check_interval=1)


def test_check_interval_argument(rng):
    x, t = copy_data(rng)
    trainer = Trainer(TinyLM(), SGD(), progress=False)
    with pytest.raises(ValueError, match="'check_interval' expected a positive int, got 0"):
        trainer.fit(x, t, max_epoch=1, batch_size=8, check_interval=0)
    with pytest.raises(ValueError, match="skip_nonfinite=True needs check_interval=1"):
        trainer.fit(x, t, max_epoch=1, batch_size=8, check_interval=2, skip_nonfinite=True)


class Quadratic:
    """A duck-typed model on any array module: loss ``sum((W - mean of x)^2)``, a 0-d array."""

    def __init__(self, xp):
        self.params, self.grads = [xp.ones(3)], [xp.zeros(3)]

    def forward(self, x, t):
        self.diff = self.params[0] - x.mean(axis=0)
        return (self.diff ** 2).sum()

    def backward(self, dout=1):
        self.grads[0][...] = 2 * self.diff


def test_train_steps_between_checks_do_not_wait_for_the_device(xp):
    """On CuPy under ``cupyx.allow_synchronize(False)``: forward, clip, update and
    the non-finite sums make no host read until a check is due."""
    model = Quadratic(xp)
    trainer = Trainer(model, SGD(lr=0.1), progress=False)
    check = FiniteCheck(xp, 3)
    x = xp.asarray(np.arange(12.0).reshape(4, 3))
    with no_device_sync(xp):
        for _ in range(2):
            loss, problem = trainer.train_step(x, None, max_grad=0.5, check=check)
            assert problem is None
    assert check.losses.count == 2 and check.norms.count == 2
    assert check.check_losses() is None and check.check_norms() is None
    assert 1.0 < float(model.params[0][0]) < 4.5  # two steps towards the mean of x


# -- RnnlmTrainer -----------------------------------------------------------------------------
def test_rnnlm_batches_are_parallel_streams():
    corpus = np.arange(23)
    xs, ts = corpus[:-1], corpus[1:]  # 22 tokens
    model = Recorder()
    trainer = RnnlmTrainer(model, SGD(), progress=False)
    trainer.fit(xs, ts, max_epoch=2, batch_size=3, time_size=2, eval_interval=None)
    jump = 22 // 3  # 7; 22 // (3 * 2) = 3 iterations per epoch
    assert len(model.seen) == 6
    for k, (bx, bt) in enumerate(model.seen):
        want = (np.arange(3)[:, None] * jump + k * 2 + np.arange(2)) % 22
        np.testing.assert_array_equal(bx, xs[want])
        np.testing.assert_array_equal(bt, ts[want])
    assert model.seen[5][0][2].tolist() == [xs[(14 + 10) % 22], xs[(14 + 11) % 22]]  # wraps
    assert trainer.time_idx == 12
    assert model.resets == 1  # only at the start (the state carries across epochs)
    assert "perplexity" in trainer.history


def test_rnnlm_perplexity_history(rng):
    corpus = rng.integers(0, 8, 200)
    trainer = RnnlmTrainer(TinyLM(stateful=True), SGD(lr=0.5), progress=False)
    h = trainer.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=4, time_size=5)
    assert list(h)[:7] == ["epoch", "iteration", "loss", "perplexity", "lr", "seconds",
                           "skipped"]
    for loss, ppl in zip(h["loss"], h["perplexity"]):
        assert ppl == pytest.approx(math.exp(loss))
    with pytest.raises(ValueError, match="shorter than"):
        trainer.fit(corpus[:10], corpus[1:11], max_epoch=3, batch_size=4, time_size=5)
    with pytest.raises(ValueError, match="same shape"):
        trainer.fit(corpus[:-1], corpus[2:], max_epoch=3)


def test_rnnlm_state_carries_across_epochs_despite_eval(rng):
    corpus = rng.integers(0, 8, 200)
    model = TinyLM(stateful=True)
    leaky = model.layers[0]
    starts = []

    def on_event(trainer, event, info):
        if event == "epoch_start":
            starts.append(None if leaky.h is None else leaky.h.copy())
        if event == "epoch_end":
            ends.append(trainer.carried_state["layers.0.h"].copy())

    def eval_fn(m):
        m.reset_state()
        m.forward(np.zeros((4, 5), dtype=int), np.zeros((4, 5), dtype=int))  # clobbers h
        return {"val": 1.0}

    ends = []
    trainer = RnnlmTrainer(model, SGD(lr=0.1), callbacks=[on_event], progress=False)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=4, time_size=5, eval_fn=eval_fn)
    assert starts[0] is None
    np.testing.assert_array_equal(starts[1], ends[0])
    np.testing.assert_array_equal(starts[2], ends[1])

    starts.clear()
    model2 = TinyLM(stateful=True)
    leaky = model2.layers[0]
    RnnlmTrainer(model2, SGD(lr=0.1), callbacks=[on_event], progress=False,
                 reset_each_epoch=True).fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=4,
                                            time_size=5)
    assert starts == [None, None]


def test_model_recurrent_state():
    model = TinyLM(stateful=True)
    assert model.get_state() == {}
    model.forward(np.zeros((2, 3), dtype=int), np.zeros((2, 3), dtype=int))
    state = model.get_state()
    assert list(state) == ["layers.0.h"] and state["layers.0.h"].shape == (2, 5)
    assert state["layers.0.h"] is not model.layers[0].h
    model.reset_state()
    model.set_state(state)
    np.testing.assert_array_equal(model.layers[0].h, state["layers.0.h"])
    assert model.layers[0].h is not state["layers.0.h"]
    model.set_state({})
    assert model.layers[0].h is None
    with pytest.raises(KeyError, match=r"no stateful layer for \['lstm.h'\]"):
        model.set_state({"lstm.h": state["layers.0.h"]})


def test_rnnlm_skip_resets_state(rng):
    corpus = rng.integers(0, 8, 200)
    model = TinyLM(stateful=True)
    model.nan_at = (3,)
    resets = []
    model.layers[0].reset_state = lambda: (resets.append(1), setattr(model.layers[0], "h", None))
    trainer = RnnlmTrainer(model, SGD(lr=0.1), progress=False)
    h = trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=4, time_size=5,
                    skip_nonfinite=True)
    assert h["skipped"] == [1] and len(resets) == 2


# -- progress, callbacks, history files -------------------------------------------------------
def test_progress_false_is_silent(rng, capsys, caplog):
    x, t = copy_data(rng)
    with caplog.at_level(logging.DEBUG, logger="timelayers"):
        Trainer(TinyLM(), SGD(), progress=False).fit(x, t, max_epoch=2, batch_size=8,
                                                      eval_interval=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert caplog.records == []


def test_log_lines_when_not_a_terminal(rng, capsys, caplog):
    x, t = copy_data(rng)
    with caplog.at_level(logging.INFO, logger="timelayers"):
        Trainer(TinyLM(), SGD(), progress=True).fit(x, t, max_epoch=2, batch_size=8,
                                                     eval_interval=2)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("| epoch 1 | iter 2 / 3") for m in messages)
    assert any(m.startswith("epoch 2/2: loss") for m in messages)
    assert capsys.readouterr().out == ""


def test_tqdm_bar_on_stderr(rng, capsys):
    x, t = copy_data(rng)
    Trainer(TinyLM(), SGD(), progress="tqdm").fit(x, t, max_epoch=2, batch_size=8)
    out = capsys.readouterr()
    assert out.out == ""
    assert "epoch 1/2" in out.err and "epoch 2/2" in out.err and "loss" in out.err


def test_callbacks_events_and_stop(rng):
    x, t = copy_data(rng)
    events = []

    def callback(trainer, event, info):
        events.append((event, info.get("epoch")))
        if event == "epoch_end" and info["epoch"] == 2:
            trainer.stop_training = True

    trainer = Trainer(TinyLM(), SGD(), callbacks=[callback], progress=False)
    trainer.fit(x, t, max_epoch=5, batch_size=12)
    assert events == [("fit_start", 0), ("epoch_start", 1), ("iteration_end", 1),
                      ("iteration_end", 1), ("epoch_end", 1), ("epoch_start", 2),
                      ("iteration_end", 2), ("iteration_end", 2), ("epoch_end", 2),
                      ("fit_end", 2)]
    assert trainer.epoch == 2


def test_save_best(tmp_path, rng):
    x, t = copy_data(rng)
    path = tmp_path / "best.safetensors"
    values = iter([3.0, 2.0, 2.5, 1.0])
    saved = []

    def spy(trainer, event, info):
        if event == "epoch_end":
            saved.append(path.stat().st_mtime_ns if path.exists() else None)
            path.exists() and path.unlink()

    trainer = Trainer(TinyLM(), SGD(), progress=False,
                      callbacks=[SaveBest(path, monitor="val_perplexity"), spy])
    trainer.fit(x, t, max_epoch=4, batch_size=8,
                eval_fn=lambda m: {"val_perplexity": next(values)})
    assert [s is not None for s in saved] == [True, True, False, True]


def test_history_json_round_trip(tmp_path, rng):
    x, t = copy_data(rng)
    trainer = Trainer(TinyLM(), SGD(), progress=False)
    trainer.fit(x, t, max_epoch=2, batch_size=8, eval_fn=lambda m: {"val_perplexity": math.inf})
    path = tmp_path / "h" / "history.json"
    trainer.save_history(path)
    raw = json.loads(path.read_text())  # strict JSON: no NaN / Infinity tokens
    assert raw["val_perplexity"] == [None, None]
    assert raw["loss"] == trainer.history["loss"]
    back = load_history(path)
    assert math.isnan(back["val_perplexity"][0]) and back["epoch"] == [1, 2]


def test_reduce_on_plateau_through_fit(rng):
    x, t = copy_data(rng)
    opt = SGD(lr=1.0)
    values = iter([100.0, 90.0, 95.0, 80.0])
    trainer = Trainer(TinyLM(), opt, schedule=ReduceOnPlateau(opt), progress=False)
    h = trainer.fit(x, t, max_epoch=4, batch_size=8,
                    eval_fn=lambda m: {"val_perplexity": next(values)})
    assert h["lr"] == [1.0, 1.0, 1.0, 0.25] and opt.lr == 0.25


def test_rnnlm_new_batch_size_starts_from_reset_state(rng):
    corpus = rng.integers(0, 8, 200)
    model = TinyLM(stateful=True)
    trainer = RnnlmTrainer(model, SGD(lr=0.1), progress=False)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=4, time_size=5)
    assert trainer.carried_state["layers.0.h"].shape == (4, 5)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=3, time_size=5)  # no crash
    assert trainer.carried_state["layers.0.h"].shape == (3, 5)

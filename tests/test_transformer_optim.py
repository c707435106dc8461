"""AdamW (against torch.optim.AdamW and its own formula) and the WarmupCosine
schedule (its values, its state, and per-iteration stepping in a trainer)."""

import math

import numpy as np
import pytest

from timelayers.models import TwoLayerNet
from timelayers.optim import Adam, AdamW, optimizer_from_state
from timelayers.schedules import WarmupCosine, schedule_from_state, step_each_iteration
from timelayers.training import Trainer

SHAPES = [(4, 3), (6,)]


def _steps(rng, n):
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(n)]
    return init, grads


@pytest.mark.parametrize("lr,betas,wd", [(0.01, (0.9, 0.999), 0.01), (0.1, (0.5, 0.9), 0.3)])
def test_adamw_matches_torch(rng, lr, betas, wd):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    init, grads_seq = _steps(rng, 8)
    ours = [p.copy() for p in init]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    opt = AdamW(lr=lr, beta1=betas[0], beta2=betas[1], eps=0.0, weight_decay=wd)
    topt = torch.optim.AdamW(theirs, lr=lr, betas=betas, eps=0.0, weight_decay=wd)
    for k, grads in enumerate(grads_seq):
        opt.lr = topt.param_groups[0]["lr"] = lr / (1 + k)  # the decay follows a changing lr
        opt.update(ours, [g.copy() for g in grads])
        for tp, g in zip(theirs, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for a, tp in zip(ours, theirs):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_adamw_default_eps_is_torch_with_scaled_eps(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    init = [rng.standard_normal(s) * 1e-3 for s in SHAPES]
    ours = [p.copy() for p in init]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    opt = AdamW(lr=0.01, weight_decay=0.1)
    topt = torch.optim.AdamW(theirs, lr=0.01, weight_decay=0.1)
    for t in range(1, 7):
        grads = [rng.standard_normal(s) * 1e-6 for s in SHAPES]  # small: eps matters
        opt.update(ours, [g.copy() for g in grads])
        topt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - 0.999 ** t)
        for tp, g in zip(theirs, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for a, tp in zip(ours, theirs):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-11, atol=1e-15)


def test_adamw_formula_and_zero_decay_is_adam(rng):
    init, grads_seq = _steps(rng, 3)
    a, b = [p.copy() for p in init], [p.copy() for p in init]
    adamw, adam = AdamW(lr=0.05, weight_decay=0.0), Adam(lr=0.05)
    for grads in grads_seq:
        adamw.update(a, [g.copy() for g in grads])
        adam.update(b, [g.copy() for g in grads])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # one step from zero moments: p (1 - lr wd) - lr_1 g / (|g| + eps), lr_1 = lr sqrt(1-b2)/(1-b1)
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    want = p * (1 - 0.05 * 0.2) - 0.05 * math.sqrt(1 - 0.999) / (1 - 0.9) * (
        0.1 * g / (np.sqrt(0.001 * g * g) + 1e-7))
    AdamW(lr=0.05, weight_decay=0.2).update([p], [g])
    np.testing.assert_allclose(p, want, rtol=1e-12)


def test_adamw_state_dict_resumes_to_the_bit(rng):
    init, grads_seq = _steps(rng, 6)
    straight = [p.copy() for p in init]
    opt = AdamW(lr=0.02, weight_decay=0.05)
    for grads in grads_seq:
        opt.update(straight, [g.copy() for g in grads])
    resumed = [p.copy() for p in init]
    first = AdamW(lr=0.02, weight_decay=0.05)
    for grads in grads_seq[:3]:
        first.update(resumed, [g.copy() for g in grads])
    state = first.state_dict()
    assert state["type"] == "AdamW" and state["hyper"]["weight_decay"] == 0.05
    second = optimizer_from_state({**state, "arrays": {k: v.copy() for k, v in
                                                       state["arrays"].items()}})
    assert isinstance(second, AdamW) and second.iter == 3 and second.weight_decay == 0.05
    for grads in grads_seq[3:]:
        second.update(resumed, [g.copy() for g in grads])
    for x, y in zip(straight, resumed):
        np.testing.assert_array_equal(x, y)


# -- WarmupCosine --------------------------------------------------------------------------
class LR:
    def __init__(self, lr):
        self.lr = lr


def test_warmup_cosine_values():
    opt = LR(0.5)
    sched = WarmupCosine(opt, warmup_steps=4, total_steps=12, min_lr=0.05)
    assert sched.peak_lr == 0.5
    lrs = [opt.lr]
    for _ in range(14):
        lrs.append(sched.step())
    assert lrs[:4] == pytest.approx([0.125, 0.25, 0.375, 0.5])  # steps 1..4
    assert lrs[4] == pytest.approx(0.05 + 0.45 * 0.5 * (1 + math.cos(math.pi / 8)))
    assert lrs[7] == pytest.approx(0.05 + 0.45 * 0.5)  # half-way through the decay
    assert lrs[11] == pytest.approx(0.05) and lrs[12:] == [0.05] * 3  # step 12 onwards
    assert all(x >= y for x, y in zip(lrs[3:], lrs[4:]))


def test_warmup_cosine_without_warmup_starts_at_the_peak():
    opt = LR(1.0)
    sched = WarmupCosine(opt, warmup_steps=0, total_steps=2)
    assert opt.lr == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    assert sched.step() == pytest.approx(0.0)


def test_warmup_cosine_state_round_trip():
    opt = LR(0.3)
    sched = WarmupCosine(opt, 3, 10, min_lr=0.01)
    for _ in range(5):
        sched.step()
    other = LR(123.0)  # e.g. an optimizer rebuilt from a checkpoint
    rebuilt = schedule_from_state(sched.state_dict(), other)
    assert rebuilt.steps == 5 and rebuilt.peak_lr == 0.3 and other.lr == opt.lr
    assert rebuilt.step() == sched.step()


def test_warmup_cosine_argument_errors():
    with pytest.raises(ValueError, match="warmup_steps.*total_steps.*5 and 3"):
        WarmupCosine(LR(1.0), 5, 3)
    with pytest.raises(ValueError, match="per.*'batch'"):
        WarmupCosine(LR(1.0), 1, 3, per="batch")


def _spiral_like(rng):
    x = rng.standard_normal((64, 2)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64)
    return x, t


@pytest.mark.parametrize("per", ["epoch", "iteration"])
def test_warmup_cosine_in_a_trainer(rng, per, tmp_path):
    x, t = _spiral_like(rng)
    opt = AdamW(lr=0.1)
    sched = WarmupCosine(opt, warmup_steps=3, total_steps=16, per=per)
    trainer = Trainer(TwoLayerNet(2, 8, 2, rng=0), opt, rng=0, schedule=sched,
                      callbacks=[step_each_iteration], progress=False)
    trainer.fit(x, t, max_epoch=2, batch_size=16, checkpoint=tmp_path / "ckpt.safetensors")
    steps = trainer.iteration if per == "iteration" else trainer.epoch  # 8 or 2
    assert sched.steps == steps
    per_epoch = 4 if per == "iteration" else 1
    assert trainer.history["lr"] == pytest.approx([sched.lr_at(1), sched.lr_at(1 + per_epoch)])
    assert opt.lr == pytest.approx(sched.lr_at(steps + 1))
    resumed = Trainer.resume(tmp_path / "ckpt.safetensors", callbacks=[step_each_iteration],
                             progress=False)
    assert resumed.schedule.steps == steps and resumed.optimizer.lr == opt.lr
    resumed.fit(x, t, max_epoch=3, batch_size=16)
    trainer.fit(x, t, max_epoch=3, batch_size=16)
    assert resumed.history["loss"] == trainer.history["loss"]
    assert resumed.optimizer.lr == opt.lr

"""Optimizers (against their formulas), clip_grads, schedules."""

import math
import tracemalloc

import numpy as np
import pytest

from timelayers.errors import CheckpointError
from timelayers.optim import (OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop,
                              clip_grads, global_norm, optimizer_from_state)
from timelayers.schedules import ReduceOnPlateau, StepDecay, schedule_from_state
from timelayers.backend import to_cpu
from support.devices import DeviceArrayDouble, no_device_sync

SHAPES = [(3, 4), (5,), (2, 3, 2)]


def make_params(rng, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def grad_sequence(rng, steps, dtype=np.float64):
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


# -- reference rules, written out plainly (new arrays every step) ---------------------
def ref_sgd(p, gs, lr):
    for g in gs:
        p = p - lr * g
    return p


def ref_momentum(p, gs, lr, mu):
    v = np.zeros_like(p)
    for g in gs:
        v = mu * v - lr * g
        p = p + v
    return p


def ref_nesterov(p, gs, lr, mu):
    v = np.zeros_like(p)
    for g in gs:
        p = p + mu * mu * v - (1 + mu) * lr * g
        v = mu * v - lr * g
    return p


def ref_adagrad(p, gs, lr, eps=1e-7):
    h = np.zeros_like(p)
    for g in gs:
        h = h + g * g
        p = p - lr * g / (np.sqrt(h) + eps)
    return p


def ref_rmsprop(p, gs, lr, rho, eps=1e-7):
    h = np.zeros_like(p)
    for g in gs:
        h = rho * h + (1 - rho) * g * g
        p = p - lr * g / (np.sqrt(h) + eps)
    return p


def ref_adam(p, gs, lr, b1, b2, eps=1e-7):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


CASES = [
    (lambda: SGD(lr=0.1), lambda p, gs: ref_sgd(p, gs, 0.1)),
    (lambda: Momentum(lr=0.05, momentum=0.8), lambda p, gs: ref_momentum(p, gs, 0.05, 0.8)),
    (lambda: Nesterov(lr=0.05, momentum=0.7), lambda p, gs: ref_nesterov(p, gs, 0.05, 0.7)),
    (lambda: AdaGrad(lr=0.3), lambda p, gs: ref_adagrad(p, gs, 0.3)),
    (lambda: RMSprop(lr=0.01, decay_rate=0.9), lambda p, gs: ref_rmsprop(p, gs, 0.01, 0.9)),
    (lambda: Adam(lr=0.02, beta1=0.8, beta2=0.95),
     lambda p, gs: ref_adam(p, gs, 0.02, 0.8, 0.95)),
]
IDS = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]


@pytest.mark.parametrize("make, ref", CASES, ids=IDS)
def test_rule_matches_formula(rng, make, ref):
    params = make_params(rng)
    start = [p.copy() for p in params]
    seq = grad_sequence(rng, 6)
    opt = make()
    ids = [id(p) for p in params]
    for grads in seq:
        opt.update(params, grads)
    assert [id(p) for p in params] == ids
    for i, p in enumerate(params):
        want = ref(start[i], [g[i] for g in seq])
        np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-14)
    assert opt.iter == 6


@pytest.mark.parametrize("make, ref", CASES, ids=IDS)
def test_float32_stays_float32(rng, make, ref):
    params = make_params(rng, np.float32)
    start = [p.astype(np.float64) for p in params]
    seq = grad_sequence(rng, 3, np.float32)
    opt = make()
    for grads in seq:
        opt.update(params, grads)
    for i, p in enumerate(params):
        assert p.dtype == np.float32
        want = ref(start[i], [g[i].astype(np.float64) for g in seq])
        np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-5)
    for arrays in opt.state_dict()["arrays"].values():
        assert arrays.dtype == np.float32


def test_book_nesterov_listing_differs():
    """The book's listing (mu^2 on the updated velocity) is not the rule we use:
    after one step from v = 0 it moves by -(1 + mu + mu^2) lr g, ours by
    -(1 + mu) lr g (PyTorch's nesterov=True)."""
    p, g = np.zeros(1), np.ones(1)
    Nesterov(lr=0.1, momentum=0.5).update([p], [g])
    assert p[0] == pytest.approx(-(1 + 0.5) * 0.1)


@pytest.mark.parametrize("make", [c[0] for c in CASES], ids=IDS)
def test_no_allocations_per_step(rng, make):
    big = [np.zeros((500, 200)), np.zeros(300)]  # 800 kB param
    grads = [rng.standard_normal(p.shape) for p in big]
    opt = make()
    opt.update(big, grads)  # state and scratch allocated here
    state_ids = [id(a) for a in opt.state_dict()["arrays"].values()]
    tracemalloc.start()
    try:
        for _ in range(3):
            opt.update(big, grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000, f"{type(opt).__name__} allocated {peak} bytes in 3 steps"
    assert [id(a) for a in opt.state_dict()["arrays"].values()] == state_ids


def test_scratch_shared_between_same_shapes():
    params = [np.zeros((4, 4)), np.zeros((4, 4)), np.zeros(4)]
    opt = Adam()
    opt.update(params, [np.ones_like(p) for p in params])
    assert len(opt._scratch) == 2


@pytest.mark.parametrize("make", [c[0] for c in CASES], ids=IDS)
def test_state_dict_round_trip_is_exact(rng, make):
    params = make_params(rng)
    seq = grad_sequence(rng, 7)
    a = make()
    for grads in seq[:4]:
        a.update(params, grads)
    state = a.state_dict()
    copy = [p.copy() for p in params]
    b = optimizer_from_state({"type": state["type"], "hyper": dict(state["hyper"]),
                              "arrays": {k: v.copy() for k, v in state["arrays"].items()}})
    assert type(b) is type(a) and b.iter == 4
    for grads in seq[4:]:
        a.update(params, grads)
        b.update(copy, grads)
    for p, q in zip(params, copy):
        assert np.array_equal(p, q)


def test_state_dict_json_scalars():
    opt = Adam(lr=0.003)
    hyper = opt.state_dict()["hyper"]
    assert hyper == {"lr": 0.003, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "iter": 0}
    assert opt.state_dict()["arrays"] == {}
    assert set(OPTIMIZERS) >= {"SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"}


def test_load_state_dict_checks(rng):
    params = make_params(rng)
    opt = Momentum()
    opt.update(params, [np.ones_like(p) for p in params])
    state = opt.state_dict()
    with pytest.raises(CheckpointError, match="Adam"):
        Momentum().load_state_dict({**state, "type": "Adam"})
    bad = {**state, "arrays": {**state["arrays"], "v.1": np.zeros(6)}}
    with pytest.raises(CheckpointError, match="'v.1' has shape"):
        Momentum().load_state_dict(bad, params=params)
    with pytest.raises(CheckpointError, match="numbered"):
        Momentum().load_state_dict({**state, "arrays": {"v.0": state["arrays"]["v.0"],
                                                        "v.2": state["arrays"]["v.2"]}})
    with pytest.raises(CheckpointError, match="holds 3 params"):
        Momentum().load_state_dict(state, params=params[:2])
    with pytest.raises(CheckpointError, match="lacks"):
        Momentum().load_state_dict({"type": "Momentum", "hyper": {"lr": 1.0}, "arrays": {}})
    with pytest.raises(CheckpointError, match="dtype"):
        Momentum().load_state_dict(state, params=[p.astype(np.float32) for p in params])


def test_update_checks(rng):
    params = make_params(rng)
    opt = Adam()
    with pytest.raises(ValueError, match="3 params and 2 grads"):
        opt.update(params, params[:2])
    opt.update(params, [np.ones_like(p) for p in params])
    with pytest.raises(ValueError, match="state holds 3 params"):
        opt.update(params[:2], params[:2])
    with pytest.raises(ValueError, match="grad 0 has shape"):
        opt.update(params, [np.ones(2)] + params[1:])


def test_lr_is_mutable():
    p = np.zeros(2)
    opt = SGD(lr=1.0)
    opt.update([p], [np.ones(2)])
    opt.lr = 0.5
    opt.update([p], [np.ones(2)])
    np.testing.assert_array_equal(p, [-1.5, -1.5])


# -- clip_grads -------------------------------------------------------------------------
def test_clip_grads_scales_to_max_norm():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    ids = [id(g) for g in grads]
    norm = clip_grads(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert [id(g) for g in grads] == ids
    rate = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(grads[0], [3 * rate, 0.0], rtol=1e-15)
    np.testing.assert_allclose(grads[1], [[4 * rate]], rtol=1e-15)
    assert global_norm(grads) == pytest.approx(1.0, abs=1e-6)


def test_clip_grads_leaves_small_grads():
    grads = [np.array([0.3, 0.4])]
    assert clip_grads(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads[0], [0.3, 0.4])


def test_clip_grads_nonfinite_untouched():
    grads = [np.array([np.inf, 1.0])]
    assert math.isinf(clip_grads(grads, 1.0))
    np.testing.assert_array_equal(grads[0], [np.inf, 1.0])


def test_clip_grads_float32_non_contiguous(rng):
    g = rng.standard_normal((6, 4)).astype(np.float32)
    view = g[:, ::2]
    before = float(np.sqrt((view.astype(np.float64) ** 2).sum()))
    assert clip_grads([view], 0.5) == pytest.approx(before, rel=1e-6)
    assert global_norm([view]) == pytest.approx(0.5, rel=1e-5)
    assert g.dtype == np.float32


def clip_on_the_host(grads, max_norm):
    """The formula clip_grads had before it moved to the device: one float per
    array summed on the host, a Python branch on the rate."""
    total = 0.0
    for g in grads:
        total += float(np.vdot(g.reshape(-1), g.reshape(-1)))
    norm = math.sqrt(total)
    if math.isfinite(norm) and max_norm / (norm + 1e-6) < 1:
        for g in grads:
            g *= max_norm / (norm + 1e-6)
    return norm


@pytest.mark.parametrize("max_norm", [0.3, 1e6])
def test_clip_grads_equals_the_host_formula_to_the_bit(rng, max_norm):
    dtypes = [np.float32, np.float64, np.float32, np.float32]
    shapes = [(40, 30), (30,), (7, 5, 3), (300, 300)]  # the last one goes by blocks
    grads = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
    want = [g.copy() for g in grads]
    want_norm = clip_on_the_host(want, max_norm)
    assert float(clip_grads(grads, max_norm)) == want_norm
    for g, w in zip(grads, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_clip_grads_reads_nothing_to_the_host(rng):
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((6, 4), (4,))]
    on_device = [DeviceArrayDouble(g.copy()) for g in grads]
    norm = clip_grads(on_device, 0.5)  # any host read raises HostReadError
    want = clip_grads(grads, 0.5)
    assert isinstance(norm, DeviceArrayDouble) and norm.array == want
    for d, g in zip(on_device, grads):
        np.testing.assert_array_equal(d.array, g)


def test_clip_grads_on_the_array_module(xp, rng):
    """On CuPy under ``cupyx.allow_synchronize(False)``: clipping never waits for the GPU."""
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((50, 20), (20,))]
    on_xp = [xp.array(g) for g in grads]  # copies
    want = clip_on_the_host(grads, 0.5)
    with no_device_sync(xp):
        norm = clip_grads(on_xp, 0.5)
    # CuPy sums the float32 squares in another order than the host's BLAS
    assert float(norm) == pytest.approx(want, rel=1e-12 if xp is np else 1e-6)
    for d, g in zip(on_xp, grads):
        np.testing.assert_allclose(to_cpu(d), g, rtol=1e-6)


# -- schedules ----------------------------------------------------------------------------
def test_step_decay():
    opt = SGD(lr=1.0)
    s = StepDecay(opt, step_size=2, gamma=0.5)
    lrs = [s.step() for _ in range(5)]
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="step_size"):
        StepDecay(opt, step_size=0)


def test_reduce_on_plateau_book_recipe():
    opt = SGD(lr=20.0)
    s = ReduceOnPlateau(opt)  # divide by 4 when the val perplexity does not improve
    for ppl, lr in [(300, 20.0), (200, 20.0), (210, 5.0), (200, 1.25), (150, 1.25)]:
        assert s.step({"val_perplexity": ppl, "loss": 1.0}) == lr
    assert s.best == 150 and s.reductions == 2
    assert s.step({"val_perplexity": float("nan")}) == 1.25 / 4


def test_reduce_on_plateau_patience_mode_min_lr():
    opt = SGD(lr=1.0)
    s = ReduceOnPlateau(opt, factor=2, patience=1, monitor="val_accuracy", mode="max",
                        min_lr=0.3)
    for acc in [0.5, 0.4, 0.45]:  # two bad epochs in a row -> one division
        s.step({"val_accuracy": acc})
    assert opt.lr == 0.5
    for acc in [0.4, 0.4]:
        s.step({"val_accuracy": acc})
    assert opt.lr == 0.3
    assert s.step(0.9) == 0.3  # a bare number is the monitored value
    with pytest.raises(KeyError, match="val_accuracy"):
        s.step({"loss": 1.0})
    with pytest.raises(ValueError):
        ReduceOnPlateau(opt, factor=1.0)


def test_schedule_state_round_trip():
    opt = SGD(lr=1.0)
    s = ReduceOnPlateau(opt, factor=3.0, patience=1)
    for v in [5.0, 6.0]:
        s.step(v)
    state = s.state_dict()
    opt2 = SGD(lr=opt.lr)
    s2 = schedule_from_state(state, opt2)
    for v in [7.0, 4.0, 4.5, 4.5]:
        assert s.step(v) == s2.step(v)
    assert s2.state_dict() == s.state_dict()
    d = StepDecay(opt, 3, 0.1)
    d.step()
    d2 = schedule_from_state(d.state_dict(), SGD())
    assert d2.epoch == 1 and d2.step_size == 3
    with pytest.raises(CheckpointError):
        d.load_state_dict(state)

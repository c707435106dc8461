"""PyTorch as an oracle for the optimizers (float64, several steps).

Where our rule (the book's) is PyTorch's, the steps must agree to rounding:
SGD; Momentum and Nesterov (PyTorch keeps ``buf`` with ``v = -lr * buf``);
AdaGrad and RMSprop with PyTorch's eps set to the book's 1e-7. Adam differs in
where eps enters (see ``timelayers.optim.Adam``): with eps = 0 both are the same
rule; with the default eps ours is checked against its formula in test_optim.
"""

import numpy as np
import pytest

from timelayers.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, clip_grads

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

SHAPES = [(4, 3), (6,)]
STEPS = 8

CASES = {
    "SGD": (lambda: SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "Momentum": (lambda: Momentum(lr=0.05, momentum=0.9),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    "Nesterov": (lambda: Nesterov(lr=0.05, momentum=0.9),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    "AdaGrad": (lambda: AdaGrad(lr=0.2), lambda ps: torch.optim.Adagrad(ps, lr=0.2, eps=1e-7)),
    "RMSprop": (lambda: RMSprop(lr=0.01, decay_rate=0.99),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-7)),
    "RMSprop-0.9": (lambda: RMSprop(lr=0.03, decay_rate=0.9),
                    lambda ps: torch.optim.RMSprop(ps, lr=0.03, alpha=0.9, eps=1e-7)),
    "Adam-eps0": (lambda: Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=0.0),
                  lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=0.0)),
    "Adam-eps0-b": (lambda: Adam(lr=0.1, beta1=0.5, beta2=0.9, eps=0.0),
                    lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.5, 0.9), eps=0.0)),
}


def run_both(make_ours, make_torch, rng, steps=STEPS):
    init = [rng.standard_normal(s) for s in SHAPES]
    grads_seq = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    ours = [p.copy() for p in init]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    opt, topt = make_ours(), make_torch(theirs)
    for grads in grads_seq:
        opt.update(ours, [g.copy() for g in grads])
        for tp, g in zip(theirs, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    return ours, [tp.detach().numpy() for tp in theirs]


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(rng, name):
    ours, theirs = run_both(*CASES[name], rng)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_adam_default_eps_is_torch_with_scaled_eps(rng):
    """With eps > 0, ours is PyTorch's Adam with eps_t = eps / sqrt(1 - beta2^t)."""
    init = [rng.standard_normal(s) * 1e-3 for s in SHAPES]
    ours = [p.copy() for p in init]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    opt = Adam(lr=0.01, beta1=0.9, beta2=0.999)  # eps 1e-7
    topt = torch.optim.Adam(theirs, lr=0.01, betas=(0.9, 0.999))
    for t in range(1, STEPS + 1):
        grads = [rng.standard_normal(s) * 1e-6 for s in SHAPES]  # small: eps matters
        opt.update(ours, [g.copy() for g in grads])
        topt.param_groups[0]["eps"] = 1e-7 / np.sqrt(1 - 0.999 ** t)
        for tp, g in zip(theirs, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for a, tp in zip(ours, theirs):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-11, atol=1e-15)


def test_momentum_with_changing_lr_differs_from_torch(rng):
    """PyTorch's buffer does not hold the learning rate, the book's velocity does:
    after an lr change the two part (documented in Momentum's docstring)."""
    p0 = rng.standard_normal(3)
    g1, g2 = rng.standard_normal(3), rng.standard_normal(3)
    ours, tp = p0.copy(), torch.tensor(p0.copy(), requires_grad=True)
    opt, topt = Momentum(lr=0.1, momentum=0.9), torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    for g, lr in [(g1, 0.1), (g2, 0.01)]:
        opt.lr = lr
        topt.param_groups[0]["lr"] = lr
        opt.update([ours], [g.copy()])
        tp.grad = torch.tensor(g)
        topt.step()
    want_ours = p0 - 0.1 * g1 + (0.9 * -0.1 * g1 - 0.01 * g2)
    np.testing.assert_allclose(ours, want_ours, rtol=1e-12)
    assert not np.allclose(ours, tp.detach().numpy(), rtol=1e-6)


def test_clip_grads_matches_torch(rng):
    grads = [rng.standard_normal(s) * 3 for s in SHAPES]
    tps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for tp, g in zip(tps, grads):
        tp.grad = torch.tensor(g.copy())
    tnorm = torch.nn.utils.clip_grad_norm_(tps, max_norm=1.0)
    norm = clip_grads(grads, 1.0)
    assert norm == pytest.approx(float(tnorm), rel=1e-12)
    for g, tp in zip(grads, tps):  # both scale by max_norm / (norm + 1e-6)
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-12)

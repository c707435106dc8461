"""The modules ``timelayers.export.to_torch`` makes are the same models as ours:
the oracle the benchmarks time against (``benchmarks/bench_models.py``).

From our initial weights, with dropout off, the module must give our forward
loss and, after backward, our gradients (mapped back to our layout by the
converter's own reverse mapping, ``timelayers_state``), two batches in a row so
that the carried state (truncated BPTT: the state passed on, detached) is checked
too. float64 checks the mapping to ~1e-10; float32 checks the benchmark's
setting: the loss to ~1e-5, the gradients to ~1e-4 of their largest entry (sums
of a few hundred float32 terms, added in another order). With oneDNN off too,
which ``bench_models.py --native-rnn`` times.

The Transformers (``test_exported_transformer_matches_ours``: every activation,
both kinds of positions) are checked in training mode with dropout 0, each batch
on its own, as ours reads them in training; float64 to ~1e-10, float32 to float32
rounding (the loss to 1e-6, each gradient to 1e-5 of its largest entry). The key
biases' gradients are zero in exact arithmetic (a bias added to every key adds one
constant to a query's scores, which the softmax ignores): both sides give rounding
noise there, checked against the largest gradient of the model instead.

Covered in ``tests/export/test_export_torch.py`` and not repeated here: the
loss of every exportable model in evaluation mode (``test_loss_equals_ours``), the
exact round trip, and ten clipped SGD steps giving our losses
(``test_trains_as_ours``, which replaced this file's ``test_twin_trains_as_ours``).
Skipped when torch is not installed.
"""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

from timelayers.export import to_torch  # noqa: E402
from timelayers.models import (AttentionSeq2seq, BetterRnnlm, Rnnlm,  # noqa: E402
                               TransformerLM, TransformerSeq2seq)


def grads_as_ours(module):
    """Dotted names of our params -> the module's gradients in our layout: the
    gradients put in a copy's parameters, read back with ``timelayers_state``
    (a frozen ``bias_hh`` has none: zero, so that ``b`` gets ``bias_ih``'s)."""
    shadow = copy.deepcopy(module)
    with torch.no_grad():
        for p, q in zip(shadow.parameters(), module.parameters()):
            p.copy_(torch.zeros_like(q) if q.grad is None else q.grad)
    return shadow.timelayers_state()


def assert_same_loss_and_grads(model, module, ours, loss, tol, gtol, where, shared_scale=()):
    """Our loss ``ours`` equals the module's ``loss`` to ``tol`` relative, and each of
    our gradients the module's to ``gtol`` of its largest entry (of the model's
    largest gradient, for the params whose names end with one of ``shared_scale``)."""
    assert ours == pytest.approx(loss.item(), rel=tol)
    theirs = grads_as_ours(module)
    assert sorted(theirs) == sorted(model.param_names)
    largest = max(np.abs(g).max() for g in theirs.values())
    for name, g in zip(model.param_names, model.grads):
        scale = largest if name.endswith(shared_scale) else max(np.abs(theirs[name]).max(), 1e-12)
        np.testing.assert_allclose(g / scale, theirs[name] / scale, rtol=0, atol=gtol,
                                   err_msg=f"{where}: gradient of {name}")


def make(kind, dtype):
    """Our model, its module, V, the shapes of xs and ts."""
    if kind == "rnnlm":
        model = Rnnlm(50, 6, 7, dtype=dtype, rng=1)
        shapes = (3, 5), (3, 5)
    elif kind == "better":
        model = BetterRnnlm(50, 8, 8, dropout_ratio=0.5, dtype=dtype, rng=1).eval()
        shapes = (3, 5), (3, 5)
    else:
        model = AttentionSeq2seq(13, 5, 6, dtype=dtype, rng=1)
        shapes = (3, 7), (3, 5)
    return model, to_torch(model).eval(), model.config.vocab_size, *shapes


def module_loss(module, xs, ts, state):
    """The module's loss on one batch and the state to carry (language models:
    detached, as ours starts each batch from the last one's state)."""
    xs, ts = torch.from_numpy(xs), torch.from_numpy(ts)
    if hasattr(module, "encoder_rnn"):
        return module.loss(xs, ts), None
    loss, state = module.loss(xs, ts, state)
    return loss, tuple(s.detach() for s in state)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN:UserWarning")
@pytest.mark.parametrize("onednn", [True, False], ids=["oneDNN on", "oneDNN off"])
@pytest.mark.parametrize("kind", ["rnnlm", "better", "attention"])
@pytest.mark.parametrize("dtype,tol,gtol", [("float64", 1e-10, 1e-10), ("float32", 1e-5, 1e-4)])
def test_exported_module_matches_ours(kind, dtype, tol, gtol, onednn):
    rng = np.random.default_rng(0)
    model, module, V, xshape, tshape = make(kind, dtype)
    state = None
    for step in range(2):  # the second step checks the carried (stateful) state too
        xs, ts = rng.integers(0, V, xshape), rng.integers(0, V, tshape)
        module.zero_grad()
        with torch.backends.mkldnn.flags(enabled=onednn):
            loss, state = module_loss(module, xs, ts, state)
            loss.backward()
        ours = model.forward(xs, ts)
        model.backward()
        assert_same_loss_and_grads(model, module, ours, loss, tol, gtol, f"{kind} step {step}")


def make_transformer(kind, dtype, activation, positional):
    """A Transformer without dropout, its module (both in training mode), V, the
    shapes of xs and ts."""
    sizes = dict(ff_size=24, max_len=9, dropout=0.0, positional=positional,
                 activation=activation, dtype=dtype, rng=1)
    if kind == "transformer-lm":
        model = TransformerLM(31, 16, 4, 2, **sizes)
        shapes = (3, 9), (3, 9)
    else:
        model = TransformerSeq2seq(31, 16, 4, 2, 2, **sizes)
        shapes = (3, 8), (3, 7)
    return model.train(), to_torch(model).train(), 31, *shapes


@pytest.mark.parametrize("activation,positional", [("gelu_tanh", "sinusoidal"),
                                                   ("gelu", "learned"), ("relu", "sinusoidal"),
                                                   ("relu", "learned")])
@pytest.mark.parametrize("kind", ["transformer-lm", "transformer-seq2seq"])
@pytest.mark.parametrize("dtype,tol,gtol", [("float64", 1e-10, 1e-10), ("float32", 1e-6, 1e-5)])
def test_exported_transformer_matches_ours(kind, dtype, tol, gtol, activation, positional):
    rng = np.random.default_rng(0)
    model, module, V, xshape, tshape = make_transformer(kind, dtype, activation, positional)
    for step in range(2):
        xs, ts = rng.integers(0, V, xshape), rng.integers(0, V, tshape)
        module.zero_grad()
        loss = module.loss(torch.from_numpy(xs), torch.from_numpy(ts))
        loss = loss[0] if kind == "transformer-lm" else loss       # (loss, context)
        loss.backward()
        ours = model.forward(xs, ts)
        model.backward()
        assert_same_loss_and_grads(model, module, ours, loss, tol, gtol, f"{kind} step {step}",
                                   shared_scale=(".bk",))

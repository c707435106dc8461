"""The PyTorch twins of ``benchmarks/torch_models.py`` are the same models as ours.

Started from our initial weights (``from_ours``), with dropout off, a twin must
give our forward loss and, after backward, our gradients (mapped back to our
layout). float64 checks the mapping to ~1e-10; float32 checks the benchmark's
setting: the loss to ~1e-5, the gradients to ~1e-4 of their largest entry (sums
of a few hundred float32 terms, added in another order). Skipped when torch is
not installed.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from torch_models import (TorchAttentionSeq2seq, TorchBetterRnnlm, TorchRnnlm,  # noqa: E402
                          lstm_to_torch)

from timelayers.models import AttentionSeq2seq, BetterRnnlm, Rnnlm  # noqa: E402

_OURS_FROM_TORCH = [1, 2, 0, 3]  # our slice k (f, g, i, o) is torch's slice [k] (i, f, g, o)


def lstm_to_ours(w):
    """A torch LSTM weight ``(4H, X)`` or bias ``(4H,)`` in our layout."""
    w = w.detach().numpy()
    H = w.shape[0] // 4
    out = w.reshape(4, H, *w.shape[1:])[_OURS_FROM_TORCH].reshape(w.shape)
    return out.T if out.ndim == 2 else out


def torch_grads_as_ours(twin):
    """Dotted names of our params -> the twin's gradients in our layout."""
    g = {}
    if isinstance(twin, TorchAttentionSeq2seq):
        g["encoder.embed.W"] = twin.enc_embed.weight.grad.numpy()
        g["decoder.embed.W"] = twin.dec_embed.weight.grad.numpy()
        for ours, lstm in (("encoder.lstm", twin.enc_lstm), ("decoder.lstm", twin.dec_lstm)):
            g[f"{ours}.Wx"] = lstm_to_ours(lstm.weight_ih_l0.grad)
            g[f"{ours}.Wh"] = lstm_to_ours(lstm.weight_hh_l0.grad)
            g[f"{ours}.b"] = lstm_to_ours(lstm.bias_ih_l0.grad)
        g["decoder.affine.W"] = twin.affine.weight.grad.numpy().T
        g["decoder.affine.b"] = twin.affine.bias.grad.numpy()
        return g
    g["embed.W"] = twin.embed.weight.grad.numpy()  # tied: both uses summed by torch
    layers = ["rnn"] if isinstance(twin, TorchRnnlm) else [f"rnns.{i}" for i in
                                                           range(twin.lstm.num_layers)]
    for i, name in enumerate(layers):
        g[f"{name}.Wx"] = lstm_to_ours(getattr(twin.lstm, f"weight_ih_l{i}").grad)
        g[f"{name}.Wh"] = lstm_to_ours(getattr(twin.lstm, f"weight_hh_l{i}").grad)
        g[f"{name}.b"] = lstm_to_ours(getattr(twin.lstm, f"bias_ih_l{i}").grad)
    if isinstance(twin, TorchRnnlm):
        g["affine.W"] = twin.affine.weight.grad.numpy().T
    g["affine.b"] = twin.affine.bias.grad.numpy()
    return g


def make(kind, dtype):
    if kind == "rnnlm":
        model = Rnnlm(50, 6, 7, dtype=dtype, rng=1)
        return model, TorchRnnlm.from_ours(model), 50, (3, 5), (3, 5)
    if kind == "better":
        model = BetterRnnlm(50, 8, 8, dropout_ratio=0.5, dtype=dtype, rng=1).eval()
        return model, TorchBetterRnnlm.from_ours(model).eval(), 50, (3, 5), (3, 5)
    model = AttentionSeq2seq(13, 5, 6, dtype=dtype, rng=1)
    return model, TorchAttentionSeq2seq.from_ours(model), 13, (3, 7), (3, 5)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN:UserWarning")
@pytest.mark.parametrize("onednn", [True, False], ids=["oneDNN on", "oneDNN off"])
@pytest.mark.parametrize("kind", ["rnnlm", "better", "attention"])
@pytest.mark.parametrize("dtype,tol,gtol", [("float64", 1e-10, 1e-10), ("float32", 1e-5, 1e-4)])
def test_twin_matches_ours(kind, dtype, tol, gtol, onednn):
    """With oneDNN off too: ``bench_models.py --native-rnn`` times that twin."""
    rng = np.random.default_rng(0)
    model, twin, V, xshape, tshape = make(kind, dtype)
    for step in range(2):  # the second step checks the carried (stateful) state too
        xs, ts = rng.integers(0, V, xshape), rng.integers(0, V, tshape)
        twin.zero_grad()
        with torch.backends.mkldnn.flags(enabled=onednn):
            loss = twin.loss(xs, ts)
            loss.backward()
        ours = model.forward(xs, ts)
        model.backward()
        assert ours == pytest.approx(loss.item(), rel=tol)
        theirs = torch_grads_as_ours(twin)
        assert sorted(theirs) == sorted(model.param_names)
        for name, g in zip(model.param_names, model.grads):
            scale = max(np.abs(theirs[name]).max(), 1e-12)
            np.testing.assert_allclose(g / scale, theirs[name] / scale, rtol=0, atol=gtol,
                                       err_msg=f"{kind} step {step}: gradient of {name}")


def test_lstm_to_torch_gate_order():
    """Our column slices f, g, i, o land in torch's rows i, f, g, o."""
    H, D = 2, 3
    Wx = np.concatenate([np.full((D, H), k, dtype=np.float64) for k in range(4)], axis=1)
    b = np.repeat(np.arange(4.0), H)
    w_ih, w_hh, b_ih, b_hh = lstm_to_torch(Wx, np.zeros((H, 4 * H)), b)
    assert w_ih.shape == (4 * H, D)
    np.testing.assert_array_equal(w_ih[:, 0], [2, 2, 0, 0, 1, 1, 3, 3])  # i, f, g, o
    np.testing.assert_array_equal(b_ih, [2, 2, 0, 0, 1, 1, 3, 3])
    np.testing.assert_array_equal(b_hh, 0)


@pytest.mark.parametrize("kind", ["rnnlm", "better", "attention"])
def test_twin_trains_as_ours(kind):
    """Equal gradients are not enough for a training oracle: the twin must also
    take our update. Ten SGD steps with clipping at the book's lr 20, float64:
    the losses stay equal (a trainable ``bias_hh`` beside ``bias_ih`` moved the
    twin's bias twice as fast and counted twice in the clipping norm)."""
    from timelayers.optim import SGD, clip_grads

    rng = np.random.default_rng(0)
    model, twin, V, xshape, tshape = make(kind, "float64")
    opt, topt = SGD(lr=20.0), torch.optim.SGD(twin.parameters(), lr=20.0)
    for step in range(10):
        xs, ts = rng.integers(0, V, xshape), rng.integers(0, V, tshape)
        topt.zero_grad()
        loss = twin.loss(xs, ts)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.25)
        topt.step()
        ours = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, 0.25)
        opt.update(model.params, model.grads)
        assert ours == pytest.approx(loss.item(), rel=1e-9), f"{kind} step {step}"

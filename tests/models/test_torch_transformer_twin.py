"""``benchmarks/torch_models.TorchTransformerLM`` is our TransformerLM: from our
weights, dropout off, float64, the same loss and the same gradients (mapped back
to our layout), for each activation and both kinds of positions. Skipped when
torch is not installed."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from torch_models import TorchTransformerLM  # noqa: E402

from timelayers.models import TransformerLM  # noqa: E402

TOL = dict(rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("activation,positional", [("gelu_tanh", "sinusoidal"),
                                                   ("gelu", "learned"), ("relu", "sinusoidal")])
def test_same_loss_and_gradients(activation, positional):
    V, N, T = 40, 3, 7
    model = TransformerLM(V, 12, 3, 2, 20, max_len=T, dropout=0.0, positional=positional,
                          activation=activation, dtype="float64", rng=0)
    twin = TorchTransformerLM.from_ours(model)
    rng = np.random.default_rng(1)
    xs, ts = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    model.train()  # stateless: every batch scored on its own, as the twin's
    ours = model.forward(xs, ts)
    model.backward()
    theirs = twin.loss(xs, ts)
    theirs.backward()
    np.testing.assert_allclose(ours, theirs.item(), **TOL)
    grads = dict(zip(model.param_names, model.grads))
    block = twin.blocks[1]
    pairs = [("input.embed.W", twin.embed.weight.grad),  # tied: both uses summed
             ("affine.b", twin.affine.bias.grad),
             ("norm.gamma", twin.norm.weight.grad),
             ("blocks.1.ff1.W", block.linear1.weight.grad.T),
             ("blocks.1.self_attn.Wo", block.self_attn.out_proj.weight.grad.T),
             ("blocks.1.self_attn.Wq", block.self_attn.in_proj_weight.grad[:12].T)]
    if positional == "learned":
        pairs.append(("input.position.W", twin.position.grad))
    for name, grad in pairs:
        np.testing.assert_allclose(grads[name], grad.numpy(), err_msg=name, **TOL)

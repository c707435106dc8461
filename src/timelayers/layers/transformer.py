"""The pre-norm Transformer block (Vaswani et al., 2017, with the layer
normalization moved in front of each sub-layer as in Xiong et al., 2020,
arXiv:2002.04745, and GPT-2)::

    h = x + Dropout(SelfAttention(LayerNorm(x)))                   # (N, T, D)
    h = h + Dropout(CrossAttention(LayerNorm(h), memory))          # decoder blocks only
    y = h + Dropout(W2(Dropout(act(W1(LayerNorm(h))))))            # (N, T, D)

with ``W1 (D, F)`` and ``W2 (F, D)`` the position-wise feed-forward network and
``act`` GELU or ReLU. This is PyTorch's ``nn.TransformerEncoderLayer(norm_first=True,
batch_first=True)`` (``nn.TransformerDecoderLayer`` with ``cross_attention=True``),
except that PyTorch also applies dropout to the attention weights; here dropout
acts on the sub-layers' outputs and the feed-forward hidden layer only.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._checks import check_float, check_shape
from ._init import draw, layer_norm, scaled_normal, under, zeros
from .activations import GELU
from .base import Layer
from .core import ReLU
from .multihead_attention import MultiHeadAttention
from .normalization import LayerNorm
from .time import TimeAffine, TimeDropout

__all__ = ["TransformerBlock", "ACTIVATIONS"]

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


def _activation(name):
    if name == "relu":
        return ReLU()
    return GELU("tanh" if name == "gelu_tanh" else "none")


class _Composite(Layer):
    """A layer made of named sub-layers: its ``params``/``grads`` are theirs (the
    same array objects, in order) with dotted ``param_names``, and its
    ``train_flg`` is passed down to them."""

    def _set_children(self, children):
        self._layers = dict(children)
        names, params, grads = [], [], []
        for prefix, layer in self._layers.items():
            names += [f"{prefix}.{n}" for n in layer.param_names]
            params += layer.params
            grads += layer.grads
        self.param_names = tuple(names)
        self.params = params
        self.grads = grads

    @property
    def train_flg(self):
        return self._train_flg

    @train_flg.setter
    def train_flg(self, value):
        self._train_flg = value
        for layer in getattr(self, "_layers", {}).values():
            layer.train_flg = value


class TransformerBlock(_Composite):
    """One pre-norm Transformer block (its equations: the module docstring).

    Parameters
    ----------
    D, num_heads, ff_size : int
        Model size (input and output), attention heads (dividing ``D``) and the
        feed-forward hidden size ``F`` (commonly ``4 * D``).
    dropout : float, default 0.0
        On the sub-layers' outputs and the feed-forward hidden layer.
    causal : bool, default False
        Mask the future in the self-attention (decoder and language-model blocks).
    cross_attention : bool, default False
        Also attend to an encoder's output, ``memory`` (a decoder block).
    activation : {"gelu", "gelu_tanh", "relu"}, default "gelu"
        The exact GELU (PyTorch's ``F.gelu``), its tanh approximation, or ReLU.
    eps : float, default 1e-5
        The layer norms' epsilon.
    dtype : str, default "float32"
    rng : numpy.random.Generator or int seed
        The init (see :meth:`param_layout`) and the dropout masks.
    residual_layers : int, default 1
        The number of blocks in the stack, for GPT-2's init scaling.

    The sub-layers are attributes named as the prefixes of ``param_names``
    (``self_attn``, a :class:`MultiHeadAttention`; ``ff1``, ``ff2``: ``TimeAffine``).
    ``forward(x (N, T, D), memory=None, padding_mask=None, memory_padding_mask=None)
    -> (N, T, D)``: ``memory (N, Tm, D)``, ``padding_mask (N, T)`` and
    ``memory_padding_mask (N, Tm)`` bool (True = padding key). ``backward(dout (N, T,
    D)) -> dx (N, T, D)``, or ``(dx, dmemory (N, Tm, D))`` with ``cross_attention``.
    """

    @staticmethod
    def param_layout(D, ff_size, cross_attention=False, residual_layers=1):
        """``(name, shape, init)`` of the block's params, in ``param_names`` order,
        which the constructor draws them in: every weight matrix ``N(0, 1 /
        fan_in)``, the residual branches' output projections (``Wo``, ``ff2.W``)
        also divided by ``sqrt(2 * residual_layers)`` (GPT-2's); biases 0; layer-norm
        scales 1."""
        out_std = (2.0 * residual_layers) ** -0.5  # times 1 / sqrt(fan_in)

        def norm(name):
            return [(f"{name}.{p}", shape, init) for p, shape, init in layer_norm(D)]

        def attention(name):
            for part, gain in (("q", 1.0), ("k", 1.0), ("v", 1.0), ("o", out_std)):
                yield f"{name}.W{part}", (D, D), scaled_normal(D, gain)
                yield f"{name}.b{part}", (D,), zeros

        yield from norm("self_attn_norm")
        yield from attention("self_attn")
        if cross_attention:
            yield from norm("cross_attn_norm")
            yield from attention("cross_attn")
        yield from norm("ff_norm")
        yield from [("ff1.W", (D, ff_size), scaled_normal(D)), ("ff1.b", (ff_size,), zeros),
                    ("ff2.W", (ff_size, D), scaled_normal(ff_size, out_std)),
                    ("ff2.b", (D,), zeros)]

    def __init__(self, D, num_heads, ff_size, dropout=0.0, *, causal=False,
                 cross_attention=False, activation="gelu", eps=1e-5, dtype="float32", rng=None,
                 residual_layers=1):
        super().__init__()
        for name, size in (("D", D), ("ff_size", ff_size), ("residual_layers", residual_layers)):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
                raise ValueError(f"TransformerBlock: argument {name!r} expected a positive int, "
                                 f"got {size!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"TransformerBlock: argument 'activation' expected one of "
                             f"{ACTIVATIONS}, got {activation!r}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.cross_attention = bool(cross_attention)
        p = draw(self.param_layout(D, ff_size, self.cross_attention, residual_layers), rng, dtype)
        children = [("self_attn_norm", LayerNorm(*under(p, "self_attn_norm"), eps)),
                    ("self_attn", MultiHeadAttention(*under(p, "self_attn"), num_heads,
                                                     causal=causal))]
        if self.cross_attention:
            children += [("cross_attn_norm", LayerNorm(*under(p, "cross_attn_norm"), eps)),
                         ("cross_attn", MultiHeadAttention(*under(p, "cross_attn"), num_heads))]
        children += [("ff_norm", LayerNorm(*under(p, "ff_norm"), eps)),
                     ("ff1", TimeAffine(*under(p, "ff1"))), ("ff2", TimeAffine(*under(p, "ff2")))]
        self._set_children(children)
        for name, layer in children:
            setattr(self, name, layer)
        self.activation = _activation(activation)
        self.activation_name = activation
        self.dropouts = [TimeDropout(dropout, rng) for _ in range(4 if cross_attention else 3)]
        self._layers.update({f"dropout{i}": d for i, d in enumerate(self.dropouts)},
                            activation=self.activation)

    def forward(self, x, memory=None, padding_mask=None, memory_padding_mask=None):
        where = "TransformerBlock.forward"
        D = self.ff_norm.params[0].shape[0]
        check_shape(where, "x", x, ("N", "T", D))
        check_float(where, "x", x)
        if self.cross_attention and memory is None:
            raise ValueError(f"{where}: argument 'memory' (N, Tm, {D}) is required by a block "
                             f"with cross_attention, got None")
        if not self.cross_attention and memory is not None:
            raise ValueError(f"{where}: argument 'memory' is only used with cross_attention=True, "
                             f"got an array")
        drop = iter(self.dropouts)
        h = x + next(drop).forward(self.self_attn.forward(self.self_attn_norm.forward(x), None,
                                                          padding_mask))
        if self.cross_attention:
            h = h + next(drop).forward(self.cross_attn.forward(self.cross_attn_norm.forward(h),
                                                               memory, memory_padding_mask))
        f = next(drop).forward(self.activation.forward(self.ff1.forward(self.ff_norm.forward(h))))
        return h + next(drop).forward(self.ff2.forward(f))

    def backward(self, dout):
        drop = reversed(self.dropouts)
        df = self.ff2.backward(next(drop).backward(dout))
        df = self.activation.backward(next(drop).backward(df))
        dh = dout + self.ff_norm.backward(self.ff1.backward(df))
        dmemory = None
        if self.cross_attention:
            dc, dmemory = self.cross_attn.backward(next(drop).backward(dh))
            dh = dh + self.cross_attn_norm.backward(dc)
        dx = dh + self.self_attn_norm.backward(self.self_attn.backward(next(drop).backward(dh)))
        return dx if dmemory is None else (dx, dmemory)

    def __repr__(self):
        D, F = self.ff1.params[0].shape
        return (f"TransformerBlock(D={D}, num_heads={self.self_attn.num_heads}, ff_size={F}, "
                f"causal={self.self_attn.causal}, cross_attention={self.cross_attention}, "
                f"activation={self.activation_name!r})")


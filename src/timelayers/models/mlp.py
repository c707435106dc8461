"""The two-layer classifier of the book's first chapter (trained on the spiral)."""

from __future__ import annotations

from dataclasses import dataclass

from ..layers import Affine, Sigmoid, SoftmaxWithLoss
from ._layout import draw_params, sizes
from ._config import ModelConfig
from ..layers._init import make_rng, normal, zeros
from .base import Model

__all__ = ["TwoLayerNet", "TwoLayerNetConfig"]


@dataclass
class TwoLayerNetConfig(ModelConfig):
    input_size: int = 2
    hidden_size: int = 10
    output_size: int = 3
    dtype: str = "float32"


class TwoLayerNet(Model):
    """``Affine -> Sigmoid -> Affine`` with a softmax cross-entropy loss.

    Shapes: ``x (N, input_size)``, targets ``t (N,)`` labels or ``(N, output_size)``
    one-hot; ``predict(x) -> scores (N, output_size)``.
    """

    @staticmethod
    def param_layout(input_size, hidden_size, output_size, **_):
        """``(name, shape, init)`` of each param, in the order the constructor draws them."""
        I, H, O = sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
        yield from [("affine1.W", (I, H), normal(0.01)), ("affine1.b", (H,), zeros),
                    ("affine2.W", (H, O), normal(0.01)), ("affine2.b", (O,), zeros)]

    def __init__(self, input_size=2, hidden_size=10, output_size=3, *, dtype="float32", rng=None):
        self.config = TwoLayerNetConfig(input_size, hidden_size, output_size, dtype)
        p = draw_params(self, make_rng(rng))  # name -> array, drawn in param_layout's order
        self.affine1 = Affine(p["affine1.W"], p["affine1.b"])
        self.sigmoid = Sigmoid()
        self.affine2 = Affine(p["affine2.W"], p["affine2.b"])
        self.loss_layer = SoftmaxWithLoss()

    def predict(self, x):
        return self.affine2.forward(self.sigmoid.forward(self.affine1.forward(x)))

    def forward(self, x, t):
        return self.loss_layer.forward(self.predict(x), t)

    def _backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        dout = self.affine2.backward(dout)
        dout = self.sigmoid.backward(dout)
        return self.affine1.backward(dout)

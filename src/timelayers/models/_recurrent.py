"""The one builder of the models' recurrent layers, and their params with the book's init."""

from __future__ import annotations

from ..layers.cells import cell_named
from ..layers.recurrent import TimeGRU, TimeLSTM, TimeRNN
from ..layers._init import xavier, zeros

__all__ = ["recurrent_layer", "cell_param_layout"]

_TIME_LAYERS = {"rnn": TimeRNN, "lstm": TimeLSTM, "gru": TimeGRU}  # by Cell.step


def cell_param_layout(cell, D, H):
    """``(name, shape, init)`` of a recurrent layer from ``D`` inputs to ``H``
    units, as in the book: ``Wx (D, G*H) ~ N(0, 1/D)``, ``Wh (H, G*H) ~ N(0, 1/H)``,
    ``b (G*H,) = 0`` with ``G`` gates (1, 4 or 3); the cuDNN/PyTorch GRU's second
    bias ``bh (3H,)`` starts at zero.

    ``cell`` is a name in :data:`timelayers.layers.cells.CELLS`: "gru" is the
    book's GRU (the reset gate applied before the hidden product,
    ``TimeGRU(reset_after=False)``), "gru-reset-after" the cuDNN/PyTorch form
    (``reset_after=True``); both draw the same ``Wx, Wh`` from the same generator."""
    cell = cell_named(cell)
    G = cell.gates * H
    yield from [("Wx", (D, G), xavier), ("Wh", (H, G), xavier), ("b", (G,), zeros)]
    if cell.reset_after:
        yield "bh", (G,), zeros


def recurrent_layer(cell, params, name, stateful):
    """The TimeRNN / TimeLSTM / TimeGRU of ``cell`` made of the arrays
    ``params[name + ".Wx"]``, ``.Wh``, ``.b`` (and ``.bh``) that
    :func:`cell_param_layout` describes."""
    cell = cell_named(cell)
    Wx, Wh, b = (params[f"{name}.{k}"] for k in ("Wx", "Wh", "b"))
    options = {"reset_after": True, "bh": params[f"{name}.bh"]} if cell.reset_after else {}
    return _TIME_LAYERS[cell.step](Wx, Wh, b, stateful=stateful, **options)

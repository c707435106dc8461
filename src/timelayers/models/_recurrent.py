"""The one builder of the models' recurrent layers, with the book's initialisation."""

from __future__ import annotations

import numbers

from ..layers.cells import cell_named
from ..layers.recurrent import TimeGRU, TimeLSTM, TimeRNN
from ._init import xavier, zeros

__all__ = ["recurrent_layer", "cell_param_layout"]

_TIME_LAYERS = {"rnn": TimeRNN, "lstm": TimeLSTM, "gru": TimeGRU}  # by Cell.step


def cell_param_layout(cell, D, H):
    """``(name, shape)`` of the params of :func:`recurrent_layer`'s layer."""
    cell = cell_named(cell)
    G = cell.gates * H
    yield from [("Wx", (D, G)), ("Wh", (H, G)), ("b", (G,))]
    if cell.reset_after:
        yield "bh", (G,)


def recurrent_layer(cell, D, H, rng, dtype, stateful):
    """A TimeRNN / TimeLSTM / TimeGRU from ``D`` inputs to ``H`` units, initialised
    as in the book: ``Wx (D, G*H) ~ N(0, 1/D)``, ``Wh (H, G*H) ~ N(0, 1/H)``,
    ``b (G*H,) = 0`` with ``G`` gates (1, 4 or 3), drawn from ``rng`` in that order.

    ``cell`` is a name in :data:`timelayers.layers.cells.CELLS`: "gru" is the book's GRU (the reset gate
    applied before the hidden product, ``TimeGRU(reset_after=False)``),
    "gru-reset-after" the cuDNN/PyTorch form (``reset_after=True``), whose
    second bias ``bh (3H,)`` starts at zero; both draw the same ``Wx, Wh`` from
    the same ``rng``."""
    cell = cell_named(cell)
    for name, size in (("input size D", D), ("hidden size H", H)):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"{cell.name} layer: {name} expected a positive int, got {size!r}")
    G = cell.gates * H
    Wx, Wh, b = xavier(rng, D, (D, G), dtype), xavier(rng, H, (H, G), dtype), zeros(G, dtype)
    options = {"reset_after": True} if cell.reset_after else {}
    return _TIME_LAYERS[cell.step](Wx, Wh, b, stateful=stateful, **options)

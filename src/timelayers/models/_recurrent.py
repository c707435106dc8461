"""The one builder of the models' recurrent layers, with the book's initialisation."""

from __future__ import annotations

import numbers

from ..layers.recurrent import TimeGRU, TimeLSTM, TimeRNN
from ._init import xavier, zeros

__all__ = ["recurrent_layer", "CELLS"]

_TIME_LAYERS = {"rnn": TimeRNN, "lstm": TimeLSTM, "gru": TimeGRU}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(_TIME_LAYERS)


def recurrent_layer(cell, D, H, rng, dtype, stateful):
    """A TimeRNN / TimeLSTM / TimeGRU from ``D`` inputs to ``H`` units, initialised
    as in the book: ``Wx (D, G*H) ~ N(0, 1/D)``, ``Wh (H, G*H) ~ N(0, 1/H)``,
    ``b (G*H,) = 0`` with ``G`` gates (1, 4 or 3), drawn from ``rng`` in that order."""
    if cell not in _TIME_LAYERS:
        raise ValueError(f"argument 'cell' expected one of {sorted(_TIME_LAYERS)}, got {cell!r}")
    for name, size in (("input size D", D), ("hidden size H", H)):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"{cell} layer: {name} expected a positive int, got {size!r}")
    G = _GATES[cell] * H
    Wx, Wh, b = xavier(rng, D, (D, G), dtype), xavier(rng, H, (H, G), dtype), zeros(G, dtype)
    return _TIME_LAYERS[cell](Wx, Wh, b, stateful=stateful)

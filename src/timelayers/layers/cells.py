"""The recurrent cells, in one table: what the plans, the time layers, the
models' layouts and the command line know of each."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Cell", "CELLS", "cell_named"]


class Cell(NamedTuple):
    name: str             # as the models and the command line call it
    step: str             # the step functions and plans it runs: "rnn", "lstm" or "gru"
    gates: int            # G of Wx (D, G*H), Wh (H, G*H), b (G*H,)
    has_cell_state: bool  # the LSTM's c beside h
    reset_after: bool     # a GRU whose reset gate scales h_{t-1} Wh_c + bh_c (cuDNN's
                          # and PyTorch's form; a second bias bh (G*H,)) instead of h_{t-1}


CELLS = {cell.name: cell for cell in (
    Cell("rnn", "rnn", 1, False, False),
    Cell("lstm", "lstm", 4, True, False),
    Cell("gru", "gru", 3, False, False),               # the book's (Cho et al. 2014)
    Cell("gru-reset-after", "gru", 3, False, True),
)}


def cell_named(name) -> Cell:
    """The cell called ``name``; ValueError naming the choices otherwise."""
    cell = CELLS.get(name) if isinstance(name, str) else None
    if cell is None:
        raise ValueError(f"argument 'cell' expected one of {list(CELLS)}, got {name!r}")
    return cell

"""Plans: the code that runs a recurrent time layer's math, behind one seam.

==================  =========================================================
plan                what it runs
==================  =========================================================
``ReferencePlan``   the book's equations, one step function call per step
                    (:mod:`timelayers.layers.recurrent_reference`)
``BatchedRNN``,     the input products batched over all steps, time-major
``BatchedGRU``      buffers, no per-step allocations (:mod:`.batched`)
``FastLSTM``        the LSTM's CPU speed work: one ``tanh`` for four gates,
                    weights prepared once per call, fused or transposed
                    per-step products; out of training, one step's buffers
                    and no cache (:mod:`.lstm_fast`)
``RowBlocks``       another plan on slices of the batch's rows, in parallel
                    threads (:mod:`.row_blocks`)
``FusedRNN``,       on a GPU: the gate arithmetic of a step in one or two
``FusedLSTM``,      fused CUDA kernels each way (:mod:`.cuda`, CuPy only)
``FusedGRU``
==================  =========================================================

:func:`choose_plan` is the one place that picks a plan; a time layer calls it
at every forward unless it was built with ``plan=...``. The seam's contract is
:class:`~.base.Plan`'s.
"""

from __future__ import annotations

from ...backend import get_array_module
from .base import Plan
from .batched import BatchedGRU, BatchedRNN
from .fused import FusedGRU, FusedLSTM, FusedRNN
from .lstm_fast import FastLSTM
from .reference import ReferencePlan
from .row_blocks import RowBlocks, row_blocks

__all__ = ["Plan", "ReferencePlan", "BatchedRNN", "BatchedGRU", "FastLSTM", "FusedRNN", "FusedLSTM",
           "FusedGRU", "RowBlocks", "choose_plan"]


def choose_plan(cell, params, xs_shape, training=True):
    """The plan for ``cell`` (a :class:`~timelayers.layers.cells.Cell`) with
    ``params`` (``Wx (D, G*H)`` first, ``Wh (H, G*H)`` second) on inputs of
    shape ``(N, T, D)``; ``training`` is the layer's ``train_flg`` (False: a
    backward is not expected, though still allowed).

    NumPy: the batched plans (the LSTM's flags from the shapes of one row
    block; out of training, the LSTM's forward keeps no steps for backward),
    on row blocks when the batch is large enough. CuPy: the fused plans, on
    the whole batch.
    """
    N, T, D = xs_shape
    H = params[1].shape[0]
    on_numpy = get_array_module(params[0]).__name__ == "numpy"
    blocks = row_blocks(N, H) if on_numpy else [slice(0, N)]
    rows = max(s.stop - s.start for s in blocks)
    if cell.step == "lstm":
        inner = FastLSTM.for_shape(rows, T, D, H, keep_steps=training) if on_numpy \
            else FusedLSTM()
    elif cell.step == "gru":
        inner = (BatchedGRU if on_numpy else FusedGRU)(reset_after=cell.reset_after)
    else:
        inner = BatchedRNN() if on_numpy else FusedRNN()
    return inner if len(blocks) == 1 else RowBlocks(inner, blocks)

"""The plan that runs the book's equations (:mod:`..recurrent_reference`)."""

from __future__ import annotations

from ..recurrent_reference import time_backward, time_forward
from .base import Plan

__all__ = ["ReferencePlan"]


class ReferencePlan(Plan):
    """One step function call per time step, as in the book; ``cell`` is a
    :class:`~timelayers.layers.cells.Cell`."""

    def __init__(self, cell):
        self.cell = cell

    def forward(self, params, xs, states, prepared=None):
        return time_forward(self.cell, params, xs, states)

    def backward(self, params, grads, dhs, cache, prepared=None):
        return time_backward(self.cell, params, grads, dhs, cache)

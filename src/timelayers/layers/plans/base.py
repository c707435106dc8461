"""The seam between the recurrent time layers and the code that runs their math.

A time layer (:class:`~timelayers.layers.TimeLSTM` and its siblings) keeps the
params, the state and the checks; a *plan* computes the forward and backward
over a whole sequence. :func:`~timelayers.layers.plans.choose_plan` picks one
from the cell, the shapes and the array module at every call; a layer built with
``plan=...`` uses that plan instead. Every plan gives the results of
:class:`~timelayers.layers.plans.ReferencePlan` (the book's equations) to float
rounding, and the tests run each against it.

Shapes: ``xs (N, T, D)``; ``states`` a tuple ``(h0,)`` or, for the LSTM,
``(h0, c0)``, each ``(N, H)``; ``hs, dhs (N, T, H)``. All in the params' dtype.
"""

from __future__ import annotations

__all__ = ["Plan"]


class Plan:
    """How a time layer runs its math. Subclasses implement :meth:`forward` and
    :meth:`backward`; a plan whose weights are worth preparing once per call
    (copies, scalings) returns them from :meth:`prepare_forward` /
    :meth:`prepare_backward`, and :class:`RowBlocks` shares them between its
    blocks."""

    def prepare_forward(self, params):
        """Weights for :meth:`forward`'s ``prepared``; None when there are none."""
        return None

    def prepare_backward(self, params):
        """Weights for :meth:`backward`'s ``prepared``; None when there are none."""
        return None

    def forward(self, params, xs, states, prepared=None):
        """Returns ``hs (N, T, H)``, the last states (a tuple like ``states``,
        new arrays) and the cache that :meth:`backward` takes."""
        raise NotImplementedError

    def backward(self, params, grads, dhs, cache, prepared=None):
        """Writes the param gradients into ``grads`` (arrays shaped like
        ``params``) and returns ``dxs (N, T, D)`` and the gradients of the
        initial states (a tuple like ``states``)."""
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items(), key=str))))

"""What the training loop measures on the device: running losses, and the
non-finite check, both read to the host only when asked.

On a GPU every ``float()`` of a device value makes the host wait until the
device has caught up; a loop that read the loss at every step could not queue
the next step's work while the device runs this one. So losses and gradient
norms are summed on the device (0-d float64 arrays of the model's array module)
and read at an interval. On NumPy a read costs nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import flush_device_checks

__all__ = ["RunningLoss", "FiniteCheck", "NonFinite", "default_check_interval"]


class RunningLoss:
    """A sum of values and their count; the sum stays on the device.

    Parameters
    ----------
    xp : module
        NumPy or CuPy: where the sum lives.
    """

    def __init__(self, xp):
        self.xp = xp
        self.reset()

    def reset(self) -> None:
        self.sum = self.xp.zeros((), np.float64)
        self.count = 0

    def add(self, value) -> None:
        """Add a 0-d array (or a number); nothing is read to the host."""
        self.sum = self.sum + value
        self.count += 1

    def total(self) -> float:
        """The sum, read to the host."""
        return float(self.sum)

    def mean(self) -> float:
        """The mean, read to the host (NaN when nothing was added)."""
        return self.total() / self.count if self.count else math.nan


def default_check_interval(on_host: bool, eval_interval, skip_nonfinite: bool):
    """How often the loop checks that losses are finite, when ``fit`` is not told:
    every iteration on the host (NumPy, where the check costs nothing) or with
    ``skip_nonfinite`` (skipping needs the verdict before the update); else at
    each ``eval_interval`` (when the loss is read for the log anyway), or only at
    the epoch's end when that is None."""
    if on_host or skip_nonfinite:
        return 1
    return eval_interval or None


class FiniteCheck:
    """The non-finite check: losses and gradient norms summed on the device since
    the last check; a check reads one sum and starts the next.

    A sum is finite exactly when every value in it is (losses and norms are not
    negative, so infinities cannot cancel), so a check every ``interval``
    iterations finds a NaN or infinity at most ``interval - 1`` iterations late.

    Parameters
    ----------
    xp : module
    interval : int or None
        Check at every ``interval``-th iteration of an epoch and at its last one
        (None: at its last one only).
    """

    def __init__(self, xp, interval):
        self.interval = interval
        self.losses = RunningLoss(xp)
        self.norms = RunningLoss(xp)

    def due(self, iteration: int, max_iters: int) -> bool:
        """Whether the ``iteration``-th (1-based) of ``max_iters`` is checked."""
        return iteration == max_iters or (self.interval is not None
                                          and iteration % self.interval == 0)

    def check_losses(self):
        """Read the losses' sum and start over: None when finite, else a :class:`NonFinite`."""
        return self._check(self.losses, "loss")

    def check_norms(self):
        """As :meth:`check_losses`, for the gradient norms."""
        return self._check(self.norms, "gradient norm")

    @staticmethod
    def _check(sums, what):
        flush_device_checks()  # word ids checked on the device since the last read
        value, steps = sums.total(), sums.count
        sums.reset()
        return None if math.isfinite(value) else NonFinite(what, value, steps)


class NonFinite(NamedTuple):
    """What a check found: ``what`` ("loss" or "gradient norm") summed to
    ``value`` over the last ``steps`` iterations."""

    what: str
    value: float
    steps: int

    def describe(self) -> str:
        if self.steps == 1:
            return f"non-finite {self.what} ({self.value})"
        return (f"non-finite {self.what} (its sum over the last {self.steps} iterations is "
                f"{self.value})")

"""Trainer callbacks: what a callback is, and the ones the library gives.

A callback is a callable ``callback(trainer, event, info)``. The events, in order:

- ``"fit_start"``: info ``{"epoch": epochs done, "max_epoch"}``;
- ``"epoch_start"``: ``{"epoch", "max_iters"}`` (iterations in the epoch);
- ``"iteration_end"``: ``{"epoch", "iteration" (1-based, in the epoch), "loss"}``,
  the loss as the model returned it (on a GPU a 0-d CuPy array: ``float()``
  would make the step wait for the device);
- ``"interval_end"``: every ``eval_interval`` iterations, ``{"epoch", "iteration",
  "max_iters", "epoch_fraction", "seconds" (since the epoch began), "metrics":
  {"loss": mean of the interval, ...}}`` (no event for an interval whose batches
  were all skipped);
- ``"epoch_end"``: the epoch's record, the dict appended to the history;
- ``"fit_end"``: ``{"epoch", "history"}``.

A trainer sends every event first to :func:`~timelayers.training.history.record_history`,
then to :func:`step_schedule`, then to its progress display (:mod:`.progress`), then
to its ``callbacks`` in order. A callback may set ``trainer.stop_training = True``
to stop after the current epoch.
"""

from __future__ import annotations

import math

__all__ = ["SaveBest", "step_schedule"]


def step_schedule(trainer, event, info) -> None:
    """Callback (always second): step the trainer's schedule with each epoch's record."""
    if event == "epoch_end" and trainer.schedule is not None:
        trainer.schedule.step(info)


class SaveBest:
    """Callback: save the model (``model.save(path)``) whenever ``monitor``
    improves, the book's "keep the best parameters" step.

    The best value so far is read from the trainer's history, so it survives a
    resume.

    Parameters
    ----------
    path : str or Path
    monitor : str, default "val_perplexity"
    mode : {"min", "max"}, default "min"
    """

    def __init__(self, path, monitor="val_perplexity", mode="min"):
        if mode not in ("min", "max"):
            raise ValueError(f"SaveBest: argument 'mode' expected 'min' or 'max', got {mode!r}")
        self.path = path
        self.monitor = monitor
        self.mode = mode

    def __call__(self, trainer, event, info):
        if event != "epoch_end" or info.get(self.monitor) is None:
            return
        value = float(info[self.monitor])
        if math.isnan(value):
            return
        earlier = [float(v) for v in trainer.history.get(self.monitor, [])[:-1]
                   if v is not None and not math.isnan(float(v))]
        if not earlier or (value < min(earlier) if self.mode == "min" else value > max(earlier)):
            trainer.model.save(self.path)

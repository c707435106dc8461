"""Learning-rate schedules, stepped once at the end of every epoch.

A schedule holds the optimizer and changes its ``lr`` attribute. The trainers call
``schedule.step(metrics)`` after each epoch's evaluation, with ``metrics`` the
epoch's record (``{"loss": ..., "val_perplexity": ..., ...}``).

- :class:`StepDecay`: ``lr *= gamma`` every ``step_size`` epochs.
- :class:`ReduceOnPlateau`: ``lr /= factor`` when the monitored validation score
  did not improve, the recipe of the book's better language model (divide the
  learning rate by 4 whenever the validation perplexity does not go down).
- :class:`WarmupCosine`: a linear warm-up then a cosine decay, the usual
  Transformer schedule; counted in epochs, or in iterations with the
  :func:`step_each_iteration` callback.

Both save and restore their state with ``state_dict`` / ``load_state_dict`` (the
trainers put it in the training checkpoint).
"""

from __future__ import annotations

import math

from .errors import CheckpointError

__all__ = ["Schedule", "StepDecay", "ReduceOnPlateau", "WarmupCosine", "step_each_iteration",
           "SCHEDULES", "schedule_from_state"]

SCHEDULES: dict = {}


class Schedule:
    """Base class: ``step(metrics=None)`` once per epoch; JSON-able state.

    ``_args`` names the constructor arguments (besides the optimizer) and
    ``_state`` the counters that change as it steps.
    """

    _args: tuple = ()
    _state: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        SCHEDULES[cls.__name__] = cls

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self, metrics=None):
        """Called at the end of an epoch with the epoch's metrics (a dict, a number
        or None). Changes ``optimizer.lr`` when due; returns the new ``lr``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"type": class name, "args": {...}, "state": {...}}``, all JSON-able."""
        return {"type": type(self).__name__,
                "args": {a: getattr(self, a) for a in self._args},
                "state": {s: getattr(self, s) for s in self._state}}

    def load_state_dict(self, state: dict) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("type", name) != name:
            raise CheckpointError(f"{name}: the checkpoint holds a "
                                  f"{state.get('type') if isinstance(state, dict) else state!r} "
                                  f"schedule")
        missing = [s for s in self._state if s not in state.get("state", {})]
        if missing:
            raise CheckpointError(f"{name}: schedule state lacks {missing}")
        for a, v in state.get("args", {}).items():
            if a in self._args:
                setattr(self, a, v)
        for s in self._state:
            setattr(self, s, state["state"][s])

    def __repr__(self):
        args = ", ".join(f"{a}={getattr(self, a)!r}" for a in self._args)
        return f"{type(self).__name__}({args})"


def schedule_from_state(state: dict, optimizer) -> Schedule:
    """Rebuild the schedule that :meth:`Schedule.state_dict` describes, on ``optimizer``."""
    cls = SCHEDULES.get(state.get("type")) if isinstance(state, dict) else None
    if cls is None:
        raise CheckpointError(f"unknown schedule {str(state)[:80]}")
    args = state.get("args", {})
    if not isinstance(args, dict):
        raise CheckpointError(f"{cls.__name__} schedule: 'args' should be a JSON object, "
                              f"got {str(args)[:60]}")
    try:
        schedule = cls(optimizer, **args)
        schedule.load_state_dict(state)
    except (TypeError, ValueError, KeyError) as exc:  # OptionError is a ValueError
        raise CheckpointError(f"{cls.__name__} schedule state cannot be restored: "
                              f"{exc}") from None
    return schedule


class StepDecay(Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    After epoch ``k`` (counting from 1) the rate is multiplied when
    ``k % step_size == 0``, so without other changes
    ``lr = lr0 * gamma ** (epochs // step_size)``.

    Parameters
    ----------
    optimizer : Optimizer
        Anything with a mutable ``lr``.
    step_size : int
    gamma : float, default 0.1
    """

    _args = ("step_size", "gamma")
    _state = ("epoch",)

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        if int(step_size) < 1:
            raise ValueError(f"StepDecay: argument 'step_size' expected an integer >= 1, "
                             f"got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        self.epoch = 0

    def step(self, metrics=None):
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.optimizer.lr *= self.gamma
        return self.optimizer.lr


class ReduceOnPlateau(Schedule):
    """Divide the learning rate by ``factor`` when ``monitor`` stops improving (the
    book's better language model, ch. 6: ``lr /= 4`` when the validation perplexity
    does not go down).

    Parameters
    ----------
    optimizer : Optimizer
    factor : float, default 4.0
    patience : int, default 0
        The rate is divided after ``patience + 1`` epochs in a row without
        improvement (a NaN score is none), then the count starts again.
    monitor : str, default "val_perplexity"
        The key read from :meth:`step`'s metrics dict (a bare number is used as is).
    mode : {"min", "max"}, default "min"
        Lower is better (perplexity, loss) or higher is better (accuracy).
    min_lr : float, default 0.0
        The rate is never divided below it.
    """

    _args = ("factor", "patience", "monitor", "mode", "min_lr")
    _state = ("best", "bad_epochs", "reductions")

    def __init__(self, optimizer, factor=4.0, patience=0, monitor="val_perplexity", mode="min",
                 min_lr=0.0):
        super().__init__(optimizer)
        if not float(factor) > 1.0:
            raise ValueError(f"ReduceOnPlateau: argument 'factor' expected a number > 1 (the "
                             f"learning rate is divided by it), got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceOnPlateau: argument 'mode' expected 'min' or 'max', "
                             f"got {mode!r}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.monitor = monitor
        self.mode = mode
        self.min_lr = float(min_lr)
        self.best = None
        self.bad_epochs = 0
        self.reductions = 0

    def _improved(self, value):
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def step(self, metrics=None):
        if isinstance(metrics, dict):
            if self.monitor not in metrics:
                raise KeyError(f"ReduceOnPlateau: metric {self.monitor!r} is not among "
                               f"{sorted(metrics)}; pass an eval_fn that returns it")
            value = metrics[self.monitor]
        elif metrics is None:
            raise ValueError(f"ReduceOnPlateau.step: needs the value of {self.monitor!r}")
        else:
            value = metrics
        value = float(value)
        if self._improved(value):
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.optimizer.lr = max(self.optimizer.lr / self.factor, self.min_lr)
                self.reductions += 1
                self.bad_epochs = 0
        return self.optimizer.lr


class WarmupCosine(Schedule):
    """Linear warm-up to ``peak_lr`` at step ``warmup_steps``, then half a cosine down
    to ``min_lr`` at step ``total_steps`` (the rates: :meth:`lr_at`). The constructor
    sets ``optimizer.lr`` to step 1's; each :meth:`advance` moves to the next step's.

    A step is an epoch (the trainers call :meth:`step` after each), or with
    ``per="iteration"`` an iteration: put :func:`step_each_iteration` among the
    trainer's callbacks, also when resuming (``Trainer.resume(path,
    callbacks=[step_each_iteration])``); :meth:`step` then changes nothing.

    Parameters
    ----------
    optimizer : Optimizer
    warmup_steps : int >= 0
    total_steps : int >= max(warmup_steps, 1)
    min_lr : float, default 0.0
    per : {"epoch", "iteration"}, default "epoch"
    peak_lr : float, optional
        Defaults to ``optimizer.lr`` at construction.
    """

    _args = ("warmup_steps", "total_steps", "min_lr", "per", "peak_lr")
    _state = ("steps",)

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, per="epoch",
                 peak_lr=None):
        super().__init__(optimizer)
        if int(warmup_steps) < 0 or int(total_steps) < max(int(warmup_steps), 1):
            raise ValueError(f"WarmupCosine: arguments 'warmup_steps' and 'total_steps' expected "
                             f"0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                             f"{warmup_steps!r} and {total_steps!r}")
        if per not in ("epoch", "iteration"):
            raise ValueError(f"WarmupCosine: argument 'per' expected 'epoch' or 'iteration', "
                             f"got {per!r}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr = float(min_lr)
        self.per = per
        self.peak_lr = float(optimizer.lr if peak_lr is None else peak_lr)
        self.steps = 0  # steps completed
        self.optimizer.lr = self.lr_at(1)

    def lr_at(self, k):
        """The learning rate of step ``k`` (counting from 1; ``W = warmup_steps``,
        ``K = total_steps``)::

            lr_k = peak_lr * k / W                                             k <= W
            lr_k = min_lr + (peak_lr - min_lr) * (1 + cos(pi (k - W) / (K - W))) / 2   W < k <= K
            lr_k = min_lr                                                       k > K
        """
        W, K = self.warmup_steps, self.total_steps
        if k <= W:
            return self.peak_lr * k / W
        if k > K:
            return self.min_lr
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (
            1.0 + math.cos(math.pi * (k - W) / (K - W)))

    def advance(self):
        """End a step: set ``optimizer.lr`` to the next step's rate and return it."""
        self.steps += 1
        self.optimizer.lr = self.lr_at(self.steps + 1)
        return self.optimizer.lr

    def step(self, metrics=None):
        if self.per == "epoch":
            return self.advance()
        return self.optimizer.lr

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.optimizer.lr = self.lr_at(self.steps + 1)


def step_each_iteration(trainer, event, info):
    """Trainer callback: advance the trainer's schedule after every iteration when
    it counts iterations (``WarmupCosine(..., per="iteration")``)."""
    schedule = trainer.schedule
    if event == "iteration_end" and getattr(schedule, "per", None) == "iteration":
        schedule.advance()

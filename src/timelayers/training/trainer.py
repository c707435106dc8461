"""The training loop: :class:`Trainer` (shuffled mini-batches) and its options.

An epoch is a run of training steps (:meth:`Trainer.train_step`: forward,
backward, clip, update) over the batches that ``fit`` makes; around them the
loop keeps the running losses and the non-finite check on the device
(:mod:`.meters`), and tells the callbacks (:mod:`.callbacks`): the history
(:mod:`.history`), the schedule, the progress display (:mod:`.progress`) and
the user's. Checkpoints are :mod:`.checkpoint`'s.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backend import get_array_module
from ..errors import NonFiniteLossError, OptionError
from ..optim import clip_grads
from ..threads import adapt_to_load
from .._checks import check_named
from . import checkpoint
from .callbacks import step_schedule
from .history import empty_history, record_history, save_history
from .meters import FiniteCheck, RunningLoss, default_check_interval
from .progress import progress_callback
from ..plot import plot_history

__all__ = ["Trainer", "FitOptions", "check_arguments", "MAX_ITERS_ENV", "iterations_cap"]

MAX_ITERS_ENV = "TIMELAYERS_MAX_ITERS"
"""The environment variable that gives ``fit``'s ``max_iters`` when it is not given
(a quick try of a script, the README's test); unset or empty: whole epochs."""


def iterations_cap(max_iters, where: str):
    """``max_iters`` checked, or when None the positive int in ``$TIMELAYERS_MAX_ITERS``
    (None when it is unset or empty); a bad value raises
    :class:`~timelayers.errors.OptionError` naming it."""
    if max_iters is not None:
        check_arguments(where, max_iters=max_iters)
        return max_iters
    text = os.environ.get(MAX_ITERS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise OptionError(f"${MAX_ITERS_ENV} expected a positive int (or unset), got {text!r}")
    return value

def check_arguments(where: str, **values) -> None:
    """Raise :class:`~timelayers.errors.OptionError` naming the first argument in
    ``values`` that is not of its kind (:data:`timelayers._checks.NAME_KINDS`)."""
    check_named(where, "argument", **values)


@dataclass(frozen=True)
class FitOptions:
    """The settings of one ``fit`` call (see :meth:`Trainer.fit`), resolved:
    ``max_grad`` is the trainer's when ``fit`` gave none, ``check_interval`` is
    the one the array module asks for when ``fit`` gave none."""

    max_epoch: int
    max_grad: float | None
    eval_interval: int | None
    eval_fn: Callable | None
    checkpoint: str | os.PathLike | None
    skip_nonfinite: bool
    check_interval: int | None
    checkpoint_every: int | None = None
    batch_size: int | None = None
    time_size: int | None = None


class Trainer:
    """Mini-batch training with shuffling, clipping, evaluation and checkpoints (the
    book's ``Trainer``, ch. 1; the batches: :meth:`fit`).

    Parameters
    ----------
    model : Model (or any object with params, grads, forward, backward)
    optimizer : Optimizer
    max_grad : float, optional
        Clip gradients to this global norm (``fit`` may override it).
    rng : numpy.random.Generator or int, optional
        Shuffling; an int is a seed. Default: a fresh unseeded generator.
    schedule : Schedule, optional
        Stepped after each epoch with the epoch's record.
    callbacks : sequence of callables ``(trainer, event, info)``
        See :mod:`timelayers.training.callbacks`.
    progress : bool or {"tqdm", "log"}, default True
        True: a tqdm bar on a terminal, else the book's lines; False: nothing
        (see :mod:`timelayers.training.progress`).

    Attributes
    ----------
    history : dict of lists
    epoch, iteration : int
        Epochs completed, and batches processed (all epochs).
    stop_training : bool
        Set by a callback to stop after the current epoch.
    """

    config_keys = ("max_grad",)  # the constructor arguments a checkpoint keeps
    history_keys = ("epoch", "iteration", "loss", "lr", "seconds", "skipped")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        checkpoint.TRAINERS[cls.__name__] = cls

    def __init__(self, model, optimizer, max_grad=None, rng=None, schedule=None, callbacks=(),
                 progress=True):
        check_arguments(type(self).__name__, max_grad=max_grad)
        self.model = model
        self.optimizer = optimizer
        self.max_grad = max_grad
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.schedule = schedule
        self.callbacks = list(callbacks)
        self.progress = progress
        self.history = empty_history(self.history_keys)
        self.epoch = 0
        self.iteration = 0
        self.stop_training = False
        self._display = None  # the progress callback of the running fit
        self._epoch_progress = None  # where a checkpoint stopped inside an epoch, to continue
        self._in_epoch = None  # while a mid-epoch checkpoint is written: what it records
        self._interrupted = False

    # -- public API ------------------------------------------------------------------
    def fit(self, x, t, max_epoch=10, batch_size=32, max_grad=None, eval_interval=20,
            eval_fn=None, checkpoint=None, skip_nonfinite=False, check_interval=None,
            max_iters=None, checkpoint_every=None):
        """Train until ``self.epoch == max_epoch``.

        Each epoch draws a permutation of the examples from ``rng`` and runs
        ``len(x) // batch_size`` training steps of ``batch_size`` examples (the
        last partial batch is dropped, as in the book).

        Parameters
        ----------
        x : array, shape (N, ...)
            Inputs (e.g. ids (N, T) for seq2seq, contexts (N, 2w) for word2vec).
        t : array, shape (N, ...)
            Targets, one per input.
        max_epoch : int, default 10
            Total number of epochs, counting those done before (by an earlier
            ``fit`` or a loaded checkpoint); the book's ``fit`` runs ``max_epoch``
            more on every call.
        batch_size : int, default 32
        max_grad : float, optional
            Overrides the trainer's ``max_grad``.
        eval_interval : int or None, default 20
            Record (and show) the running loss every this many iterations.
        eval_fn : callable ``model -> dict``, optional
            Called at the end of each epoch (e.g. ``{"val_perplexity": 135.2}``);
            its values go into the history and to the schedule.
        checkpoint : str or Path, optional
            Save a training checkpoint there after each epoch (atomically), and
            when training is interrupted (Ctrl-C, between two iterations: a
            second Ctrl-C stops at once) before raising ``KeyboardInterrupt``.
        skip_nonfinite : bool, default False
            Skip batches whose loss (or gradient norm) is not finite instead of
            raising :class:`NonFiniteLossError`. Needs a check at every
            iteration, which on a GPU makes each step wait for the device.
        check_interval : int, optional
            Check that the losses and gradient norms are finite every this many
            iterations (and at each epoch's end). Default: every iteration on
            NumPy (and with ``skip_nonfinite``), where it costs nothing; every
            ``eval_interval`` iterations on a GPU, where a check waits for the
            device. A non-finite loss stops training at the first check after it,
            before that iteration's update; with ``check_interval > 1`` the
            updates since the previous check have been made.
        max_iters : int, optional
            End every epoch after this many iterations (a short try of a
            recipe); default: ``$TIMELAYERS_MAX_ITERS``, else the whole epoch.
        checkpoint_every : int, optional
            Also save the checkpoint every this many iterations inside an epoch;
            :meth:`resume` (or :meth:`load_checkpoint`) then continues from that
            iteration, with the same batches, to the bit, as if uninterrupted
            (``fit`` must then be given the same ``batch_size`` and ``max_iters``).

        Returns
        -------
        dict
            ``self.history``.
        """
        name = f"{type(self).__name__}.fit"
        check_arguments(name, max_epoch=max_epoch, batch_size=batch_size,
                        max_grad=max_grad, eval_interval=eval_interval,
                        check_interval=check_interval, checkpoint_every=checkpoint_every)
        cap = iterations_cap(max_iters, name)
        n = len(x)
        if len(t) != n:
            raise ValueError(f"Trainer.fit: x has {n} examples, t has {len(t)}")
        max_iters = n // batch_size
        if max_iters < 1:
            raise ValueError(f"Trainer.fit: {n} examples are fewer than batch_size={batch_size}")
        if cap is not None:
            max_iters = min(max_iters, cap)
        xp = get_array_module(x)

        def batches(first=0):
            idx = self.rng.permutation(n)
            if xp is not np:
                idx = xp.asarray(idx)
            for i in range(first, max_iters):
                b = idx[i * batch_size:(i + 1) * batch_size]
                yield x[b], t[b]

        options = self._options(max_epoch, max_grad, eval_interval, eval_fn, checkpoint,
                                skip_nonfinite, check_interval, checkpoint_every, batch_size)
        return self._fit(batches, max_iters, options)

    def train_step(self, x, t, max_grad=None, check=None, check_now=False):
        """One training step: ``loss = model.forward(x, t)``, ``model.backward()``,
        clip the gradients to ``max_grad``, ``optimizer.update(params, grads)``.

        ``check`` (a :class:`~timelayers.training.meters.FiniteCheck`) gets the
        loss and the gradient norm; with ``check_now`` it is read after the
        forward and after the clip, and the step stops there when a sum is not
        finite: no backward after a non-finite loss, no update after either.

        Returns
        -------
        loss, problem
            The loss as the model returned it (not read to the host) and None,
            or the :class:`~timelayers.training.meters.NonFinite` that stopped
            the step.

        Before the step, the threads are fitted to the CPUs that other processes
        leave free (:func:`timelayers.threads.adapt_to_load`, once a second at most).
        """
        adapt_to_load()
        model = self.model
        loss = model.forward(x, t)
        if check is not None:
            check.losses.add(loss)
            if check_now and (problem := check.check_losses()) is not None:
                return loss, problem
        model.backward()
        grads = model.grads
        if max_grad is not None:
            norm = clip_grads(grads, max_grad)
            if check is not None:
                check.norms.add(norm)
                if check_now and (problem := check.check_norms()) is not None:
                    return loss, problem
        self.optimizer.update(model.params, grads)
        return loss, None

    def save_history(self, path) -> None:
        """Write ``history`` as JSON (atomically)."""
        save_history(self.history, path)

    def plot(self, ylim=None, path=None, title=None):
        """Draw the learning curve (needs matplotlib), as the book's ``Trainer.plot``:
        shown on screen when ``path`` is None, else written there as a PNG.

        Parameters
        ----------
        ylim : (bottom, top), optional
            The loss axis' limits (the book's ``ylim``).
        path : str or Path, optional
        title : str, optional

        Returns
        -------
        The path, or the matplotlib figure when shown.
        """
        if path is None and isinstance(ylim, (str, os.PathLike)):  # plot(path), the old order
            ylim, path = None, ylim
        return plot_history(self.history, path, title=title, ylim=ylim)

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, path) -> None:
        """Write a training checkpoint to ``path`` atomically (see
        :mod:`timelayers.training.checkpoint`); raises :class:`NonFiniteLossError`,
        writing nothing, when a parameter is not finite."""
        checkpoint.save_checkpoint(self, path)

    def load_checkpoint(self, path) -> None:
        """Restore a training checkpoint into this trainer: the model's params, the
        optimizer, the schedule (built from the checkpoint when the trainer has
        none), the epoch and iteration counters, the history and the random
        generators. Everything is checked before anything changes; a mismatch
        raises :class:`CheckpointError` naming the tensor or field."""
        checkpoint.load_checkpoint(self, path)

    @classmethod
    def resume(cls, path, **kwargs):
        """Build a trainer from a training checkpoint: the model (its class and
        config from the metadata), the optimizer and schedule from their saved
        state, then everything :meth:`load_checkpoint` restores.

        ``kwargs`` go to the constructor (``callbacks``, ``progress``; ``max_grad``
        defaults to the saved one). The random generators come from the checkpoint.
        """
        return checkpoint.resume(cls, path, **kwargs)

    def trainer_config(self) -> dict:
        """The constructor arguments a checkpoint keeps (``config_keys``)."""
        return {k: getattr(self, k) for k in self.config_keys}

    def checkpoint_extras(self):
        """``(tensors, fields)`` of the trainer's own state for a checkpoint (none here)."""
        return {}, {}

    def check_checkpoint_extras(self, tensors: dict, training: dict) -> None:
        """Raise :class:`~timelayers.errors.CheckpointError` unless what
        :meth:`checkpoint_extras` gave (``tensors`` without their
        ``"trainer_state."`` prefix; ``training``: all the checkpoint's training
        fields) fits this trainer; called before anything is restored, changes
        nothing (nothing to check here)."""

    def restore_checkpoint_extras(self, tensors: dict, training: dict) -> None:
        """Restore what :meth:`checkpoint_extras` gave (``training``: all the
        checkpoint's training fields)."""

    # -- the loop --------------------------------------------------------------------
    def _options(self, max_epoch, max_grad, eval_interval, eval_fn, checkpoint_path,
                 skip_nonfinite, check_interval, checkpoint_every=None,
                 batch_size=None, time_size=None) -> FitOptions:
        name = type(self).__name__
        if check_interval is None:
            on_host = get_array_module(*self.model.params[:1]) is np
            check_interval = default_check_interval(on_host, eval_interval, skip_nonfinite)
        elif skip_nonfinite and check_interval != 1:
            raise ValueError(f"{name}.fit: skip_nonfinite=True needs check_interval=1 (a batch "
                             f"is skipped before its update), got {check_interval}")
        return FitOptions(max_epoch=max_epoch,
                          max_grad=self.max_grad if max_grad is None else max_grad,
                          eval_interval=eval_interval, eval_fn=eval_fn,
                          checkpoint=checkpoint_path, skip_nonfinite=skip_nonfinite,
                          check_interval=check_interval, checkpoint_every=checkpoint_every,
                          batch_size=batch_size, time_size=time_size)

    def _fit(self, batches, max_iters, options: FitOptions):
        if self.epoch >= options.max_epoch:
            warnings.warn(f"{type(self).__name__}.fit: {self.epoch} epochs already done, "
                          f"max_epoch={options.max_epoch}; nothing to train (max_epoch counts "
                          f"all epochs, including earlier ones)", stacklevel=3)
            return self.history
        self._check_epoch_progress(max_iters, options)
        self.stop_training = False
        self._display = progress_callback(self.progress)
        self._emit("fit_start", {"epoch": self.epoch, "max_epoch": options.max_epoch})
        previous = self._catch_interrupts(options)
        try:
            while self.epoch < options.max_epoch and not self.stop_training:
                try:
                    self._run_epoch(batches, max_iters, options)
                except BaseException:
                    if self._display is not None:
                        self._display.close()
                    raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._interrupted = False
        self._emit("fit_end", {"epoch": self.epoch, "history": self.history})
        return self.history

    def _check_epoch_progress(self, max_iters, options):
        """Raise OptionError when a checkpoint stopped inside an epoch of another length
        or batch size than this fit's (its position would not mean the same batches)."""
        saved = self._epoch_progress
        if saved is None:
            return
        then = (saved["max_iters"], saved.get("batch_size"), saved.get("time_size"))
        now = (max_iters, options.batch_size, options.time_size)
        if then != now:
            def shape(iters, batch_size, time_size):
                size = "" if time_size is None else f", time_size={time_size}"
                return f"{iters} iterations of batch_size={batch_size}{size}"
            raise OptionError(
                f"{type(self).__name__}.fit: the checkpoint stopped at iteration "
                f"{saved['iterations']} of an epoch of {shape(*then)}; this fit's epoch has "
                f"{shape(*now)}: continue with the same sizes and max_iters")

    def _catch_interrupts(self, options):
        """With a checkpoint to write, make the first Ctrl-C stop training at the end of
        the running iteration (the second stops at once); returns the handler to put
        back, or None when nothing was changed (no checkpoint, not the main thread,
        or a handler that is not Python's default)."""
        if (options.checkpoint is None or threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            return None

        def interrupt(signum, frame):
            self._interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        self._interrupted = False
        return signal.signal(signal.SIGINT, interrupt)

    def _run_epoch(self, batches, max_iters, options: FitOptions):
        model = self.model
        epoch = self.epoch + 1
        if hasattr(model, "train"):
            model.train()
        resumed, self._epoch_progress = self._epoch_progress, None
        xp = get_array_module(*model.params[:1])
        epoch_loss, interval_loss = RunningLoss(xp), RunningLoss(xp)
        check = FiniteCheck(xp, options.check_interval)
        if resumed is None:
            first, skipped, lr, elapsed = 0, 0, self.optimizer.lr, 0.0
            self._start_epoch()
        else:
            first, skipped, lr, elapsed = (resumed["iterations"], resumed["skipped"],
                                           resumed["lr"], resumed["seconds"])
            self.rng.bit_generator.state = resumed["epoch_rng_state"]
            for meter, key in ((epoch_loss, "loss"), (interval_loss, "interval_loss")):
                meter.sum = xp.asarray(resumed[f"{key}_sum"], dtype=np.float64)
                meter.count = resumed[f"{key}_count"]
            self._continue_epoch(resumed)
        epoch_rng_state = self.rng.bit_generator.state  # the batches' order is drawn from it
        self._emit("epoch_start", {"epoch": epoch, "max_iters": max_iters, "first": first})
        start = time.perf_counter() - elapsed
        every = options.checkpoint_every
        for it, (xb, tb) in enumerate(batches(first), first + 1):
            save_now = it < max_iters and ((every and it % every == 0) or self._interrupted)
            loss, problem = self.train_step(xb, tb, options.max_grad, check,
                                            check.due(it, max_iters) or save_now)
            self.iteration += 1
            if problem is not None:
                if not options.skip_nonfinite:
                    raise NonFiniteLossError(self._nonfinite_message(problem, epoch, it,
                                                                     max_iters, options))
                skipped += 1
                self._after_skip()
            else:
                epoch_loss.add(loss)
                interval_loss.add(loss)
            self._emit("iteration_end", {"epoch": epoch, "iteration": it, "loss": loss})
            if options.eval_interval and it % options.eval_interval == 0:
                if interval_loss.count:
                    self._emit("interval_end", {
                        "epoch": epoch, "iteration": it, "max_iters": max_iters,
                        "epoch_fraction": epoch - 1 + it / max_iters,
                        "seconds": time.perf_counter() - start,
                        "metrics": self.loss_metrics(interval_loss.mean())})
                interval_loss.reset()
            if it < max_iters and (save_now or self._interrupted):
                self._save_in_epoch(options, check, {
                    "iterations": it, "max_iters": max_iters, "batch_size": options.batch_size,
                    "time_size": options.time_size,
                    "skipped": skipped, "lr": lr, "seconds": time.perf_counter() - start,
                    "epoch_rng_state": epoch_rng_state,
                    "loss_sum": epoch_loss.total(), "loss_count": epoch_loss.count,
                    "interval_loss_sum": interval_loss.total(),
                    "interval_loss_count": interval_loss.count})
        record = {"epoch": epoch, "iteration": self.iteration,
                  **self.loss_metrics(epoch_loss.mean()), "lr": lr,
                  "seconds": time.perf_counter() - start, "skipped": skipped}
        self._end_epoch()
        if options.eval_fn is not None:
            self._add_eval(record, options.eval_fn(model))
        self.epoch = epoch
        self._emit("epoch_end", record)
        if options.checkpoint is not None:
            self.save_checkpoint(options.checkpoint)
        if self._interrupted:
            raise KeyboardInterrupt(f"checkpoint {str(options.checkpoint)!r} written after "
                                    f"epoch {epoch}")

    def _save_in_epoch(self, options, check, progress):
        """Write the checkpoint of an unfinished epoch (``progress``: where it stands),
        when ``fit`` has one; after a Ctrl-C, then raise KeyboardInterrupt. Nothing is
        written when a loss or gradient norm since the last check is not finite.
        Every process of a data-parallel run comes here alike (the state a checkpoint
        holds may be gathered from all), and only the one with a checkpoint writes."""
        finite = check.check_losses() is None and check.check_norms() is None
        if finite:
            self._in_epoch = progress
            try:
                self._snapshot_in_epoch()
                if options.checkpoint is not None:
                    self.save_checkpoint(options.checkpoint)
            finally:
                self._in_epoch = None
        if self._interrupted:
            where = (f"checkpoint {str(options.checkpoint)!r} written at epoch {self.epoch + 1}, "
                     f"iteration {progress['iterations']} of {progress['max_iters']}"
                     if finite else "no checkpoint written (a non-finite loss since the last "
                                    "check)")
            raise KeyboardInterrupt(where)

    def _continue_epoch(self, progress):
        """Set the model up to continue the epoch a checkpoint stopped in
        (``progress``: its record); here nothing to do."""

    def _snapshot_in_epoch(self):
        """Take what a checkpoint inside an epoch keeps besides ``_in_epoch``; here
        nothing."""

    def _nonfinite_message(self, problem, epoch, it, max_iters, options) -> str:
        advice = ("Lower the learning rate, clip gradients (max_grad=...), or pass "
                  "skip_nonfinite=True to skip such batches.")
        if problem.steps == 1:
            return (f"{type(self).__name__}: {problem.describe()} at epoch {epoch}, iteration "
                    f"{it} (of {max_iters}); the parameters were not updated. {advice}")
        every = options.check_interval or max_iters
        return (f"{type(self).__name__}: {problem.describe()} at epoch {epoch}, in iterations "
                f"{it - problem.steps + 1}..{it} (of {max_iters}); it was found late: the "
                f"losses are checked every {every} iterations here (check_interval), so the "
                f"updates before iteration {it} were made and the parameters may not be "
                f"finite. {advice} check_interval=1 stops at the first such batch.")

    # -- what a subclass changes --------------------------------------------------------
    def loss_metrics(self, mean_loss: float) -> dict:
        """What the history and the display show for a mean loss: ``{"loss": ...}``."""
        return {"loss": mean_loss}

    def _start_epoch(self):
        pass

    def _end_epoch(self):
        pass

    def _after_skip(self):
        pass

    # -- bookkeeping -------------------------------------------------------------------------
    def _emit(self, event, info):
        listeners = [record_history, step_schedule]
        if self._display is not None:
            listeners.append(self._display)
        for callback in listeners + self.callbacks:
            callback(self, event, info)

    def _add_eval(self, record, result):
        if result is None:
            return
        if not isinstance(result, dict):
            result = {"eval": result}
        clash = [k for k in result if k in record or k.startswith("interval_")]
        if clash:
            raise ValueError(f"{type(self).__name__}: eval_fn returned keys {clash} that the "
                             f"trainer uses itself; rename them (e.g. 'val_loss')")
        for k, v in result.items():
            record[k] = float(v) if isinstance(v, (int, float, np.number)) else v


checkpoint.TRAINERS[Trainer.__name__] = Trainer

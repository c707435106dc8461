"""Truncated-BPTT training of a stateful language model: :class:`RnnlmTrainer`.

The corpus, ``xs`` and ``ts`` of ``L`` tokens, is read as ``batch_size``
parallel streams starting at offsets ``i * (L // batch_size)``; each iteration
takes the next ``time_size`` tokens of every stream (wrapping around the end),
``xs (N, T)`` and ``ts (N, T)``, and the model keeps its hidden state from one
iteration to the next. An epoch is ``L // (batch_size * time_size)``
iterations; the stream position (``time_idx``) carries on from epoch to epoch,
as in the book, and from one ``fit`` to the next.
"""

from __future__ import annotations

import math

from ..backend import get_array_module
from ..errors import CheckpointError
from .._checks import KINDS
from .trainer import Trainer, check_arguments, iterations_cap

__all__ = ["RnnlmTrainer"]


class RnnlmTrainer(Trainer):
    """Truncated-BPTT training of a stateful language model on one long corpus (the
    book's ``RnnlmTrainer``, ch. 5; the batches: the module docstring). The history has
    ``"perplexity"`` (``exp`` of the loss) after ``"loss"``.

    The model's recurrent state is reset at the start of the first epoch, then
    carried across iterations and, as in the book, across epochs: the trainer
    keeps it at each epoch's end (:attr:`carried_state`, in the checkpoint too, so a
    resumed run continues exactly) and restores it at the next start, so an
    ``eval_fn`` that replaces it (validation perplexity) does no harm. It is reset
    instead with ``reset_each_epoch=True``, after a skipped non-finite batch, and
    when a ``fit`` has another ``batch_size``. Unlike the book's, a second ``fit``
    continues the run: ``time_idx`` goes on, ``max_epoch`` counts all epochs.

    Parameters
    ----------
    model, optimizer, max_grad, rng, schedule, callbacks, progress
        As for :class:`Trainer` (``rng`` is not used for batching here).
    reset_each_epoch : bool, default False

    Examples
    --------
    >>> trainer = RnnlmTrainer(model, SGD(lr=20.0), max_grad=0.25)  # doctest: +SKIP
    >>> trainer.fit(corpus[:-1], corpus[1:], max_epoch=4, batch_size=20, time_size=35,
    ...             eval_fn=lambda m: {"val_perplexity": perplexity(m, corpus_val)})
    """

    config_keys = ("max_grad", "reset_each_epoch")
    history_keys = ("epoch", "iteration", "loss", "perplexity", "lr", "seconds", "skipped")

    def __init__(self, model, optimizer, max_grad=None, rng=None, schedule=None, callbacks=(),
                 progress=True, reset_each_epoch=False):
        super().__init__(model, optimizer, max_grad=max_grad, rng=rng, schedule=schedule,
                         callbacks=callbacks, progress=progress)
        check_arguments(type(self).__name__, reset_each_epoch=reset_each_epoch)
        self.reset_each_epoch = reset_each_epoch
        self.time_idx = 0
        self._carried_state = None
        self._state_batch_size = None  # the batch size the carried state was made with
        self._batch_size = None
        self._in_epoch_state = None  # the model's state to continue an unfinished epoch with
        self._in_epoch_snapshot = {}  # the model's state at the last checkpoint inside an epoch

    @property
    def carried_state(self):
        """The recurrent state the next epoch starts from (``model.get_state()`` at
        the end of the last epoch), or None."""
        return self._carried_state

    def fit(self, xs, ts, max_epoch=10, batch_size=20, time_size=35, max_grad=None,
            eval_interval=20, eval_fn=None, checkpoint=None, skip_nonfinite=False,
            check_interval=None, max_iters=None, checkpoint_every=None):
        """Train until ``self.epoch == max_epoch``.

        Parameters
        ----------
        xs : int array, shape (L,)
            The corpus inputs (``corpus[:-1]``).
        ts : int array, shape (L,)
            The targets (``corpus[1:]``).
        max_epoch : int, default 10
            Total number of epochs.
        batch_size : int, default 20
            Parallel streams ``N``.
        time_size : int, default 35
            Steps per update ``T``.
        max_grad, eval_interval, eval_fn, checkpoint, skip_nonfinite, check_interval
            As for :meth:`Trainer.fit`.
        max_iters, checkpoint_every
            As for :meth:`Trainer.fit`: an epoch cut at ``max_iters`` iterations
            reads ``max_iters * time_size`` tokens of every stream, and the next
            epoch continues from there.

        Returns
        -------
        dict
            ``self.history``.
        """
        name = f"{type(self).__name__}.fit"
        check_arguments(name, max_epoch=max_epoch, batch_size=batch_size,
                        time_size=time_size, max_grad=max_grad, eval_interval=eval_interval,
                        check_interval=check_interval, checkpoint_every=checkpoint_every)
        cap = iterations_cap(max_iters, name)
        if xs.ndim != 1 or ts.shape != xs.shape:
            raise ValueError(f"RnnlmTrainer.fit: expected xs and ts of the same shape (L,), got "
                             f"{tuple(xs.shape)} and {tuple(ts.shape)}")
        data_size = xs.shape[0]
        max_iters = data_size // (batch_size * time_size)
        if max_iters < 1:
            raise ValueError(f"RnnlmTrainer.fit: a corpus of {data_size} tokens is shorter than "
                             f"batch_size x time_size = {batch_size * time_size}")
        if cap is not None:
            max_iters = min(max_iters, cap)
        xp = get_array_module(xs)
        jump = data_size // batch_size
        base = (xp.arange(batch_size) * jump)[:, None] + xp.arange(time_size)[None, :]  # (N, T)
        pos = xp.empty_like(base)
        self._batch_size = batch_size

        def batches(first=0):
            for _ in range(first, max_iters):
                xp.add(base, self.time_idx, out=pos)
                xp.remainder(pos, data_size, out=pos)
                self.time_idx += time_size
                yield xs[pos], ts[pos]  # (N, T) each

        options = self._options(max_epoch, max_grad, eval_interval, eval_fn, checkpoint,
                                skip_nonfinite, check_interval, checkpoint_every, batch_size,
                                time_size)
        return self._fit(batches, max_iters, options)

    def loss_metrics(self, mean_loss: float) -> dict:
        """``{"loss": ..., "perplexity": exp(loss)}`` (inf when exp overflows)."""
        try:
            perplexity = math.exp(mean_loss)
        except OverflowError:
            perplexity = math.inf
        return {"loss": mean_loss, "perplexity": perplexity}

    def checkpoint_extras(self):
        """The carried state as tensors (inside an epoch, the model's state too, as
        ``"in_epoch.<layer>.h"``); ``time_idx`` and the state's batch size as fields."""
        tensors = dict(self._carried_state or {})
        if self._in_epoch is not None:
            tensors.update({_IN_EPOCH + k: v for k, v in self._in_epoch_snapshot.items()})
        return tensors, {
            "time_idx": self.time_idx, "has_state": self._carried_state is not None,
            "state_batch_size": self._state_batch_size}

    def check_checkpoint_extras(self, tensors, training):
        """Raise :class:`CheckpointError` unless the saved ``time_idx`` (an int in
        ``[0, 2**62)``), ``has_state`` (a bool), ``state_batch_size`` (None or a
        positive int) and carried state fit this trainer's model: with
        ``has_state``, ``tensors`` holds the ``h`` (and, for an LSTM, ``c``) of
        every stateful layer, each of shape (state_batch_size, H), finite, of the
        params' dtype; without it, none. Changes nothing."""
        in_epoch = {k[len(_IN_EPOCH):]: v for k, v in tensors.items() if k.startswith(_IN_EPOCH)}
        tensors = {k: v for k, v in tensors.items() if not k.startswith(_IN_EPOCH)}
        progress = training.get("epoch_progress")
        if progress is not None:
            rows = progress.get("batch_size") if isinstance(progress, dict) else None
            self._check_carried_state(in_epoch, rows)
        elif in_epoch:
            raise CheckpointError(f"the state {sorted(in_epoch)[:3]} of an unfinished epoch is "
                                  f"saved, but no 'epoch_progress'")
        missing = [k for k in ("time_idx", "has_state", "state_batch_size") if k not in training]
        if missing:
            raise CheckpointError(f"training metadata lacks {missing}")
        time_idx, rows = training["time_idx"], training["state_batch_size"]
        for key, ok, expected in [
                ("time_idx", KINDS["non-negative int"](time_idx) and time_idx < _MAX_TIME_IDX,
                 "an integer in [0, 2**62)"),
                ("has_state", KINDS["bool"](training["has_state"]), "true or false"),
                ("state_batch_size", rows is None
                 or (KINDS["positive int"](rows) and rows < _MAX_TIME_IDX),
                 "null or a positive integer")]:
            if not ok:
                raise CheckpointError(f"training {key!r} should be {expected}, got "
                                      f"{training[key]!r:.60}")
        if not training["has_state"]:
            if tensors:
                raise CheckpointError(f"the carried state {sorted(tensors)} is saved, but "
                                      f"'has_state' is false")
            return
        self._check_carried_state(tensors, training.get("state_batch_size"))

    def _check_carried_state(self, tensors, rows):
        """The carried state ``tensors`` ({"rnn.h": (rows, H), ...}) against the model."""
        want = {}
        for name, layer in self.model._stateful_layers():
            has_c = getattr(getattr(layer, "cell", None), "has_cell_state", False)
            for key in ("h", "c") if has_c else ("h",):
                want[f"{name}.{key}"] = (rows, getattr(layer, "hidden_size", None))
        if set(tensors) != set(want):
            raise CheckpointError(f"the carried state holds {sorted(tensors)}, the "
                                  f"{type(self.model).__name__}'s stateful layers need "
                                  f"{sorted(want)}")
        dtype = self.model.params[0].dtype if self.model.params else None
        for key, (n, h) in want.items():
            t = tensors[key]
            if t.ndim != 2 or t.shape[0] != n or (h is not None and t.shape[1] != h):
                raise CheckpointError(f"carried state {key!r} has shape {tuple(t.shape)}, "
                                      f"expected ({n}, {h if h is not None else 'H'})")
            if dtype is not None and t.dtype != dtype:
                raise CheckpointError(f"carried state {key!r} has dtype {t.dtype}, the "
                                      f"model's params {dtype}")
            if not bool(get_array_module(t).isfinite(t).all()):
                raise CheckpointError(f"carried state {key!r} has NaN or infinite values")

    def restore_checkpoint_extras(self, tensors, training):
        self._in_epoch_state = {k[len(_IN_EPOCH):]: v for k, v in tensors.items()
                                if k.startswith(_IN_EPOCH)}
        tensors = {k: v for k, v in tensors.items() if not k.startswith(_IN_EPOCH)}
        self.time_idx = int(training.get("time_idx", 0))
        self._carried_state = dict(tensors) if training.get("has_state") else None
        self._state_batch_size = training.get("state_batch_size")

    def _start_epoch(self):
        if (self.reset_each_epoch or self._carried_state is None
                or self._state_batch_size != self._batch_size):
            self.model.reset_state()
        else:
            self.model.set_state(self._carried_state)

    def _snapshot_in_epoch(self):
        self._in_epoch_snapshot = self.model.get_state()

    def _continue_epoch(self, progress):
        self.model.set_state(self._in_epoch_state)
        self._in_epoch_state = None

    def _end_epoch(self):
        self._carried_state = self.model.get_state()
        self._state_batch_size = self._batch_size

    def _after_skip(self):
        self.model.reset_state()


_IN_EPOCH = "in_epoch."
"""The prefix of the model's recurrent state in a checkpoint written inside an epoch."""

_MAX_TIME_IDX = 2**62  # time_idx + a position stays within int64


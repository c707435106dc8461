"""Trainers: the loop between a model and a trained model, with checkpoints.

:class:`Trainer` feeds shuffled mini-batches (classifiers, word2vec, seq2seq);
:class:`RnnlmTrainer` feeds a corpus in truncated-BPTT order to a stateful
language model. Both take a model (``params``, ``grads``, ``forward(x, t) ->
loss``, ``backward()``) and an optimizer from :mod:`timelayers.optim`, and give:

- gradient clipping by global norm (``max_grad``);
- an evaluation hook per epoch, ``eval_fn(model) -> dict`` (e.g.
  ``{"val_perplexity": 135.2}``), whose values go into the history and to the
  learning-rate schedule (:mod:`timelayers.schedules`);
- a history, a dict of per-epoch lists: ``"epoch"``, ``"iteration"`` (batches
  done so far), ``"loss"`` (mean training loss of the epoch), ``"perplexity"``
  (``RnnlmTrainer``: ``exp`` of it), ``"lr"`` (the rate used during the epoch),
  ``"seconds"``, ``"skipped"`` (non-finite batches skipped), the eval keys; and
  the running loss every ``eval_interval`` iterations as ``"interval_epoch"``
  (fractional epochs) / ``"interval_loss"``. ``save_history(path)`` writes it as
  JSON, ``plot(path)`` as a PNG learning curve;
- progress: a tqdm bar per epoch on a terminal, plain ``logging`` lines (logger
  ``"timelayers"``, level INFO) when stderr is not a terminal, nothing with
  ``progress=False``. The library prints nothing else;
- non-finite losses stop training with :class:`NonFiniteLossError` naming the
  epoch and iteration, before the parameters are touched (or the batch is
  skipped with ``skip_nonfinite=True``);
- training checkpoints: one safetensors file with the model's params, the
  optimizer's arrays (``"optimizer.m.0"``...), and JSON metadata with the epoch,
  iteration, history, optimizer hyper-parameters, schedule and every random
  generator's state, written atomically after each epoch with
  ``fit(..., checkpoint=path)``. A run stopped after epoch ``k`` and resumed
  (``Trainer.resume(path)`` or ``trainer.load_checkpoint(path)``, then
  ``fit(..., max_epoch=total)``) gives the same losses, to the bit, as an
  uninterrupted run.

``max_epoch`` is the total number of epochs, counting those done before (by an
earlier ``fit`` call or a loaded checkpoint): ``fit`` trains epochs
``trainer.epoch + 1 .. max_epoch``. (The book's ``fit`` runs ``max_epoch`` more
epochs on every call.)

Callbacks are callables ``callback(trainer, event, info)``; ``event`` is
``"fit_start"``, ``"epoch_start"``, ``"iteration_end"`` (info: epoch, iteration,
loss), ``"epoch_end"`` (info: the epoch's history record) or ``"fit_end"``. A
callback may set ``trainer.stop_training = True`` to stop after the current
epoch. :class:`SaveBest` is one.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import warnings

import numpy as np

from .backend import get_array_module
from .errors import CheckpointError, NonFiniteLossError
from .models.base import config_dict, read_metadata
from .optim import clip_grads, optimizer_from_state
from .schedules import schedule_from_state
from .serialization import atomic_write, load_tensors

__all__ = ["Trainer", "RnnlmTrainer", "SaveBest", "save_history", "load_history"]

logger = logging.getLogger("timelayers")

_OPT_PREFIX = "optimizer."
_STATE_PREFIX = "trainer_state."
_BASE_KEYS = ("epoch", "iteration", "loss", "lr", "seconds", "skipped")


# -- helpers -------------------------------------------------------------------------
def _jsonable(value, nonfinite_to_none=False):
    """Deep-convert numpy scalars/arrays (e.g. in ``bit_generator.state``) to JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, nonfinite_to_none) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, nonfinite_to_none) for v in value]
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        value = value.item()
    if nonfinite_to_none and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def save_history(history: dict, path) -> None:
    """Write a history dict as JSON, atomically. Non-finite numbers become ``null``."""
    text = json.dumps(_jsonable(history, nonfinite_to_none=True), indent=1)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_history(path) -> dict:
    """Read a history written by :func:`save_history` (``null`` comes back as NaN)."""
    with open(path, encoding="utf-8") as f:
        history = json.load(f)
    return {k: [math.nan if v is None else v for v in vals] if isinstance(vals, list) else vals
            for k, vals in history.items()}


def _mean_exp(mean):
    try:
        return math.exp(mean)
    except OverflowError:
        return math.inf


def _generators(trainer):
    """The random generators a checkpoint restores: (key, name, generator)."""
    seen = {id(trainer.rng)}
    out = []
    model_rng = getattr(trainer.model, "rng", None)
    if isinstance(model_rng, np.random.Generator) and id(model_rng) not in seen:
        seen.add(id(model_rng))
        out.append(("model_rng_state", None, model_rng))
    named = getattr(trainer.model, "named_layers", None)
    if callable(named):
        for lname, layer in named():
            g = getattr(layer, "rng", None)
            if isinstance(g, np.random.Generator) and id(g) not in seen:
                seen.add(id(g))
                out.append(("layer_rng_states", lname, g))
    return out


def _check_rng_state(generator, state, what, path):
    try:
        probe = type(generator.bit_generator)()
        probe.state = state
    except Exception as exc:  # ValueError, TypeError, KeyError from numpy
        raise CheckpointError(f"checkpoint {str(path)!r}: {what} cannot be restored: {exc}") \
            from None


# -- trainers ------------------------------------------------------------------------
class Trainer:
    """Mini-batch training with shuffling, clipping, evaluation and checkpoints.

    Each epoch draws a permutation of the examples from ``rng`` and runs
    ``len(x) // batch_size`` iterations of ``batch_size`` examples (the last
    partial batch is dropped, as in the book): ``loss = model.forward(xb, tb)``,
    ``model.backward()``, clip, ``optimizer.update(model.params, model.grads)``.

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
    progress : bool or {"tqdm", "log"}, default True
        True: a tqdm bar if stderr is a terminal, else log lines.

    Attributes
    ----------
    history : dict of lists
    epoch : int
        Epochs completed.
    iteration : int
        Batches processed (all epochs).
    stop_training : bool
        Set by a callback to stop after the current epoch.
    """

    _trainer_config = ("max_grad",)

    def __init__(self, model, optimizer, max_grad=None, rng=None, schedule=None, callbacks=(),
                 progress=True):
        self.model = model
        self.optimizer = optimizer
        self.max_grad = max_grad
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.schedule = schedule
        self.callbacks = list(callbacks)
        self.progress = progress
        self.history = {k: [] for k in self._history_keys()}
        self.history.update(interval_epoch=[], interval_loss=[])
        self.epoch = 0
        self.iteration = 0
        self.stop_training = False

    def _history_keys(self):
        return _BASE_KEYS

    # -- public API ------------------------------------------------------------------
    def fit(self, x, t, max_epoch=10, batch_size=32, max_grad=None, eval_interval=20,
            eval_fn=None, checkpoint=None, skip_nonfinite=False):
        """Train until ``self.epoch == max_epoch``.

        Parameters
        ----------
        x : array, shape (N, ...)
            Inputs (e.g. ids (N, T) for seq2seq, contexts (N, 2w) for word2vec).
        t : array, shape (N, ...)
            Targets, one per input.
        max_epoch : int, default 10
            Total number of epochs (see the module docstring).
        batch_size : int, default 32
        max_grad : float, optional
            Overrides the trainer's ``max_grad``.
        eval_interval : int or None, default 20
            Record (and log) the running loss every this many iterations.
        eval_fn : callable ``model -> dict``, optional
            Called at the end of each epoch.
        checkpoint : str or Path, optional
            Save a training checkpoint there after each epoch (atomically).
        skip_nonfinite : bool, default False
            Skip batches whose loss (or gradient norm) is not finite instead of
            raising :class:`NonFiniteLossError`.

        Returns
        -------
        dict
            ``self.history``.
        """
        n = len(x)
        if len(t) != n:
            raise ValueError(f"Trainer.fit: x has {n} examples, t has {len(t)}")
        max_iters = n // batch_size
        if max_iters < 1:
            raise ValueError(f"Trainer.fit: {n} examples are fewer than batch_size={batch_size}")
        xp = get_array_module(x)

        def batches():
            idx = self.rng.permutation(n)
            if xp is not np:
                idx = xp.asarray(idx)
            for i in range(max_iters):
                b = idx[i * batch_size:(i + 1) * batch_size]
                yield x[b], t[b]

        return self._fit(batches, max_iters, max_epoch, max_grad, eval_interval, eval_fn,
                         checkpoint, skip_nonfinite)

    def save_history(self, path) -> None:
        """Write ``history`` as JSON (atomically)."""
        save_history(self.history, path)

    def plot(self, path, title=None):
        """Write the learning curve as a PNG (needs matplotlib). Returns the path."""
        from .plot import plot_history

        return plot_history(self.history, path, title=title)

    # -- the loop --------------------------------------------------------------------
    def _fit(self, make_batches, max_iters, max_epoch, max_grad, eval_interval, eval_fn,
             checkpoint, skip_nonfinite):
        if max_grad is None:
            max_grad = self.max_grad
        if self.epoch >= max_epoch:
            warnings.warn(f"{type(self).__name__}.fit: {self.epoch} epochs already done, "
                          f"max_epoch={max_epoch}; nothing to train (max_epoch counts all "
                          f"epochs, including earlier ones)", stacklevel=3)
            return self.history
        self.stop_training = False
        self._emit("fit_start", {"epoch": self.epoch, "max_epoch": max_epoch})
        mode = self._progress_mode()
        while self.epoch < max_epoch and not self.stop_training:
            self._run_epoch(make_batches, max_iters, max_epoch, max_grad, eval_interval, eval_fn,
                            checkpoint, skip_nonfinite, mode)
        self._emit("fit_end", {"epoch": self.epoch, "history": self.history})
        return self.history

    def _run_epoch(self, make_batches, max_iters, max_epoch, max_grad, eval_interval, eval_fn,
                   checkpoint, skip_nonfinite, mode):
        model, optimizer = self.model, self.optimizer
        epoch = self.epoch + 1
        if hasattr(model, "train"):
            model.train()
        self._start_epoch()
        self._emit("epoch_start", {"epoch": epoch})
        start = time.perf_counter()
        lr = optimizer.lr
        total, count, skipped = 0.0, 0, 0
        run_total, run_count = 0.0, 0
        bar = None
        if mode == "tqdm":
            from tqdm import tqdm

            bar = tqdm(total=max_iters, desc=f"epoch {epoch}/{max_epoch}", file=sys.stderr,
                       unit="it", dynamic_ncols=True, leave=True)
        try:
            for it, (xb, tb) in enumerate(make_batches(), 1):
                loss = float(model.forward(xb, tb))
                problem = None if math.isfinite(loss) else f"non-finite loss ({loss})"
                if problem is None:
                    model.backward()
                    grads = model.grads
                    if max_grad is not None:
                        norm = clip_grads(grads, max_grad)
                        if not math.isfinite(norm):
                            problem = f"non-finite gradient norm ({norm})"
                self.iteration += 1
                if problem is not None:
                    if not skip_nonfinite:
                        raise NonFiniteLossError(
                            f"{type(self).__name__}: {problem} at epoch {epoch}, iteration {it} "
                            f"(of {max_iters}); the parameters were not updated. Lower the "
                            f"learning rate, clip gradients (max_grad=...), or pass "
                            f"skip_nonfinite=True to skip such batches.")
                    skipped += 1
                    self._after_skip()
                else:
                    optimizer.update(model.params, grads)
                    total += loss
                    count += 1
                    run_total += loss
                    run_count += 1
                if bar is not None:
                    bar.update(1)
                    if run_count:
                        bar.set_postfix_str(self._running_text(run_total / run_count),
                                            refresh=False)
                if self.callbacks:
                    self._emit("iteration_end", {"epoch": epoch, "iteration": it, "loss": loss})
                if eval_interval and it % eval_interval == 0:
                    if run_count:
                        avg = run_total / run_count
                        self.history["interval_epoch"].append(epoch - 1 + it / max_iters)
                        self.history["interval_loss"].append(avg)
                        if mode == "log":
                            logger.info("| epoch %d | iter %d / %d | time %d[s] | %s", epoch, it,
                                        max_iters, time.perf_counter() - start,
                                        self._running_text(avg))
                    run_total, run_count = 0.0, 0
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        record = {"epoch": epoch, "iteration": self.iteration,
                  "loss": total / count if count else math.nan, "lr": lr,
                  "seconds": time.perf_counter() - start, "skipped": skipped}
        self._train_metrics(record)
        self._end_epoch()
        if eval_fn is not None:
            self._add_eval(record, eval_fn(model))
        self.epoch = epoch
        self._record(record)
        if self.schedule is not None:
            self.schedule.step(record)
        if bar is not None:  # the bar ends with the epoch's results
            bar.set_postfix_str(self._record_text(record, seconds=False), refresh=False)
            bar.close()
        elif mode == "log":
            logger.info("epoch %d/%d: %s", epoch, max_epoch, self._record_text(record))
        self._emit("epoch_end", record)
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)

    # -- hooks for RnnlmTrainer ------------------------------------------------------------
    def _start_epoch(self):
        pass

    def _end_epoch(self):
        pass

    def _after_skip(self):
        pass

    def _train_metrics(self, record):
        pass

    def _running_text(self, avg):
        return f"loss {avg:.4f}"

    # -- bookkeeping -------------------------------------------------------------------------
    def _progress_mode(self):
        if self.progress is False or self.progress is None:
            return None
        if self.progress in ("tqdm", "log"):
            return self.progress
        stream = sys.stderr
        try:
            tty = stream is not None and stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return "tqdm" if tty else "log"

    def _emit(self, event, info):
        for callback in self.callbacks:
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

    def _record(self, record):
        n = len(self.history["epoch"])
        for k, v in record.items():
            if k not in self.history:
                self.history[k] = [None] * n
            self.history[k].append(v)
        for k, values in self.history.items():
            if not k.startswith("interval_") and len(values) == n:
                values.append(None)

    @staticmethod
    def _record_text(record, seconds=True):
        parts = []
        for k, v in record.items():
            if k in ("epoch", "iteration") or (k == "skipped" and not v):
                continue
            if k == "seconds":
                if seconds:
                    parts.append(f"{v:.1f}s")
            elif isinstance(v, float):
                parts.append(f"{k} {v:.4g}")
            else:
                parts.append(f"{k} {v}")
        return ", ".join(parts)

    # -- checkpoints -----------------------------------------------------------------------
    def _model_param_names(self):
        names = getattr(self.model, "param_names", None)
        if names is None or len(names) != len(self.model.params):
            return [str(i) for i in range(len(self.model.params))]
        return list(names)

    def save_checkpoint(self, path) -> None:
        """Write a training checkpoint to ``path`` atomically.

        Raises
        ------
        NonFiniteLossError
            If a parameter holds NaN or inf; ``path`` is then left untouched.
        """
        bad = [name for name, p in zip(self._model_param_names(), self.model.params)
               if not bool(get_array_module(p).isfinite(p).all())]
        if bad:
            raise NonFiniteLossError(f"{type(self).__name__}: parameters {bad} are not finite "
                                     f"after epoch {self.epoch}; checkpoint {str(path)!r} was "
                                     f"not written")
        opt = self.optimizer.state_dict()
        tensors = {_OPT_PREFIX + k: v for k, v in opt["arrays"].items()}
        for k, v in self._extra_tensors().items():
            tensors[_STATE_PREFIX + k] = v
        training = {
            "trainer": type(self).__name__,
            "trainer_config": {k: getattr(self, k) for k in self._trainer_config},
            "epoch": self.epoch,
            "iteration": self.iteration,
            "history": self.history,
            "optimizer": {"type": opt["type"], "hyper": opt["hyper"]},
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "rng_state": self.rng.bit_generator.state,
            "model_rng_state": None,
            "layer_rng_states": {},
        }
        for key, name, gen in _generators(self):
            if name is None:
                training[key] = gen.bit_generator.state
            else:
                training[key][name] = gen.bit_generator.state
        training.update(self._extra_metadata())
        self.model.save(path, extra_tensors=tensors,
                        extra_metadata={"training": _jsonable(training)})

    def _extra_tensors(self):
        return {}

    def _extra_metadata(self):
        return {}

    @staticmethod
    def _read_checkpoint(path):
        tensors, raw = load_tensors(path)
        meta = read_metadata(raw, path)
        training = meta.get("training")
        if not isinstance(training, dict):
            raise CheckpointError(f"checkpoint {str(path)!r} is a model file, not a training "
                                  f"checkpoint (no 'training' metadata)")
        for key in ("epoch", "iteration", "history", "optimizer", "rng_state"):
            if key not in training:
                raise CheckpointError(f"checkpoint {str(path)!r}: training metadata lacks {key!r}")
        return tensors, meta, _from_json(training)

    def load_checkpoint(self, path) -> None:
        """Restore a training checkpoint into this trainer: the model's params, the
        optimizer, the schedule (built from the checkpoint when the trainer has
        none), the epoch and iteration counters, the history and the random
        generators. Everything is checked before anything changes; a mismatch
        raises :class:`CheckpointError` naming the tensor or field."""
        tensors, meta, training = self._read_checkpoint(path)
        where = f"checkpoint {str(path)!r}"
        if meta.get("model") != type(self.model).__name__:
            raise CheckpointError(f"{where} holds a {meta.get('model')}, the trainer's model is "
                                  f"a {type(self.model).__name__}")
        own_config = json.loads(json.dumps(config_dict(self.model)))
        saved_config = meta.get("config", {})
        if own_config != saved_config:
            diff = sorted(k for k in set(own_config) | set(saved_config)
                          if own_config.get(k) != saved_config.get(k))
            raise CheckpointError(f"{where}: the model's config differs from the checkpoint's "
                                  f"in {diff}")
        model_tensors = {k: v for k, v in tensors.items()
                         if not k.startswith((_OPT_PREFIX, _STATE_PREFIX))}
        self._check_training(tensors, training, path)
        self.model.load_state_dict(model_tensors)  # checks names, shapes, dtypes first
        self._apply_training(tensors, training)

    @classmethod
    def resume(cls, path, **kwargs):
        """Build a trainer from a training checkpoint: the model (its class and
        config from the metadata), the optimizer and schedule from their saved
        state, then everything :meth:`load_checkpoint` restores.

        ``kwargs`` go to the constructor (``callbacks``, ``progress``; ``max_grad``
        defaults to the saved one). The random generators come from the checkpoint.
        """
        from .models.base import Model

        tensors, meta, training = cls._read_checkpoint(path)
        if training.get("trainer", cls.__name__) != cls.__name__:
            raise CheckpointError(f"checkpoint {str(path)!r} was written by a "
                                  f"{training.get('trainer')}, not a {cls.__name__}")
        model, _, _ = Model._load_full(path)
        opt_state = {**training["optimizer"],
                     "arrays": {k[len(_OPT_PREFIX):]: v for k, v in tensors.items()
                                if k.startswith(_OPT_PREFIX)}}
        optimizer = optimizer_from_state(opt_state)
        schedule = None
        if training.get("schedule"):
            schedule = schedule_from_state(training["schedule"], optimizer)
        for key, value in (training.get("trainer_config") or {}).items():
            kwargs.setdefault(key, value)
        trainer = cls(model, optimizer, schedule=schedule, **kwargs)
        trainer._check_training(tensors, training, path)
        trainer._apply_training(tensors, training)
        return trainer

    def _check_training(self, tensors, training, path):
        where = f"checkpoint {str(path)!r}"
        if training.get("trainer", type(self).__name__) != type(self).__name__:
            raise CheckpointError(f"{where} was written by a {training.get('trainer')}, not a "
                                  f"{type(self).__name__}")
        opt_state = self._optimizer_state(tensors, training)
        try:
            self.optimizer.check_state_dict(opt_state, params=self.model.params)
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        if self.schedule is not None and training.get("schedule") is not None:
            saved = training["schedule"].get("type")
            if saved != type(self.schedule).__name__:
                raise CheckpointError(f"{where} holds a {saved} schedule, the trainer has a "
                                      f"{type(self.schedule).__name__}")
        _check_rng_state(self.rng, training["rng_state"], "the trainer's rng state", path)
        for key, name, gen in _generators(self):
            saved = training.get(key)
            if name is not None:
                saved = (saved or {}).get(name)
            if saved is None:
                raise CheckpointError(f"{where} has no state for the random generator of "
                                      f"{name or 'the model'}")
            _check_rng_state(gen, saved, f"the rng state of {name or 'the model'}", path)

    @staticmethod
    def _optimizer_state(tensors, training):
        return {**training["optimizer"],
                "arrays": {k[len(_OPT_PREFIX):]: v for k, v in tensors.items()
                           if k.startswith(_OPT_PREFIX)}}

    def _apply_training(self, tensors, training):
        self.optimizer.load_state_dict(self._optimizer_state(tensors, training),
                                       params=self.model.params)
        if training.get("schedule") is not None:
            if self.schedule is None:
                self.schedule = schedule_from_state(training["schedule"], self.optimizer)
            else:
                self.schedule.load_state_dict(training["schedule"])
        self.rng.bit_generator.state = training["rng_state"]
        for key, name, gen in _generators(self):
            gen.bit_generator.state = training[key] if name is None else training[key][name]
        self.epoch = int(training["epoch"])
        self.iteration = int(training["iteration"])
        self.history = {k: list(v) for k, v in training["history"].items()}
        self._load_extra({k[len(_STATE_PREFIX):]: v for k, v in tensors.items()
                          if k.startswith(_STATE_PREFIX)}, training)

    def _load_extra(self, state_tensors, training):
        pass


class RnnlmTrainer(Trainer):
    """Truncated-BPTT training of a stateful language model on one long corpus.

    The corpus is read as ``batch_size`` parallel streams starting at offsets
    ``i * (len(xs) // batch_size)``; each iteration takes the next ``time_size``
    tokens of every stream (wrapping around the end), ``xs (N, T)`` and the
    targets ``ts (N, T)``, and the model keeps its hidden state from one
    iteration to the next. An epoch is ``len(xs) // (batch_size * time_size)``
    iterations; the stream position (``time_idx``) carries on from epoch to
    epoch, as in the book.

    Recurrent state: reset at the start of the first epoch; then carried across
    iterations and, as in the book, across epochs. Because ``eval_fn`` (e.g.
    :func:`~timelayers.metrics.perplexity` on validation data) replaces the
    state between epochs, the trainer keeps a copy of the training state at the
    end of each epoch and restores it at the start of the next; the copy is part
    of the checkpoint, so a resumed run continues exactly (a ``fit`` with another
    ``batch_size`` starts from a reset state).
    ``reset_each_epoch=True`` resets the state at every epoch start instead.
    After a skipped non-finite batch the state is reset.

    Differences from the book's ``RnnlmTrainer``: ``time_idx`` is not set back to 0
    by each ``fit`` call (a second ``fit`` continues the run), ``max_epoch`` is
    the total number of epochs, and the state is not disturbed by evaluation.

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

    _trainer_config = ("max_grad", "reset_each_epoch")

    def __init__(self, model, optimizer, max_grad=None, rng=None, schedule=None, callbacks=(),
                 progress=True, reset_each_epoch=False):
        super().__init__(model, optimizer, max_grad=max_grad, rng=rng, schedule=schedule,
                         callbacks=callbacks, progress=progress)
        self.reset_each_epoch = bool(reset_each_epoch)
        self.time_idx = 0
        self._train_state = None
        self._state_batch_size = None  # the batch size the saved state was made with
        self._batch_size = None

    def _history_keys(self):
        return ("epoch", "iteration", "loss", "perplexity", "lr", "seconds", "skipped")

    def fit(self, xs, ts, max_epoch=10, batch_size=20, time_size=35, max_grad=None,
            eval_interval=20, eval_fn=None, checkpoint=None, skip_nonfinite=False):
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
        max_grad, eval_interval, eval_fn, checkpoint, skip_nonfinite
            As for :meth:`Trainer.fit`.

        Returns
        -------
        dict
            ``self.history``.
        """
        if xs.ndim != 1 or ts.shape != xs.shape:
            raise ValueError(f"RnnlmTrainer.fit: expected xs and ts of the same shape (L,), got "
                             f"{tuple(xs.shape)} and {tuple(ts.shape)}")
        data_size = xs.shape[0]
        max_iters = data_size // (batch_size * time_size)
        if max_iters < 1:
            raise ValueError(f"RnnlmTrainer.fit: a corpus of {data_size} tokens is shorter than "
                             f"batch_size x time_size = {batch_size * time_size}")
        xp = get_array_module(xs)
        jump = data_size // batch_size
        base = (xp.arange(batch_size) * jump)[:, None] + xp.arange(time_size)[None, :]  # (N, T)
        pos = xp.empty_like(base)
        self._batch_size = batch_size

        def batches():
            for _ in range(max_iters):
                xp.add(base, self.time_idx, out=pos)
                xp.remainder(pos, data_size, out=pos)
                self.time_idx += time_size
                yield xs[pos], ts[pos]  # (N, T) each

        return self._fit(batches, max_iters, max_epoch, max_grad, eval_interval, eval_fn,
                         checkpoint, skip_nonfinite)

    def _start_epoch(self):
        if (self.reset_each_epoch or self._train_state is None
                or self._state_batch_size != self._batch_size):
            self.model.reset_state()
        else:
            self.model.set_state(self._train_state)

    def _end_epoch(self):
        self._train_state = self.model.get_state()
        self._state_batch_size = self._batch_size

    def _after_skip(self):
        self.model.reset_state()

    def _train_metrics(self, record):
        record["perplexity"] = _mean_exp(record["loss"])
        # keep the documented key order: perplexity right after loss
        for k in ("lr", "seconds", "skipped"):
            record[k] = record.pop(k)

    def _running_text(self, avg):
        return f"loss {avg:.4f} | perplexity {_mean_exp(avg):.2f}"

    def _extra_tensors(self):
        return dict(self._train_state or {})

    def _extra_metadata(self):
        return {"time_idx": self.time_idx, "has_state": self._train_state is not None,
                "state_batch_size": self._state_batch_size}

    def _load_extra(self, state_tensors, training):
        self.time_idx = int(training.get("time_idx", 0))
        self._train_state = dict(state_tensors) if training.get("has_state") else None
        self._state_batch_size = training.get("state_batch_size")


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

"""Training checkpoints: write, check, load, resume.

A checkpoint is one safetensors file (a model file too: ``Model.load`` reads it):

- tensors: the model's params by name, the optimizer's arrays as
  ``"optimizer.<slot>.<i>"`` (``"optimizer.m.0"``), and the trainer's own arrays
  as ``"trainer_state.<name>"`` (:class:`RnnlmTrainer`: the recurrent state the
  next epoch starts from, ``"trainer_state.rnn.h"``);
- JSON metadata, the model's (class, config, version, vocabulary) plus
  ``"training"``: the trainer's class and config (``max_grad`` ...), ``epoch``,
  ``iteration``, ``history``, the optimizer's type and hyper-parameters, the
  schedule's state, the state of every random generator (the trainer's
  ``rng_state``, the model's ``model_rng_state``, ``layer_rng_states`` by layer
  name) and the trainer's own fields (:class:`RnnlmTrainer`: ``time_idx``,
  ``has_state``, ``state_batch_size``); a checkpoint written inside an epoch
  (``fit(checkpoint_every=...)``, Ctrl-C) also has ``epoch_progress``: the
  iterations done in the unfinished epoch, its length and batch size, the state of
  the trainer's generator when the epoch drew its order, the epoch's running loss
  sums and counts, skipped batches, seconds and learning rate (and
  :class:`RnnlmTrainer` the model's recurrent state then, as
  ``"trainer_state.in_epoch.<layer>.h"``).

Loading checks everything against the trainer before anything changes, so a
mismatch raises :class:`CheckpointError` naming the tensor or field and leaves
the trainer as it was. A run stopped after epoch ``k`` and resumed gives the
same losses, to the bit, as an uninterrupted one; so does a run stopped inside
an epoch.

A trainer takes part through public methods: ``trainer_config()``,
``checkpoint_extras()`` and ``restore_checkpoint_extras(tensors, training)``.
"""

from __future__ import annotations

import json

from .._checks import KINDS, check_named
from ..backend import get_array_module
from ..errors import CheckpointError, NonFiniteLossError, OptionError
from ..models.base import Model, config_dict, named_generators
from ..models.file_checks import NONNEGATIVE_INT, check_fields, read_metadata
from ..optim import optimizer_from_state
from ..schedules import schedule_from_state
from ..serialization import load_tensors
from .history import INTERVAL_KEYS
from .jsonable import from_jsonable, to_jsonable

__all__ = ["save_checkpoint", "load_checkpoint", "resume"]

OPTIMIZER_PREFIX = "optimizer."
TRAINER_STATE_PREFIX = "trainer_state."


def save_checkpoint(trainer, path) -> None:
    """Write ``trainer``'s checkpoint to ``path`` atomically.

    Raises
    ------
    NonFiniteLossError
        If a parameter holds NaN or inf; ``path`` is then left untouched.
    """
    model = trainer.model
    names = _param_names(model)
    bad = [name for name, p in zip(names, model.params)
           if not bool(get_array_module(p).isfinite(p).all())]
    if bad:
        raise NonFiniteLossError(f"{type(trainer).__name__}: parameters {bad} are not finite "
                                 f"after epoch {trainer.epoch}; checkpoint {str(path)!r} was "
                                 f"not written")
    opt = trainer.optimizer.state_dict()
    extra_tensors, extra_fields = trainer.checkpoint_extras()
    tensors = {OPTIMIZER_PREFIX + k: v for k, v in opt["arrays"].items()}
    tensors.update({TRAINER_STATE_PREFIX + k: v for k, v in extra_tensors.items()})
    training = {
        "trainer": type(trainer).__name__,
        "trainer_config": trainer.trainer_config(),
        "epoch": trainer.epoch,
        "iteration": trainer.iteration,
        "history": trainer.history,
        "optimizer": {"type": opt["type"], "hyper": opt["hyper"]},
        "schedule": trainer.schedule.state_dict() if trainer.schedule is not None else None,
        "rng_state": trainer.rng.bit_generator.state,
        "model_rng_state": None,
        "layer_rng_states": {},
    }
    for key, name, generator in _model_generators(model, trainer.rng):
        if name is None:
            training[key] = generator.bit_generator.state
        else:
            training[key][name] = generator.bit_generator.state
    training.update(extra_fields)
    if trainer._in_epoch is not None:
        training["epoch_progress"] = dict(trainer._in_epoch)
    model.save(path, extra_tensors=tensors, extra_metadata={"training": to_jsonable(training)})


def load_checkpoint(trainer, path) -> None:
    """Restore a checkpoint into ``trainer``: the model's params, the optimizer,
    the schedule (built from the checkpoint when the trainer has none), the
    counters, the history, the random generators and the trainer's own state."""
    tensors, meta, training = _read(path)
    where = f"checkpoint {str(path)!r}"
    model = trainer.model
    if meta.get("model") != type(model).__name__:
        raise CheckpointError(f"{where} holds a {meta.get('model')}, the trainer's model is "
                              f"a {type(model).__name__}")
    own_config = json.loads(json.dumps(config_dict(model)))
    saved_config = meta.get("config", {})
    if own_config != saved_config:
        diff = sorted(k for k in set(own_config) | set(saved_config)
                      if own_config.get(k) != saved_config.get(k))
        raise CheckpointError(f"{where}: the model's config differs from the checkpoint's "
                              f"in {diff}")
    _check(trainer, tensors, training, path)
    model.load_state_dict({k: v for k, v in tensors.items()
                           if not k.startswith((OPTIMIZER_PREFIX, TRAINER_STATE_PREFIX))})
    _apply(trainer, tensors, training)


def resume(trainer_class, path, **kwargs):
    """A ``trainer_class`` built from a checkpoint: the model (its class and config
    from the metadata), the optimizer and the schedule from their saved state,
    then everything :func:`load_checkpoint` restores. ``kwargs`` go to the
    constructor; the saved trainer config fills in the ones not given."""
    tensors, meta, training = _read(path)
    if training.get("trainer", trainer_class.__name__) != trainer_class.__name__:
        raise CheckpointError(f"checkpoint {str(path)!r} was written by a "
                              f"{training.get('trainer')}, not a {trainer_class.__name__}")
    model = Model.load(path)
    try:
        optimizer = optimizer_from_state(_optimizer_state(tensors, training))
        schedule = None
        if training.get("schedule"):
            schedule = schedule_from_state(training["schedule"], optimizer)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from None
    for key, value in (training.get("trainer_config") or {}).items():
        kwargs.setdefault(key, value)
    trainer = trainer_class(model, optimizer, schedule=schedule, **kwargs)
    _check(trainer, tensors, training, path)
    _apply(trainer, tensors, training)
    return trainer


def _read(path):
    tensors, raw = load_tensors(path)
    meta = read_metadata(raw, path)
    training = meta.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} is a model file, not a training "
                              f"checkpoint (no 'training' metadata)")
    _check_training_fields(training, f"checkpoint {str(path)!r}")
    for key in ("epoch", "iteration", "history", "optimizer", "rng_state"):
        if key not in training:
            raise CheckpointError(f"checkpoint {str(path)!r}: training metadata lacks {key!r}")
    try:
        return tensors, meta, from_jsonable(training)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: training metadata holds an array "
                              f"that cannot be read: {exc}") from None


def _check_training_fields(training: dict, where: str) -> None:
    check_fields(training, {"trainer": str, "epoch": NONNEGATIVE_INT,
                             "iteration": NONNEGATIVE_INT, "history": dict,
                             "trainer_config": dict, "optimizer": dict,
                             "schedule": (dict, type(None)), "rng_state": dict,
                             "model_rng_state": (dict, type(None)),
                             "layer_rng_states": dict}, where, prefix="training ")
    for key, values in training.get("history", {}).items():
        if not isinstance(values, list):
            raise CheckpointError(f"{where}: training history {key!r} should be a JSON list, "
                                  f"got {json.dumps(values)[:60]}")
    if "history" in training:
        _check_history(training["history"], training.get("trainer"), where)
    if "optimizer" in training:
        check_fields(training["optimizer"], {"type": str, "hyper": dict}, where,
                      required=("type", "hyper"), prefix="training optimizer ")
    known = _trainer_config_keys(training.get("trainer"))
    config = training.get("trainer_config", {})
    unknown = sorted(set(config) - known) if known is not None else []
    if unknown:
        raise CheckpointError(f"{where}: training trainer_config has unknown keys {unknown} "
                              f"(a {training.get('trainer')} takes {sorted(known)})")
    try:
        check_named(f"{where}: training trainer_config", "argument", **config)
    except OptionError as exc:
        raise CheckpointError(str(exc)) from None


TRAINERS: dict = {}
"""Trainer classes by name (``Trainer`` and its subclasses register themselves),
for the checkpoints that name their trainer."""


def _trainer_config_keys(name) -> set | None:
    """The ``trainer_config`` keys of the trainer class called ``name`` (None when
    there is no such class)."""
    cls = TRAINERS.get(name)
    return None if cls is None else set(cls.config_keys)


def _check_history(history: dict, trainer_name, where: str) -> None:
    """Raise CheckpointError unless ``history`` has the lists a trainer appends to
    (``epoch`` and the interval keys), its per-epoch lists (and its interval
    lists) are of one length, and the trainer's own keys hold numbers or null."""
    missing = [k for k in ("epoch", *INTERVAL_KEYS) if k not in history]
    if missing:
        raise CheckpointError(f"{where}: training history lacks {missing}")
    for keys in ([k for k in history if k not in INTERVAL_KEYS], list(INTERVAL_KEYS)):
        lengths = {k: len(history[k]) for k in keys}
        if len(set(lengths.values())) > 1:
            raise CheckpointError(f"{where}: training history lists differ in length: "
                                  f"{str(lengths)[:120]}")
    cls = TRAINERS.get(trainer_name)
    numeric = (*(cls.history_keys if cls is not None else ("epoch",)), *INTERVAL_KEYS)
    for key in numeric:
        for value in history.get(key, ()):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise CheckpointError(f"{where}: training history {key!r} should hold numbers "
                                      f"or null, got {json.dumps(value)[:60]}")


def _check(trainer, tensors, training, path) -> None:
    """Raise CheckpointError unless every part of the checkpoint fits ``trainer``."""
    where = f"checkpoint {str(path)!r}"
    name = type(trainer).__name__
    if training.get("trainer", name) != name:
        raise CheckpointError(f"{where} was written by a {training.get('trainer')}, not a {name}")
    try:
        trainer.optimizer.check_state_dict(_optimizer_state(tensors, training),
                                           params=trainer.model.params)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    if trainer.schedule is not None and training.get("schedule") is not None:
        saved = training["schedule"].get("type")
        if saved != type(trainer.schedule).__name__:
            raise CheckpointError(f"{where} holds a {saved} schedule, the trainer has a "
                                  f"{type(trainer.schedule).__name__}")
    try:
        trainer.check_checkpoint_extras(_trainer_state(tensors), training)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    _check_generator_state(trainer.rng, training["rng_state"], "the trainer's rng state", where)
    if training.get("epoch_progress") is not None:
        _check_epoch_progress(trainer, training["epoch_progress"], where)
    for key, layer, generator in _model_generators(trainer.model, trainer.rng):
        saved = training.get(key)
        if layer is not None:
            saved = (saved or {}).get(layer)
        if saved is None:
            raise CheckpointError(f"{where} has no state for the random generator of "
                                  f"{layer or 'the model'}")
        _check_generator_state(generator, saved, f"the rng state of {layer or 'the model'}",
                               where)


_EPOCH_PROGRESS = {"iterations": "positive int", "max_iters": "positive int",
                   "batch_size": "positive int", "skipped": "non-negative int",
                   "loss_count": "non-negative int", "interval_loss_count": "non-negative int",
                   "lr": "non-negative finite number", "seconds": "non-negative finite number"}


def _check_epoch_progress(trainer, progress, where) -> None:
    """Raise CheckpointError unless ``progress`` (``epoch_progress``) is a record of
    an unfinished epoch that this trainer can continue."""
    if not isinstance(progress, dict):
        raise CheckpointError(f"{where}: training 'epoch_progress' should be an object, got "
                              f"{json.dumps(progress)[:60]}")
    for key, kind in _EPOCH_PROGRESS.items():
        if not KINDS[kind](progress.get(key)):
            raise CheckpointError(f"{where}: training epoch_progress {key!r} should be a "
                                  f"{kind}, got {json.dumps(progress.get(key))[:60]}")
    for key in ("loss_sum", "interval_loss_sum"):
        value = progress.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise CheckpointError(f"{where}: training epoch_progress {key!r} should be a "
                                  f"number, got {json.dumps(value)[:60]}")
    if progress["iterations"] >= progress["max_iters"]:
        raise CheckpointError(f"{where}: training epoch_progress 'iterations' "
                              f"({progress['iterations']}) should be fewer than its 'max_iters' "
                              f"({progress['max_iters']})")
    if not isinstance(progress.get("epoch_rng_state"), dict):
        raise CheckpointError(f"{where}: training epoch_progress lacks 'epoch_rng_state'")
    _check_generator_state(trainer.rng, progress["epoch_rng_state"],
                           "the epoch's rng state", where)


def _apply(trainer, tensors, training) -> None:
    """Restore the checked checkpoint into ``trainer`` (the params aside)."""
    trainer.optimizer.load_state_dict(_optimizer_state(tensors, training),
                                      params=trainer.model.params)
    if training.get("schedule") is not None:
        if trainer.schedule is None:
            trainer.schedule = schedule_from_state(training["schedule"], trainer.optimizer)
        else:
            trainer.schedule.load_state_dict(training["schedule"])
    trainer.rng.bit_generator.state = training["rng_state"]
    for key, layer, generator in _model_generators(trainer.model, trainer.rng):
        generator.bit_generator.state = training[key] if layer is None else training[key][layer]
    trainer.epoch = int(training["epoch"])
    trainer.iteration = int(training["iteration"])
    trainer.history = {k: list(v) for k, v in training["history"].items()}
    trainer.restore_checkpoint_extras(_trainer_state(tensors), training)
    trainer._epoch_progress = training.get("epoch_progress")


def _trainer_state(tensors) -> dict:
    """The trainer's own tensors, without their ``"trainer_state."`` prefix."""
    return {k[len(TRAINER_STATE_PREFIX):]: v for k, v in tensors.items()
            if k.startswith(TRAINER_STATE_PREFIX)}


def _optimizer_state(tensors, training) -> dict:
    return {**training["optimizer"],
            "arrays": {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items()
                       if k.startswith(OPTIMIZER_PREFIX)}}


def _param_names(model) -> list:
    names = getattr(model, "param_names", None)
    if names is None or len(names) != len(model.params):
        return [str(i) for i in range(len(model.params))]
    return list(names)


def _model_generators(model, trainer_rng):
    """The model's random generators other than ``trainer_rng``, as (metadata key,
    layer name or None for the model's own, generator)."""
    return [("model_rng_state" if name is None else "layer_rng_states", name, generator)
            for name, generator in named_generators(model) if generator is not trainer_rng]


def _check_generator_state(generator, state, what, where) -> None:
    try:
        probe = type(generator.bit_generator)()
        probe.state = state
    except Exception as exc:  # ValueError, TypeError, KeyError from numpy
        raise CheckpointError(f"{where}: {what} cannot be restored: {exc}") from None

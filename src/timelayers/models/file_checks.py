"""The checks of a saved model file before a model is built from it: its
metadata's fields and types, its config's sizes against the file's tensors, the
params the config describes (:func:`~timelayers.models._layout.param_layout`)
against the tensors, their finiteness, and the vocabulary's size. Each raises a
one-line :class:`~timelayers.errors.CheckpointError` naming the file and what
does not fit; :meth:`Model.load <timelayers.models.base.Model.load>` and the
training checkpoints (:mod:`timelayers.training.checkpoint`) call them."""

from __future__ import annotations

import json

import numpy as np

from ..backend import get_array_module
from ..errors import CheckpointError
from ._layout import param_layout

__all__ = ["read_metadata", "check_fields", "NONNEGATIVE_INT", "check_vocab_fits",
           "check_config_sizes", "check_param_shapes", "check_finite"]


def check_vocab_fits(vocab, config: dict, where: str, model_name: str) -> None:
    """Raise :class:`CheckpointError` unless ``vocab`` has one word per row of the
    embedding of the model ``config`` describes (its ``vocab_size``; a config
    without one passes)."""
    size = config.get("vocab_size")
    if isinstance(size, int) and len(vocab) != size:
        raise CheckpointError(f"{where}: the vocabulary has {len(vocab)} words, the "
                              f"{model_name} has {size} (vocab_size)")


_SMALL_INT = 64


def check_config_sizes(config: dict, tensors: dict, where: str) -> None:
    """Refuse, before a model is built from ``config``, a negative integer in it or
    one larger than every dimension of the file's tensors: a model that large
    cannot be the one whose weights the file holds (``vocab_size=20000000`` beside
    a 10000-row embedding would allocate gigabytes before the shapes are
    compared). Integers up to ``_SMALL_INT`` pass (a window of 5 words over a
    4-word vocabulary is a model, and nothing that size allocates much)."""
    largest = max((d for t in tensors.values() for d in t.shape), default=0)
    limit = max(largest, _SMALL_INT)
    for key, value in config.items():
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if value < 0:
            raise CheckpointError(f"{where}: config {key}={value} is negative")
        if value > limit:
            raise CheckpointError(f"{where}: config {key}={value} is larger than every "
                                  f"dimension of its tensors (the largest is {largest}); the "
                                  f"config does not match the weights")


def check_param_shapes(model_class, config: dict, tensors: dict, where: str) -> None:
    """Refuse, before a model is built from ``config``, a file that lacks a param
    of that model or holds it with another shape (compared one param at a time,
    so a config describing many more params than the file holds stops at the
    first missing one). A model class that does not state its shapes passes."""
    name = model_class.__name__
    try:
        for param, shape in param_layout(model_class, config):
            found = tensors.get(param)
            if found is None or tuple(found.shape) != shape:
                break
        else:
            return
    except NotImplementedError:
        return
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{where} has a config that {name} does not accept: "
                              f"{exc}") from None
    if found is None:
        raise CheckpointError(f"{where}: the {name} its config describes has a param "
                              f"{param!r} of shape {shape}, the file has no such tensor")
    raise CheckpointError(f"{where}: tensor {param!r} has shape {tuple(found.shape)}, the "
                          f"{name} its config describes expects {shape}")


def check_finite(tensors: dict, where: str) -> None:
    """Refuse NaN or infinite values in any float tensor (NumPy or CuPy)."""
    for name, t in tensors.items():
        if np.issubdtype(t.dtype, np.floating) and not bool(get_array_module(t).isfinite(t).all()):
            raise CheckpointError(f"{where}: tensor {name!r} has NaN or infinite values")


def read_metadata(raw: dict, path) -> dict:
    """Parse the JSON metadata that :meth:`Model.save` writes, and check the type
    of every field it has (``model``, ``config``, ``vocab``, ``version``, and that
    ``training`` is an object: :mod:`timelayers.training.checkpoint` checks its
    fields), so that a malformed file is refused here with a one-line
    :class:`CheckpointError` naming the file and the field."""
    where = f"checkpoint {str(path)!r}"
    if "timelayers" not in raw:
        raise CheckpointError(f"{where} has no timelayers metadata")
    try:
        meta = json.loads(raw["timelayers"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{where} has no timelayers metadata") from None
    except (ValueError, RecursionError) as exc:  # a 10**5-digit number, nesting 10**5 deep
        raise CheckpointError(f"{where} has timelayers metadata that cannot be read: "
                              f"{exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != "timelayers":
        raise CheckpointError(f"{where} is not a timelayers checkpoint")
    check_fields(meta, {"model": str, "config": dict, "vocab": dict, "version": str,
                         "training": dict, "run_id": str}, where, required=("model",))
    return meta


NONNEGATIVE_INT = "a non-negative integer"


def check_fields(record: dict, types: dict, where: str, required=(), prefix="") -> None:
    """Raise CheckpointError for a missing ``required`` key or a value of ``record``
    whose type is not ``types[key]`` (a type, a tuple of types, or
    ``NONNEGATIVE_INT``)."""
    for key in required:
        if key not in record:
            raise CheckpointError(f"{where}: metadata lacks {prefix}{key!r}")
    for key, want in types.items():
        if key not in record:
            continue
        value = record[key]
        if want is NONNEGATIVE_INT:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            expected = want
        else:
            ok = isinstance(value, want)
            names = [t.__name__ for t in (want if isinstance(want, tuple) else (want,))]
            expected = "a " + " or ".join(_JSON_NAMES.get(n, n) for n in names)
        if not ok:
            raise CheckpointError(f"{where}: {prefix}{key!r} should be {expected}, got "
                                  f"{json.dumps(value)[:60]}")


_JSON_NAMES = {"dict": "JSON object", "list": "JSON list", "str": "string", "NoneType": "null"}

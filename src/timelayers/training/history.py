"""The training history: a dict of per-epoch lists that a trainer fills through
the :func:`record_history` callback, and its JSON file.

Keys: the trainer's own (``"epoch"``, ``"iteration"``, ``"loss"``, ...), one per
key of the epochs' records (``eval_fn``'s included; an epoch without a key gets
None there), and ``"interval_epoch"`` (fractional epochs) / ``"interval_loss"``,
the running loss at every interval of iterations.
"""

from __future__ import annotations

import json
import math

from ..errors import DataError
from ..serialization import read_input, write_json
from .jsonable import to_jsonable

__all__ = ["empty_history", "record_history", "save_history", "load_history"]

INTERVAL_KEYS = ("interval_epoch", "interval_loss")


def empty_history(keys) -> dict:
    """A history with no epochs: an empty list per key of ``keys`` and per interval key."""
    return {k: [] for k in (*keys, *INTERVAL_KEYS)}


def record_history(trainer, event, info) -> None:
    """Trainer callback (always the first): append each interval's running loss
    and each epoch's record to ``trainer.history``."""
    history = trainer.history
    if event == "interval_end":
        history["interval_epoch"].append(info["epoch_fraction"])
        history["interval_loss"].append(info["metrics"]["loss"])
    elif event == "epoch_end":
        epochs = len(history["epoch"])
        for key, value in info.items():
            if key not in history:
                history[key] = [None] * epochs
            history[key].append(value)
        for key, values in history.items():
            if key not in INTERVAL_KEYS and len(values) == epochs:
                values.append(None)


def save_history(history: dict, path) -> None:
    """Write a history dict as JSON, atomically. Non-finite numbers become ``null``."""
    write_json(path, to_jsonable(history), indent=1, note=False)


def load_history(path) -> dict:
    """Read a history written by :func:`save_history` (``null`` comes back as NaN).

    Raises
    ------
    DataError
        When the file is not JSON (or is nested too deeply to read) or is not an
        object of lists; the message names the file.
    """
    try:
        history = json.loads(read_input(path, "history file").decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, nesting 10**5 deep
        raise DataError(f"{str(path)!r} is not a history file: {exc}") from None
    if not isinstance(history, dict):
        raise DataError(f"{str(path)!r} is not a history file: expected a JSON object of "
                        f"lists, got a {type(history).__name__}")
    return {k: [math.nan if v is None else v for v in vals] if isinstance(vals, list) else vals
            for k, vals in history.items()}

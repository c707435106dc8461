"""Ranges of the recipes' options and the command's numeric arguments, checked in
one place: by :func:`timelayers.recipes.train` (and a run's ``run.json``) and by the
command line's argument types."""

from __future__ import annotations

import math
import numbers

from .errors import OptionError

__all__ = ["KINDS", "OPTION_KINDS", "check_value", "check_options"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


KINDS = {
    "positive int": lambda v: _is_int(v) and v >= 1,
    "non-negative int": lambda v: _is_int(v) and v >= 0,
    "positive finite number": lambda v: _is_real(v) and v > 0,
    "non-negative finite number": lambda v: _is_real(v) and v >= 0,
    "number in [0, 1)": lambda v: _is_real(v) and 0 <= v < 1,
    "number in [0, 1]": lambda v: _is_real(v) and 0 <= v <= 1,
    "number > 1": lambda v: _is_real(v) and v > 1,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}
"""What each kind of value must be: the kind's name is the error message's
"expected"."""

OPTION_KINDS = {
    "epochs": "positive int", "batch_size": "positive int", "time_size": "positive int",
    "hidden_size": "positive int", "wordvec_size": "positive int", "window_size": "positive int",
    "sample_size": "positive int", "examples": "positive int",
    "d_model": "positive int", "num_heads": "positive int", "num_layers": "positive int",
    "encoder_layers": "positive int", "decoder_layers": "positive int",
    "ff_size": "positive int", "max_len": "positive int", "warmup": "non-negative int",
    "lr": "positive finite number", "max_grad": "positive finite number",
    "weight_decay": "non-negative finite number",
    "dropout_ratio": "number in [0, 1)", "plateau_factor": "number > 1",
    "reverse": "bool", "eval_valid": "bool", "cell": "str", "score": "str", "optimizer": "str",
    "positional": "str", "activation": "str",
}
"""The kind of every recipe option (``max_grad`` may also be None: no clipping)."""

_MAY_BE_NONE = {"max_grad"}


def check_value(kind: str, value, name: str) -> None:
    """Raise :class:`OptionError` naming ``name`` unless ``value`` is of ``kind``."""
    if not KINDS[kind](value):
        raise OptionError(f"{name} expected a {kind}, got {value!r}")


def check_options(options: dict, where: str) -> None:
    """Check every recipe option in ``options``; ``where`` starts the message."""
    for key, value in options.items():
        if key not in OPTION_KINDS:
            raise OptionError(f"{where}: unknown option {key!r}")
        if value is None and key in _MAY_BE_NONE:
            continue
        check_value(OPTION_KINDS[key], value, f"{where}: option {key!r}")

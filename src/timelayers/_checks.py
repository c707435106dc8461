"""Input checks, kept apart from the math: the layers' arrays (shapes, dtypes,
ids) and the library's named values (sizes, rates, flags).

Every failure raises :class:`~timelayers.errors.ShapeError` whose message names
the place (``"TimeAffine.forward"``), the argument, what was expected and what
was received.

Checking the values of ids on a GPU would make every step wait for the device,
so :func:`check_ids` reduces device arrays on the device and leaves the result
pending; :func:`flush_device_checks` reads every pending result at once and
raises for the first bad one. The trainers call it where they read the loss (at
each log line and at the end of an epoch), the evaluation functions at their
end, and :func:`check_ids` itself after ``MAX_PENDING`` checks.
"""

from __future__ import annotations

import math
import numbers

from .backend import import_cupy, is_cupy_array
from .errors import OptionError, ShapeError

MAX_PENDING = 256
_pending = []   # (where, name, allowed, lo, hi) with lo, hi 0-d device arrays


def _pattern_text(pattern) -> str:
    parts = ["..." if p is Ellipsis else str(p) for p in pattern]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_shape(where: str, name: str, x, pattern, dims: dict | None = None) -> dict:
    """Check that ``x.shape`` matches ``pattern`` and return the bound sizes.

    Parameters
    ----------
    where, name : str
        The layer method and the argument, used in the error message.
    x : array
        The value to check.
    pattern : tuple of (int | str | None)
        One entry per dimension: an int must match exactly, a str is a named size
        bound on first use (and must then agree, also across calls sharing ``dims``),
        None accepts any size.
    dims : dict, optional
        Sizes already bound by earlier checks; updated in place.
    """
    dims = {} if dims is None else dims
    shape = getattr(x, "shape", None)
    expected = _pattern_text(pattern)
    if shape is None:
        raise ShapeError(f"{where}: argument {name!r} expected an array of shape {expected}, "
                         f"got {type(x).__name__}")
    if len(shape) != len(pattern):
        raise ShapeError(f"{where}: argument {name!r} expected {len(pattern)} dimensions "
                         f"{expected}, got shape {tuple(shape)}")
    for size, want in zip(shape, pattern):
        if want is None:
            continue
        if isinstance(want, str):
            if want in dims and dims[want] != size:
                bound = tuple(dims.get(p, p) if isinstance(p, str) else p for p in pattern)
                raise ShapeError(f"{where}: argument {name!r} expected shape "
                                 f"{_pattern_text(bound)}, got {tuple(shape)}")
            dims[want] = size
        elif size != want:
            bound = tuple(dims.get(p, p) if isinstance(p, str) else p for p in pattern)
            raise ShapeError(f"{where}: argument {name!r} expected shape {_pattern_text(bound)}, "
                             f"got {tuple(shape)}")
    return dims


def check_ndim(where: str, name: str, x, ndims) -> None:
    """Check that ``x.ndim`` is one of ``ndims`` (an int or a tuple of ints)."""
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) not in ndims:
        got = f"shape {tuple(shape)}" if shape is not None else type(x).__name__
        want = " or ".join(str(n) for n in ndims)
        raise ShapeError(f"{where}: argument {name!r} expected an array with {want} dimensions, "
                         f"got {got}")


def check_float(where: str, name: str, x) -> None:
    """Check that ``x`` is a floating-point array."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise ShapeError(f"{where}: argument {name!r} expected a floating-point array, "
                         f"got dtype {dtype if dtype is not None else type(x).__name__}")


def check_ids(where: str, name: str, ids, vocab_size: int, ignore_label=None) -> None:
    """Check that ``ids`` is an integer array with values in ``[0, vocab_size)``.

    ``ignore_label``, when given, is also accepted as a value. The values of
    CuPy arrays are checked at the next :func:`flush_device_checks`.
    """
    dtype = getattr(ids, "dtype", None)
    if dtype is None or dtype.kind not in "iu":
        raise ShapeError(f"{where}: argument {name!r} expected integer ids, "
                         f"got dtype {dtype if dtype is not None else type(ids).__name__}")
    if ids.size == 0:
        return
    allowed = f"[0, {vocab_size})" + (f" or {ignore_label}" if ignore_label is not None else "")
    if is_cupy_array(ids):
        cupy = import_cupy()
        checked = ids
        if ignore_label is not None:  # where, not a boolean index: its size is a host read
            checked = cupy.where(ids == ignore_label, 0, ids)
        _pending.append((where, name, vocab_size, allowed, checked.min(), checked.max()))
        if len(_pending) >= MAX_PENDING:
            flush_device_checks()
        return
    checked = ids
    if ignore_label is not None:
        checked = ids[ids != ignore_label]
        if checked.size == 0:
            return
    _check_range(where, name, vocab_size, allowed, int(checked.min()), int(checked.max()))


def _check_range(where, name, vocab_size, allowed, lo, hi):
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ShapeError(f"{where}: argument {name!r} expected ids in {allowed}, got {bad}")


def flush_device_checks() -> None:
    """Read the pending device-side id checks (one transfer) and raise the
    :class:`ShapeError` of the first that failed; nothing pending, nothing read."""
    if not _pending:
        return
    cupy = import_cupy()
    checks = list(_pending)
    _pending.clear()
    values = cupy.stack([cupy.stack([lo, hi]).astype(cupy.int64)
                         for *_, lo, hi in checks]).get()
    for (where, name, vocab_size, allowed, _, _), (lo, hi) in zip(checks, values):
        _check_range(where, name, vocab_size, allowed, int(lo), int(hi))


# -- named values: one table of what each name must be ------------------------------------
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

_SIZES = ("vocab_size", "input_size", "output_size", "wordvec_size", "hidden_size",
          "window_size", "sample_size", "num_layers", "encoder_layers", "decoder_layers",
          "d_model", "num_heads", "ff_size", "max_len", "epochs", "batch_size", "time_size",
          "examples", "check_interval", "max_iters", "checkpoint_every")
NAME_KINDS = {
    **{name: "positive int" for name in _SIZES},
    "warmup": "non-negative int", "max_epoch": "non-negative int",
    "eval_interval": "non-negative int",
    "max_grad": "positive finite number",
    "lr": "non-negative finite number", "weight_decay": "non-negative finite number",
    "eps": "non-negative finite number",
    "momentum": "number in [0, 1)", "decay_rate": "number in [0, 1)",
    "beta1": "number in [0, 1)", "beta2": "number in [0, 1)",
    "dropout_ratio": "number in [0, 1)", "dropout": "number in [0, 1)",
    "plateau_factor": "number > 1",
    "reverse": "bool", "eval_valid": "bool", "reset_each_epoch": "bool",
    "cell": "str", "score": "str", "optimizer": "str", "positional": "str", "activation": "str",
}
"""The kind of every named value the library takes: the recipes' options, the
optimizers' hyper-parameters, the trainers' arguments and the models' config
fields share their names, and a name means the same kind everywhere."""

MAY_BE_NONE = frozenset({"max_grad", "eval_interval", "check_interval", "max_iters",
                         "checkpoint_every", "warmup"})
"""Names whose value may also be None (no clipping, no evaluation, the default
interval, whole epochs, checkpoints at epochs' ends only, a constant learning rate)."""

RECIPE_OPTIONS = frozenset({
    "epochs", "batch_size", "time_size", "hidden_size", "wordvec_size", "window_size",
    "sample_size", "examples", "d_model", "num_heads", "num_layers", "encoder_layers",
    "decoder_layers", "ff_size", "max_len", "warmup", "lr", "max_grad", "weight_decay",
    "dropout_ratio", "plateau_factor", "reverse", "eval_valid", "cell", "score", "optimizer",
    "positional", "activation", "max_iters"})
"""The options a recipe (and ``run.json``) may set."""


def check_value(kind: str, value, name: str) -> None:
    """Raise :class:`OptionError` naming ``name`` unless ``value`` is of ``kind``."""
    if not KINDS[kind](value):
        raise OptionError(f"{name} expected a {kind}, got {value!r}")


def check_named(where: str, what: str, **values) -> None:
    """Check each value against its name's kind in :data:`NAME_KINDS` (names not
    in the table are not checked); ``what`` is "argument", "option" ...: the
    message reads ``"{where}: {what} 'name' expected ..."``."""
    for name, value in values.items():
        kind = NAME_KINDS.get(name)
        if kind is None or (value is None and name in MAY_BE_NONE):
            continue
        check_value(kind, value, f"{where}: {what} {name!r}")


def check_options(options: dict, where: str) -> None:
    """Check every recipe option in ``options``; ``where`` starts the message."""
    for key in options:
        if key not in RECIPE_OPTIONS:
            raise OptionError(f"{where}: unknown option {key!r}")
    check_named(where, "option", **options)

"""Input checks shared by the layers, kept apart from the math.

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

from .backend import is_cupy_array
from .errors import ShapeError

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
        import cupy

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
    import cupy

    checks = list(_pending)
    _pending.clear()
    values = cupy.stack([cupy.stack([lo, hi]).astype(cupy.int64)
                         for *_, lo, hi in checks]).get()
    for (where, name, vocab_size, allowed, _, _), (lo, hi) in zip(checks, values):
        _check_range(where, name, vocab_size, allowed, int(lo), int(hi))

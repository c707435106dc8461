"""Input checks shared by the layers, kept apart from the math.

Every failure raises :class:`~timelayers.errors.ShapeError` whose message names
the place (``"TimeAffine.forward"``), the argument, what was expected and what
was received.
"""

from __future__ import annotations

from .errors import ShapeError


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

    ``ignore_label``, when given, is also accepted as a value.
    """
    dtype = getattr(ids, "dtype", None)
    if dtype is None or dtype.kind not in "iu":
        raise ShapeError(f"{where}: argument {name!r} expected integer ids, "
                         f"got dtype {dtype if dtype is not None else type(ids).__name__}")
    if ids.size == 0:
        return
    checked = ids
    if ignore_label is not None:
        checked = ids[ids != ignore_label]
        if checked.size == 0:
            return
    lo, hi = int(checked.min()), int(checked.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        allowed = f"[0, {vocab_size})" + (f" or {ignore_label}" if ignore_label is not None else "")
        raise ShapeError(f"{where}: argument {name!r} expected ids in {allowed}, got {bad}")

"""The book's seq2seq toy tasks: addition and date normalisation.

Both are text files of fixed-width lines, the question and then the answer,
which starts with the separator ``_`` (the decoder's start symbol)::

    16+75  _91          (addition: 7 + 1 + 4 = 12 characters)
    september 27, 1994           _1994-09-27   (dates: 29 + 1 + 10 = 40)

:func:`make_addition` and :func:`make_dates` generate such lines,
:func:`write_sequence` saves them and :func:`load_sequence` turns any file in
this format into character-id arrays.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from timelayers.datasets.textfile import read_utf8
from timelayers.serialization import atomic_write
from timelayers.errors import DataError, ShapeError, excerpt
from timelayers.vocab import Vocabulary

__all__ = [
    "make_addition",
    "make_dates",
    "write_sequence",
    "load_sequence",
    "load_addition",
    "load_dates",
    "reverse_questions",
]

SEPARATOR = "_"
ADDITION_WIDTHS = (7, 4)  # question, answer (without the separator)
DATES_WIDTHS = (29, 10)
_ADDITION_PAIRS = 1000 * 1001 // 2  # unordered pairs of 0..999

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FIRST_DAY = datetime.date(1970, 1, 1).toordinal()
_LAST_DAY = datetime.date(2017, 12, 31).toordinal()

SequenceSplits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], Vocabulary]


# -- generators ------------------------------------------------------------------
def make_addition(n: int, rng: np.random.Generator) -> list[str]:
    """Generate ``n`` distinct addition problems ``a+b`` with ``0 <= a, b <= 999``,
    in the mix of the book's ``addition.txt``.

    Each operand first gets a digit count, 1 to 3 with equal chance, then a value
    below ``10 ** count``; a pair already drawn, in either order (``a+b`` or
    ``b+a``), is drawn again. The repeats dropped are mostly short ones (there are
    only 55 pairs of one-digit numbers), so 58% of the operands have three digits
    and no question is asked twice, as in the book's file (9.7% / 32.5% / 57.8%
    one-, two- and three-digit operands there, 50,000 distinct pairs); a test
    split taken from these lines shares no question with the training split.
    The mix depends on ``n``: the larger, the more short pairs are used up.

    Parameters
    ----------
    n : int
        Number of lines, at most 500,500 (the distinct unordered pairs; drawing
        slows down as ``n`` nears it).
    rng : numpy.random.Generator
        Source of randomness (an int seed is accepted too).

    Returns
    -------
    list of str
        ``n`` lines of 12 characters without newline: the question left-aligned
        in 7, ``_``, the sum left-aligned in 4 (``"16+75  _91  "``).
    """
    rng = np.random.default_rng(rng)
    n = _check_n(n)
    if n > _ADDITION_PAIRS:
        raise ValueError(f"make_addition: n must be at most {_ADDITION_PAIRS} (the distinct "
                         f"pairs of 0..999), got {n}")
    qw, aw = ADDITION_WIDTHS
    seen: set[tuple[int, int]] = set()
    lines: list[str] = []
    while len(lines) < n:
        digits = rng.integers(1, 4, size=(2, n))
        for x, y in zip(*rng.integers(0, 10 ** digits).tolist()):
            pair = (x, y) if x <= y else (y, x)
            if pair in seen:
                continue
            seen.add(pair)
            lines.append(f"{x}+{y}".ljust(qw) + SEPARATOR + str(x + y).ljust(aw))
            if len(lines) == n:
                break
    return lines


def make_dates(n: int, rng: np.random.Generator) -> list[str]:
    """Generate ``n`` dates between 1970-01-01 and 2017-12-31 as a person writes them.

    The human forms are ``Month D, YYYY`` with the month's full or three-letter
    name, optionally preceded by the weekday (``Wednesday, February 26, 1997``),
    in lower, title or upper case, and ``M/D/YY`` (``6/3/73``).

    Parameters
    ----------
    n : int
        Number of lines.
    rng : numpy.random.Generator
        Source of randomness (an int seed is accepted too).

    Returns
    -------
    list of str
        ``n`` lines of 40 characters without newline: the human form
        left-aligned in 29, ``_``, then ``YYYY-MM-DD``.
    """
    rng = np.random.default_rng(rng)
    n = _check_n(n)
    days = rng.integers(_FIRST_DAY, _LAST_DAY + 1, size=n).tolist()
    numeric = (rng.random(n) < 0.2).tolist()
    full_month = (rng.random(n) < 0.5).tolist()
    weekday = (rng.random(n) < 0.3).tolist()
    case = rng.integers(0, 3, size=n).tolist()  # 0 lower, 1 title, 2 upper
    qw = DATES_WIDTHS[0]
    lines = []
    for k in range(n):
        d = datetime.date.fromordinal(days[k])
        if numeric[k]:
            human = f"{d.month}/{d.day}/{d.year % 100:02d}"
        else:
            month = _MONTHS[d.month - 1]
            human = f"{month if full_month[k] else month[:3]} {d.day}, {d.year}"
            if weekday[k]:
                human = f"{_WEEKDAYS[d.weekday()]}, {human}"
            if case[k] == 0:
                human = human.lower()
            elif case[k] == 2:
                human = human.upper()
        lines.append(f"{human.ljust(qw)}{SEPARATOR}{d.isoformat()}")
    return lines


def write_sequence(path: str | os.PathLike, lines: Sequence[str]) -> None:
    """Write ``lines`` to ``path``, one per line (UTF-8), atomically.

    Raises
    ------
    DataError
        If a line contains a newline.
    """
    for i, line in enumerate(lines, 1):
        if "\n" in line or "\r" in line:
            raise DataError(f"write_sequence: line {i} contains a newline: {excerpt(line)}")
    atomic_write(path, "".join(line + "\n" for line in lines).encode("utf-8"))


# -- loading -----------------------------------------------------------------------
def load_sequence(
    source: str | os.PathLike | Sequence[str],
    seed: int | None = 1984,
    test_ratio: float = 0.1,
    vocab: Vocabulary | None = None,
) -> SequenceSplits:
    """Load a question/answer file of fixed-width lines as character ids.

    The separator column is the first ``_`` of the first line; every line must
    have the same width and a ``_`` in that column.

    Parameters
    ----------
    source : str, os.PathLike or sequence of str
        A file path, or the lines themselves (without newlines).
    seed : int or None
        Seed of the shuffle (``numpy.random.default_rng(seed).permutation``);
        None keeps the file order.
    test_ratio : float
        Fraction of the (shuffled) lines, taken from the end, kept for testing
        (``int(N * test_ratio)`` lines).
    vocab : Vocabulary, optional
        Encode with this vocabulary instead of building one over the file's
        characters in order of first occurrence.

    Returns
    -------
    (x_train, t_train) : ndarray of int32, shapes (N - N_test, Tq), (N - N_test, 1 + Ta)
    (x_test, t_test) : ndarray of int32, shapes (N_test, Tq), (N_test, 1 + Ta)
        ``x`` holds the questions' characters and ``t`` the answers' starting
        with the ``_`` start symbol.
    vocab : Vocabulary
        The character vocabulary.

    Raises
    ------
    DataError
        If there are no lines, a line has another width or no ``_`` in the
        separator column (naming the 1-based line number and the file), or a
        character is missing from the given ``vocab``.
    """
    if not 0 <= test_ratio < 1:
        raise ValueError(f"load_sequence: test_ratio must be in [0, 1), got {test_ratio!r}")
    lines, name = _read_lines(source)
    sep, width = _check_format(lines, name)
    text = "".join(lines)
    if vocab is None:
        vocab = Vocabulary(dict.fromkeys(text))  # characters in order of first occurrence
    ids = _encode_chars(text, lines, name, vocab).reshape(len(lines), width)  # (N, Tq + 1 + Ta)
    if seed is not None:
        ids = ids[np.random.default_rng(seed).permutation(len(ids))]
    x = np.ascontiguousarray(ids[:, :sep])  # (N, Tq)
    t = np.ascontiguousarray(ids[:, sep:])  # (N, 1 + Ta)
    n_train = len(lines) - int(len(lines) * test_ratio)
    return (x[:n_train], t[:n_train]), (x[n_train:], t[n_train:]), vocab


def load_addition(n: int = 50000, seed: int = 1984, test_ratio: float = 0.1) -> SequenceSplits:
    """Generate ``n`` addition problems from ``seed`` and load them like :func:`load_sequence`.

    The lines are generated in random order, so they are not shuffled again.
    """
    return load_sequence(make_addition(n, np.random.default_rng(seed)), None, test_ratio)


def load_dates(n: int = 50000, seed: int = 1984, test_ratio: float = 0.1) -> SequenceSplits:
    """Generate ``n`` dates from ``seed`` and load them like :func:`load_sequence`.

    The lines are generated in random order, so they are not shuffled again.
    """
    return load_sequence(make_dates(n, np.random.default_rng(seed)), None, test_ratio)


def reverse_questions(x):
    """Reverse each question, the book's reversed-input trick.

    Parameters
    ----------
    x : ndarray, shape (N, T)

    Returns
    -------
    ndarray, shape (N, T)
        A copy, ``x[:, ::-1]``.
    """
    if getattr(x, "ndim", None) != 2:
        got = getattr(x, "shape", type(x).__name__)
        raise ShapeError(f"reverse_questions: x must have shape (N, T), got {got}")
    return x[:, ::-1].copy()


# -- helpers ---------------------------------------------------------------------------
def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return int(n)


def _read_lines(source) -> tuple[list[str], str]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        lines = read_utf8(path).split("\n")  # text mode: \r\n is \n
        while lines and lines[-1] == "":
            lines.pop()
        return lines, str(path)
    lines = [line[:-1] if line.endswith("\n") else line for line in source]
    for i, line in enumerate(lines, 1):
        if not isinstance(line, str):
            raise TypeError(f"load_sequence: line {i} is a {type(line).__name__}, not a str")
    return lines, "<lines>"


def _check_format(lines: list[str], name: str) -> tuple[int, int]:
    """Return ``(separator column, width)``, or raise DataError for the first bad line."""
    if not lines:
        raise DataError(f"{name}: no lines")
    width = len(lines[0])
    sep = lines[0].find(SEPARATOR)
    if sep < 0:
        raise DataError(f"{name}, line 1: no {SEPARATOR!r} separator in {excerpt(lines[0])}")
    if sep == 0:
        raise DataError(f"{name}, line 1: {SEPARATOR!r} is in the first column, so the question "
                        f"before it is empty: {excerpt(lines[0])}")
    if sep == width - 1:
        raise DataError(f"{name}, line 1: {SEPARATOR!r} is in the last column, so the answer "
                        f"after it is empty: {excerpt(lines[0])}")
    for i, line in enumerate(lines, 1):
        if len(line) != width:
            raise DataError(
                f"{name}, line {i}: expected {width} characters like line 1, "
                f"got {len(line)}: {excerpt(line)}"
            )
        if line[sep] != SEPARATOR:
            raise DataError(
                f"{name}, line {i}: expected {SEPARATOR!r} in column {sep + 1}, got "
                f"{excerpt(line)}"
            )
    return sep, width


def _encode_chars(text: str, lines: list[str], name: str, vocab: Vocabulary) -> np.ndarray:
    """Ids of the characters of ``text`` as an int32 array of shape (len(text),)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # one code point per char
    chars = sorted(set(text))
    keys = np.array([ord(c) for c in chars], dtype=np.uint32)
    values = np.array([vocab.word_to_id.get(c, -1) for c in chars], dtype=np.int32)
    if (values < 0).any():
        missing = chars[int(np.argmax(values < 0))]
        line = next(i for i, s in enumerate(lines, 1) if missing in s)
        raise DataError(f"{name}, line {line}: character {missing!r} is not in the vocabulary")
    return values[np.searchsorted(keys, codes)]

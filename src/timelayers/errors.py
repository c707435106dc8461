"""The library's exceptions: one family, rooted at :class:`TimelayersError`."""

__all__ = [
    "excerpt",
    "TimelayersError",
    "ShapeError",
    "DataError",
    "OptionError",
    "DownloadError",
    "CheckpointError",
    "NonFiniteLossError",
]


EXCERPT_CHARS = 80
"""The most characters of a line of a file, or a word, that a message quotes."""


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` quoted for a message: its ``repr``, cut after ``limit`` characters
    with its length said (``'aaaa'... (214,000,000 characters)``)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


class TimelayersError(Exception):
    """Base class of every error raised on purpose by timelayers."""


class ShapeError(TimelayersError, ValueError):
    """An array has the wrong shape, dimension count or dtype for where it is used.

    The message names the layer (or function), the argument, the expected and the
    received shape.
    """


class DataError(TimelayersError, ValueError):
    """A data file or data value is malformed (the message names file and line)."""


class OptionError(TimelayersError, ValueError):
    """An option or argument is out of range, of the wrong type, or does not apply
    (the message names the option, what was expected and what was received)."""


class DownloadError(DataError):
    """A dataset could not be downloaded or failed its checksum."""


class CheckpointError(TimelayersError):
    """A checkpoint is missing, truncated, corrupt, or does not match the model."""


class NonFiniteLossError(TimelayersError, FloatingPointError):
    """Training produced a NaN or infinite loss (the message names epoch and iteration)."""

"""Reading the data sets' text files."""

from __future__ import annotations

from pathlib import Path

from timelayers.errors import DataError
from timelayers.serialization import read_input

__all__ = ["read_utf8"]


def read_utf8(path: Path, what: str = "data file") -> str:
    """The text of ``path``, newlines as ``\\n`` and a UTF-8 byte-order mark at its
    start dropped.

    Raises
    ------
    DataError
        When the file is not UTF-8 (naming the file and the first bad byte), is
        not a regular file (a FIFO, a device: refused before anything is read),
        or holds more than :data:`~timelayers.serialization.INPUT_LIMIT` bytes
        (``what`` names it in the message).
    """
    try:
        text = read_input(path, what).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                        f"{e.start}: {e.reason})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text

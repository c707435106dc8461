"""Reading the data sets' text files."""

from __future__ import annotations

from pathlib import Path

from timelayers.errors import DataError

__all__ = ["read_utf8"]


def read_utf8(path: Path) -> str:
    """The text of ``path``, newlines as ``\\n`` and a UTF-8 byte-order mark at its
    start dropped.

    Raises
    ------
    DataError
        When the file is not UTF-8 (naming the file and the first bad byte).
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                        f"{e.start}: {e.reason})") from None

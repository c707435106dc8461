"""The C allocator's settings for this process: freed memory kept for the next arrays.

Every training or decoding step makes and frees arrays of the same few sizes,
megabytes each, over and over. glibc's ``malloc`` serves an array above
``M_MMAP_THRESHOLD`` from a fresh mapping and returns the free memory at the top
of its heaps to the system once more than ``M_TRIM_THRESHOLD`` is free there; it
raises both as it sees large arrays freed, but not far enough for such a loop, so
memory goes back and the next array of that size touches new pages, each a page
fault in which the kernel zeroes the page. Answering 1,000 date questions made
300 to 3,400 page faults and 5 to 16 ms of system time a call, against 30 to 50
faults and 1 ms with the settings below (docs/RESULTS.md).

At import (``timelayers/__init__.py``), :func:`keep_freed_memory` sets
``M_MMAP_THRESHOLD`` to 32 MiB, the ceiling of glibc's own adaptive threshold,
and ``M_TRIM_THRESHOLD`` to 128 MiB: up to that much freed memory stays with the
process for its next arrays. It does nothing where the C library is not glibc
(macOS, Windows, musl), and nothing when the environment sets the allocator
itself (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or a
``glibc.malloc`` tunable in ``GLIBC_TUNABLES``): set one of them, to glibc's
default or anything else, to keep your own.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "KEEPS_FREED_MEMORY"]

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20

_M_TRIM_THRESHOLD = -1   # mallopt's parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _glibc():
    """The process's C library when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        return libc
    except (OSError, TypeError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Set the two thresholds (see the module docstring) unless the environment
    sets the allocator or the C library is not glibc; returns whether they were set."""
    if any(os.environ.get(name) for name in _USER_SETTINGS) or \
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


KEEPS_FREED_MEMORY = keep_freed_memory()

"""Reading and writing tensors in the safetensors format, through the
``safetensors`` package, with no pickle anywhere.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``)
and the raw tensor bytes. The package checks every size in the header against
the file before it allocates anything (a shape of ``10**30``, offsets beyond the
file and a ``2**60`` header length are refused); this module turns its errors
into :class:`CheckpointError` naming the file, and refuses dtypes NumPy cannot
hold (``BF16``, ``F8_*``).

Writes are atomic (:func:`atomic_write`): a crash mid-write leaves the previous
file intact, and the temporary file it leaves is removed by the next write.

Files written here carry a CRC-32 of their tensors in the metadata (key
``"timelayers.tensors_crc32"``, hidden from :func:`load_tensors`'s result), so a
file whose data was corrupted after writing is refused rather than loaded with
wrong weights. Files written by earlier versions carry ``"timelayers.crc32"``, a
CRC-32 of the whole data section, which is checked too. Files without either
(e.g. from the ``safetensors`` package itself) load without the check.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as _safetensors_bytes

from .backend import to_cpu
from .errors import CheckpointError, DataError

__all__ = ["save_tensors", "tensors_bytes", "load_tensors", "atomic_write", "write_json",
           "INPUT_LIMIT",
           "open_regular",
           "read_input", "sha256_file"]

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_SAVABLE = {np.dtype(v) for v in _DTYPES.values()}
_CRC_KEY = "timelayers.tensors_crc32"
_OLD_CRC_KEY = "timelayers.crc32"  # files written before the safetensors package was used
_TEMP_SUFFIX = ".tmp"


# -- atomic writes ------------------------------------------------------------------------
def atomic_write(path, write) -> None:
    """Write ``path`` atomically: ``write`` (bytes, or a callable given the open
    binary file) fills a temporary file beside ``path``, which is flushed, fsync'ed
    and renamed to ``path``.

    The file gets the permissions of a newly created file (``0o666`` less the
    umask). Temporary files beside ``path`` left by a write that was killed are
    removed first. On any error the temporary file is removed and ``path`` is
    untouched; an ``OSError`` (a full disk, a folder that is not writable) names
    ``path``.
    """
    if isinstance(write, (bytes, bytearray, memoryview)):
        data = write

        def write(f):
            f.write(data)

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=_TEMP_SUFFIX,
                                   dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_json(path, obj, *, indent=2, note=True) -> None:
    """Write ``obj`` as RFC 8259 JSON with :func:`atomic_write`. JSON has no
    token for NaN and the infinities: they are written as ``null``, and with
    ``note`` an object gets a ``"not_finite"`` entry saying what each was
    (``{"perplexity": "inf"}``, a list element as ``"loss[3]"``)."""
    replaced = {}

    def finite(value, where):
        if isinstance(value, dict):
            return {k: finite(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            replaced[where] = repr(value)
            return None
        return value

    value = finite(obj, "")
    if replaced and note and isinstance(value, dict):
        value["not_finite"] = replaced
    atomic_write(path, json.dumps(value, indent=indent, allow_nan=False).encode("utf-8"))


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name (``[Errno 28] No space left on device:
    'run/model.safetensors'``), unless it names a file already."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    try:  # Linux reports it without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere it can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _remove_stale_temps(path: Path) -> None:
    """Remove the temporary files of writes to ``path`` whose process is gone (the
    name holds the writer's pid; a name without one is from an older version)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)-)?[^.]*{re.escape(_TEMP_SUFFIX)}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or (match.group(1) and _process_alive(int(match.group(1)))):
            continue
        try:
            os.unlink(path.parent / name)
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


# -- reading inputs -----------------------------------------------------------------------
INPUT_LIMIT = 1 << 30
"""The most bytes a data or text input may hold (1 GiB): reading stops past it."""

_NOT_FILES = ((stat.S_ISDIR, "folder"), (stat.S_ISCHR, "character device"),
              (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
              (stat.S_ISSOCK, "socket"))


def open_regular(path, what="file", error=DataError):
    """``path`` opened for reading in binary, when it is a regular file (a link
    to one included); a FIFO, a device, a socket or a folder is refused with
    ``error`` naming ``what`` and ``path`` before anything is read (an endless
    stream, or one that never opens, would hang the reader)."""
    def refuse(mode):
        kind = next((name for test, name in _NOT_FILES if test(mode)), "special file")
        return error(f"{what} {str(path)!r} is a {kind}, not a regular file")

    mode = os.stat(path).st_mode  # FileNotFoundError names the path
    if not stat.S_ISREG(mode):
        raise refuse(mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO swapped in: no wait
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise refuse(mode)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _chunks(path, what, limit, error):
    """The bytes of the regular file ``path`` in blocks of 1 MiB, refused with
    ``error`` past ``limit`` bytes (None: :data:`INPUT_LIMIT`; a file that grows
    while read included)."""
    limit = INPUT_LIMIT if limit is None else limit
    total = 0
    with open_regular(path, what, error) as f:
        while block := f.read(1 << 20):
            total += len(block)
            if total > limit:
                raise error(f"{what} {str(path)!r} holds more than {limit:,} bytes, the most "
                            f"it may hold")
            yield block


def read_input(path, what="file", limit=None, error=DataError) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`), at most
    ``limit`` of them (else ``error``)."""
    return b"".join(_chunks(path, what, limit, error))


def sha256_file(path, what="file", limit=None, error=DataError) -> str:
    """Hex SHA-256 of the regular file ``path``, read in blocks, at most ``limit``
    bytes (else ``error``)."""
    digest = hashlib.sha256()
    for block in _chunks(path, what, limit, error):
        digest.update(block)
    return digest.hexdigest()


# -- tensors ------------------------------------------------------------------------------
def save_tensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write named arrays (NumPy or CuPy) and string metadata to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
    tensors : dict of str -> array
        Any byte order in; written little-endian, in C order.
    metadata : dict of str -> str, optional
    """
    atomic_write(path, tensors_bytes(tensors, metadata))


def tensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    """The bytes :func:`save_tensors` writes (the CRC-32 of the tensors added to
    the metadata)."""
    arrays = {}
    for name, value in tensors.items():
        a = np.asarray(to_cpu(value))
        if a.dtype.newbyteorder("=") not in _SAVABLE:
            raise TypeError(f"save_tensors: tensor {name!r} has unsupported dtype {a.dtype}")
        arrays[name] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise TypeError(f"save_tensors: metadata values must be strings, not for {bad}")
    metadata[_CRC_KEY] = _tensors_crc(arrays)
    return _safetensors_bytes(arrays, metadata=metadata)


def load_tensors(path):
    """Read a safetensors file; the ``safetensors`` package checks its structure
    against the file's size before anything is allocated.

    Returns
    -------
    tensors : dict of str -> numpy.ndarray (writable copies, by name)
    metadata : dict of str -> str

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, or its header is malformed, a dtype is
        not one NumPy holds, or the CRC-32 written with it does not match; the
        message names the file.
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if path.is_dir():
        raise CheckpointError(f"{where} is a folder, not a file")
    if not path.exists():
        raise CheckpointError(f"{where} does not exist")
    open_regular(path, "checkpoint", CheckpointError).close()
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = dict(f.metadata() or {})
            names = sorted(f.keys())
            for name in names:
                code = f.get_slice(name).get_dtype()
                if code not in _DTYPES:
                    raise CheckpointError(f"{where}: tensor {name!r} has dtype {code}, which is "
                                          f"not supported (one of {sorted(_DTYPES)})")
            tensors = {name: f.get_tensor(name) for name in names}
    except SafetensorError as exc:
        raise CheckpointError(f"{where} is not a valid safetensors file: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{where} cannot be read: {exc.strerror or exc}") from None
    _check_crc(path, where, tensors, metadata)
    return tensors, metadata


def _check_crc(path, where, tensors, metadata) -> None:
    """Check (and remove from ``metadata``) the CRC-32 written with the file."""
    if _CRC_KEY in metadata:
        want, got = metadata.pop(_CRC_KEY), _tensors_crc(tensors)
    elif _OLD_CRC_KEY in metadata:
        want, got = metadata.pop(_OLD_CRC_KEY), _data_section_crc(path)
    else:
        return
    if got != want:
        raise CheckpointError(f"{where} is corrupt: the tensor data's CRC-32 is {got}, the "
                              f"header says {want}")


def _tensors_crc(arrays: dict) -> str:
    """CRC-32 of the little-endian C-order bytes of every array, by name."""
    crc = 0
    for name in sorted(arrays):
        a = np.asarray(arrays[name], dtype=arrays[name].dtype.newbyteorder("<"), order="C")
        crc = zlib.crc32(a.reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def _data_section_crc(path) -> str:
    """CRC-32 of everything after the header, read in blocks."""
    crc = 0
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"

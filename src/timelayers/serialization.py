"""Reading and writing tensors in the safetensors format, with no pickle anywhere.

A safetensors file is: an 8-byte little-endian header length ``n``, ``n`` bytes of
JSON (``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``),
then the raw little-endian tensor bytes. Files written here load with the
``safetensors`` package, and its files load here.

Writes are atomic: a temporary file in the same folder is written, flushed and
fsync'ed, then renamed over the target, so a crash mid-write leaves the previous
file intact.

Files written here carry a CRC-32 of the tensor bytes in the metadata (key
``"timelayers.crc32"``, hidden from :func:`load_tensors`'s result), so a file whose
data was corrupted after writing is refused rather than loaded with wrong
weights. Files without the key (e.g. from the ``safetensors`` package) load
without the check.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .backend import to_cpu
from .errors import CheckpointError

__all__ = ["save_tensors", "load_tensors", "atomic_write"]

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024
_CRC_KEY = "timelayers.crc32"


def atomic_write(path, write) -> None:
    """Write ``path`` atomically: ``write`` (bytes, or a callable given the open
    binary file) fills a temporary file beside ``path``, which is flushed, fsync'ed
    and renamed to ``path``. On any error the temporary file is removed and
    ``path`` is untouched (``OSError`` when the folder is not writable)."""
    if isinstance(write, (bytes, bytearray, memoryview)):
        data = write

        def write(f):
            f.write(data)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_tensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write named arrays (NumPy or CuPy) and string metadata to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
    tensors : dict of str -> array
    metadata : dict of str -> str, optional
    """
    header = {}
    arrays = []
    offset = 0
    for name, value in tensors.items():
        a = np.asarray(to_cpu(value), order="C")  # (not ascontiguousarray: it makes 0-d 1-d)
        code = _CODES.get(a.dtype.newbyteorder("="))  # any byte order in, little-endian out
        if code is None:
            raise TypeError(f"save_tensors: tensor {name!r} has unsupported dtype {a.dtype}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a.reshape(-1).view(np.uint8))  # the raw bytes, no copy
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise TypeError(f"save_tensors: metadata values must be strings, not for {bad}")
    crc = 0
    for a in arrays:
        crc = zlib.crc32(a, crc)
    metadata[_CRC_KEY] = f"{crc:08x}"
    header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in arrays:
            f.write(a)

    atomic_write(path, write)


def load_tensors(path):
    """Read a safetensors file, checking its structure before using any of it.

    Returns
    -------
    tensors : dict of str -> numpy.ndarray (in file order)
    metadata : dict of str -> str

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, or its header is malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file") from None
    where = f"checkpoint {str(path)!r}"
    if len(data) < 8:
        raise CheckpointError(f"{where} is truncated ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(f"{where} is truncated or not a safetensors file "
                              f"(header of {n} bytes, file of {len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{where} has a corrupt header: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} has a corrupt header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{where} has a corrupt header (__metadata__ is not a map of "
                              f"strings)")
    body = memoryview(data)[8 + n:]
    tensors = {}
    expected_start = 0
    entries = sorted(header.items(), key=lambda kv: _offsets(where, kv)[0])
    for name, info in entries:
        start, end = _offsets(where, (name, info))
        code = info.get("dtype")
        dtype = _DTYPES.get(code) if isinstance(code, str) else None
        shape = info.get("shape")
        if dtype is None:
            raise CheckpointError(f"{where}: tensor {name!r} has dtype {code!r}, which is not "
                                  f"supported (one of {sorted(_DTYPES)})")
        if not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise CheckpointError(f"{where}: tensor {name!r} has a bad shape {shape!r} in the "
                                  f"header")
        if start != expected_start or end > len(body):
            raise CheckpointError(f"{where}: tensor {name!r} lies outside the file "
                                  f"(bytes {start}..{end} of {len(body)}); the file is truncated "
                                  f"or corrupt")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if end - start != nbytes:
            raise CheckpointError(f"{where}: tensor {name!r} has {end - start} bytes for shape "
                                  f"{tuple(shape)} of {np.dtype(dtype).name}")
        tensors[name] = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<")) \
            .astype(dtype).reshape(shape)
        expected_start = end
    if expected_start != len(body):
        raise CheckpointError(f"{where} has {len(body) - expected_start} unexpected trailing bytes")
    if _CRC_KEY in metadata:
        metadata = dict(metadata)
        want = metadata.pop(_CRC_KEY)
        got = f"{zlib.crc32(body):08x}"
        if got != want:
            raise CheckpointError(f"{where} is corrupt: the tensor data's CRC-32 is {got}, the "
                                  f"header says {want}")
    order = {name: i for i, name in enumerate(header)}
    return dict(sorted(tensors.items(), key=lambda kv: order[kv[0]])), metadata


def _offsets(where, item):
    name, info = item
    offs = info.get("data_offsets") if isinstance(info, dict) else None
    if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)
            and 0 <= offs[0] <= offs[1]):
        raise CheckpointError(f"{where}: tensor {name!r} has bad data offsets in the header")
    return offs

"""Read the book's pickled weights safely.

The book distributes trained weights as pickles: a list of float16 arrays (a
model's ``params``, e.g. ``Rnnlm.pkl``, saved by ``pickle.dump([p.astype(np.float16)
for p in model.params], f)``), or for word2vec a dict ``{'word_vecs': (V, H) array,
'word_to_id': {str: int}, 'id_to_word': {int: str}}`` (``cbow_params.pkl``).
Unpickling runs whatever the file names, so this module reads them with a
restricted unpickler of its own (no library does this job):

- it resolves only what such a file needs -- NumPy's array reconstruction
  functions, ``ndarray`` (as an argument, never called) and plain numeric
  ``dtype``s; lists, tuples, dicts, strings and ints are native to pickle -- and
  refuses anything else *before* it is called (sets too, when they start);
- it checks every declared shape against the data the file really holds, and
  every state it sets on an array or a dtype (no object dtypes, no sub-array or
  structured dtypes, no flags), so a small crafted file cannot allocate more
  than it holds (a zero-stride view of a few bytes, a shape of ``10**12``);
- it counts what a crafted file could make cost far more memory than its bytes:
  every opcode (each pushes an object, or at least a slot of the stack, for as
  little as one byte) and every entry it puts in a dict, a list or its memo
  (a slot of a hash table or a list); it refuses more than
  :data:`ENTRIES_PER_FILE_BYTE` per byte of the file (plus :data:`FREE_ENTRIES`).
  Crafted files of dicts, lists, memo entries or bare pushes are refused before
  their objects take 2.5 times their file (measured: 0.4 to 2.4 times; the steps
  are dict tables doubling), while the book's ``cbow_params.pkl`` (10000 words
  and 100 float16 a word: about 80000 counts in 2.2 MB) uses 83% of its allowance;
- it reads the file as it goes, never holding a second copy of it.

What was read is then checked to be one of the two forms above, with keys and
values of exactly those types.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..serialization import open_regular

__all__ = ["UnsafePickleError", "load_book_pickle", "WORD_VECTOR_KEYS", "ENTRIES_PER_FILE_BYTE",
           "FREE_ENTRIES"]

WORD_VECTOR_KEYS = ("word_vecs", "word_to_id", "id_to_word")
"""The keys of the book's word2vec pickle, in the order it writes them."""

ENTRIES_PER_FILE_BYTE = 1 / 24
FREE_ENTRIES = 4096

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class UnsafePickleError(CheckpointError):
    """The pickle asked for something other than NumPy arrays, lists and tuples."""


class _NdarrayType:
    """Stands for ``numpy.ndarray`` inside the pickle: an argument of
    ``_reconstruct``, which cannot be called (``ndarray(shape, dtype, buffer,
    offset, strides)`` would make views of any size over a few bytes)."""

    def __call__(self, *args):
        raise UnsafePickleError("refusing to call numpy.ndarray from a weights pickle (it can "
                                "view a few bytes as an array of any size)")


_NDARRAY = _NdarrayType()


def _plain_dtype(spec, align=False, copy=False):
    """``numpy.dtype(spec)`` for a plain numeric dtype only."""
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS or dtype.fields or dtype.subdtype:
        raise UnsafePickleError(f"refusing dtype {spec!r} in a weights pickle: only numeric "
                                f"dtypes are allowed")
    return np.dtype(spec, align, copy)


def _array_bytes(shape, dtype) -> int:
    if not (isinstance(shape, tuple)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise UnsafePickleError(f"refusing array shape {shape!r} in a weights pickle")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:
        raise UnsafePickleError(f"refusing dtype {dtype!r} in a weights pickle: only numeric "
                                f"dtypes are allowed")
    return math.prod(shape) * dtype.itemsize  # Python ints: no overflow


class _ArraysOnlyUnpickler(pickle._Unpickler):  # the Python unpickler: its BUILD can be checked
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size: int):
        super().__init__(file)
        self.size = size  # the file's byte count: no array can hold more
        self.entries_left = int(size * ENTRIES_PER_FILE_BYTE) + FREE_ENTRIES
        self.allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): _plain_dtype,
            ("_codecs", "encode"): _latin1_bytes,  # how pickle protocol 2 stores bytes
        }

    def find_class(self, module, name):
        found = self.allowed.get((module, name))
        if found is None:
            raise UnsafePickleError(f"refusing to load {module}.{name} from a weights pickle: "
                                    f"only lists, tuples, dicts and NumPy arrays are allowed")
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a pickle with persistent ids")

    def _check_size(self, shape, dtype) -> None:
        nbytes = _array_bytes(shape, dtype)
        if nbytes > self.size:
            raise UnsafePickleError(f"refusing an array of shape {shape} ({nbytes} bytes) in a "
                                    f"weights pickle of {self.size} bytes")

    def _reconstruct(self, subtype, shape, typecode):
        """NumPy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array whose
        state (shape, dtype, data) the next BUILD sets."""
        if subtype is not _NDARRAY:
            raise UnsafePickleError(f"refusing to reconstruct a {type(subtype).__name__} in a "
                                    f"weights pickle")
        self._check_size(shape, np.dtype(np.uint8))
        return np.empty(shape, dtype=np.uint8)

    def _frombuffer(self, buffer, dtype, shape, order):
        """NumPy's ``_frombuffer`` (pickle protocol 5): ``buffer`` viewed as an
        array, which must hold exactly ``shape``."""
        nbytes = _array_bytes(tuple(shape) if isinstance(shape, (tuple, list)) else shape, dtype)
        if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != nbytes:
            raise UnsafePickleError(f"refusing a buffer that does not hold an array of shape "
                                    f"{shape} and dtype {dtype}")
        if order not in ("C", "F"):
            raise UnsafePickleError(f"refusing array order {order!r} in a weights pickle")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)

    def load_build(self):
        """BUILD sets an object's state: allowed for the arrays and dtypes made
        above only, after the state is checked."""
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is np.ndarray and isinstance(state, tuple) and len(state) == 5:
            _, shape, dtype, _, data = state
            self._check_size(shape, dtype)
            if not isinstance(data, bytes) or len(data) != _array_bytes(shape, dtype):
                raise UnsafePickleError(f"refusing array data that does not match shape "
                                        f"{shape} and dtype {dtype}")
        elif isinstance(target, np.dtype) and isinstance(state, tuple) and len(state) == 8:
            if state[2:] != (None, None, None, -1, -1, 0):  # what plain dtypes pickle
                raise UnsafePickleError("refusing a structured, sub-array, sized or flagged "
                                        "dtype in a weights pickle")
        else:
            raise UnsafePickleError(f"refusing to set the state of a {type(target).__name__} "
                                    f"in a weights pickle")
        target.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self):
        """BYTEARRAY8 (protocol 5): the Python unpickler allocates the declared
        length before reading; here it may not exceed the file."""
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self.size:
            raise UnsafePickleError(f"refusing a bytearray of {n} bytes in a weights pickle of "
                                    f"{self.size} bytes")
        data = bytearray(n)
        self.readinto(data)
        self.append(data)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def _count(self, entries: int) -> None:
        self.entries_left -= entries
        if self.entries_left < 0:
            raise UnsafePickleError(f"refusing more dict, list and memo entries than a weights "
                                    f"pickle of {self.size} bytes holds (at most "
                                    f"{int(self.size * ENTRIES_PER_FILE_BYTE) + FREE_ENTRIES})")

    def _set_builder(self):
        raise UnsafePickleError("refusing a set in a weights pickle: only lists, tuples, dicts "
                                "and NumPy arrays are allowed")


def _counted(load, entries):
    """The opcode handler ``load``, after counting the entries it adds
    (``entries(unpickler)``, read before it runs)."""

    def counted_load(self):
        self._count(entries(self))
        load(self)

    return counted_load


_CONTAINER_ENTRIES = {  # opcode: the dict, list or memo entries it adds
    pickle.SETITEM: lambda u: 1, pickle.APPEND: lambda u: 1,
    pickle.SETITEMS: lambda u: len(u.stack) // 2, pickle.DICT: lambda u: len(u.stack) // 2,
    pickle.APPENDS: lambda u: len(u.stack), pickle.LIST: lambda u: len(u.stack),
    pickle.MEMOIZE: lambda u: 1, pickle.PUT: lambda u: 1, pickle.BINPUT: lambda u: 1,
    pickle.LONG_BINPUT: lambda u: 1}
for _code in list(_ArraysOnlyUnpickler.dispatch):
    # every opcode counts one (it pushes an object, or a slot on the stack), and those
    # that fill a container or the memo one more for each entry
    _extra = _CONTAINER_ENTRIES.get(bytes([_code]), lambda u: 0)
    _ArraysOnlyUnpickler.dispatch[_code] = _counted(
        _ArraysOnlyUnpickler.dispatch[_code], (lambda extra: lambda u: 1 + extra(u))(_extra))
for _opcode in (pickle.EMPTY_SET, pickle.FROZENSET, pickle.ADDITEMS):
    _ArraysOnlyUnpickler.dispatch[_opcode[0]] = _ArraysOnlyUnpickler._set_builder


class _ClampedReader:
    """An open file whose ``read(n)`` asks for no more than the file still holds:
    a buffered file allocates the ``n`` it is asked for before reading, and a
    pickle's byte and string lengths are the file's to declare."""

    def __init__(self, file, size: int):
        self.file, self.size = file, size
        self.readline, self.readinto = file.readline, file.readinto

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.file.tell(), 0)
        return self.file.read(left if n < 0 else min(n, left))


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing a call of _codecs.encode other than bytes in latin-1")
    return text.encode("latin1")


def load_book_pickle(path):
    """Read a book weights file: a list of NumPy arrays of plain numeric dtypes
    (returned as a list; a tuple is read as one), or the book's word-vector dict
    ``{'word_vecs': array, 'word_to_id': {str: int}, 'id_to_word': {int: str}}``
    (returned as a dict with those three keys; the entries' consistency is the
    importer's to check).

    Raises
    ------
    UnsafePickleError
        If the pickle references anything but NumPy arrays and numeric dtypes,
        declares an array larger than the file, or holds more entries than its
        size allows.
    CheckpointError
        If the file is missing, corrupt, or holds neither form.
    """
    path = Path(path)
    where = f"weights file {str(path)!r}"
    try:
        file = open_regular(path, "weights file", CheckpointError)
    except FileNotFoundError:
        raise CheckpointError(f"{where} does not exist") from None
    with file:
        try:
            size = os.fstat(file.fileno()).st_size
            obj = _ArraysOnlyUnpickler(_ClampedReader(file, size), size).load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{where}: {exc}") from None
        except Exception as exc:  # any malformed pickle
            raise CheckpointError(f"{where} is not a readable pickle: {exc}") from None
    if isinstance(obj, dict):
        return _word_vector_dict(obj, where)
    if not isinstance(obj, (list, tuple)) or not all(type(a) is np.ndarray for a in obj):
        raise CheckpointError(f"{where} does not hold a list of arrays (nor the book's "
                              f"word-vector dict)")
    return list(obj)


def _word_vector_dict(obj: dict, where: str) -> dict:
    """``obj`` if it has the book's word-vector keys and types, else a
    :class:`CheckpointError` naming what differs."""
    if set(obj) != set(WORD_VECTOR_KEYS):
        keys = sorted(map(repr, obj))
        raise CheckpointError(f"{where} holds a dict with keys [{', '.join(keys)}], not the "
                              f"book's word vectors ({', '.join(WORD_VECTOR_KEYS)})")
    if type(obj["word_vecs"]) is not np.ndarray:
        raise CheckpointError(f"{where}: 'word_vecs' is a {type(obj['word_vecs']).__name__}, "
                              f"not an array")
    for name, key_type, value_type in (("word_to_id", str, int), ("id_to_word", int, str)):
        table = obj[name]
        if type(table) is not dict:
            raise CheckpointError(f"{where}: {name!r} is a {type(table).__name__}, not a dict")
        bad = next(((k, v) for k, v in table.items()
                    if type(k) is not key_type or type(v) is not value_type), None)
        if bad is not None:
            raise CheckpointError(f"{where}: {name!r} maps {key_type.__name__} to "
                                  f"{value_type.__name__} in the book's format, but holds "
                                  f"{_short(bad[0])}: {_short(bad[1])}")
    return dict(obj)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

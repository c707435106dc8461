"""Import the book's pretrained weights safely.

The book distributes trained weights as pickled lists of float16 arrays (for
example ``BetterRnnlm.pkl``, saved by ``pickle.dump([p.astype(np.float16) for p
in model.params], f)``). Unpickling runs whatever the file names, so this module
reads them with a restricted unpickler of its own (no library does this job):

- it resolves only what such a file needs -- NumPy's array reconstruction
  functions, ``ndarray`` (as an argument, never called) and plain numeric
  ``dtype``s; lists and tuples are native to pickle -- and refuses anything else
  *before* it is called;
- it checks every declared shape against the data the file really holds, and
  every state it sets on an array or a dtype (no object dtypes, no sub-array or
  structured dtypes, no flags), so a small crafted file cannot allocate more
  than it holds (a zero-stride view of a few bytes, a shape of ``10**12``).

The arrays are matched to a model's params in layer order, ties included (the
book saves the tied output weight as its own array; it is checked, not loaded).
Their shapes are checked against the model they describe before it is built,
and their values for NaN and infinities.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from .errors import CheckpointError

__all__ = ["UnsafePickleError", "load_book_pickle", "model_from_book_params", "import_book_weights",
           "BOOK_MODELS"]

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
                                    f"only lists, tuples and NumPy arrays are allowed")
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


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing a call of _codecs.encode other than bytes in latin-1")
    return text.encode("latin1")


def load_book_pickle(path) -> list:
    """Read a book weights file: a list (or tuple) of NumPy arrays of plain
    numeric dtypes.

    Raises
    ------
    UnsafePickleError
        If the pickle references anything but NumPy arrays and numeric dtypes, or
        declares an array larger than the file.
    CheckpointError
        If the file is missing, corrupt, or does not hold a list of arrays.
    """
    path = Path(path)
    where = f"weights file {str(path)!r}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where} is a folder, not a file") from None
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(data), len(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{where}: {exc}") from None
    except Exception as exc:  # any malformed pickle
        raise CheckpointError(f"{where} is not a readable pickle: {exc}") from None
    if not isinstance(obj, (list, tuple)) or not all(type(a) is np.ndarray for a in obj):
        raise CheckpointError(f"{where} does not hold a list of arrays")
    return list(obj)


def _rnnlm_shapes(arrays):
    """The config of the book's Rnnlm that ``arrays`` describe, and the shapes of
    its six arrays (embedding, LSTM Wx, Wh, b, affine W, b)."""
    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    config = {"vocab_size": V, "wordvec_size": D, "hidden_size": H}
    return config, [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (H, V), (V,)]


def _better_rnnlm_shapes(arrays):
    """The config of the book's BetterRnnlm (two or more LSTM layers, the affine
    W tied to the embedding) and the shapes of its arrays."""
    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    num_layers = (len(arrays) - 3) // 3
    shapes = [(V, D)]
    for i in range(num_layers):
        shapes += [(D if i == 0 else H, 4 * H), (H, 4 * H), (4 * H,)]
    config = {"vocab_size": V, "wordvec_size": D, "hidden_size": H, "num_layers": num_layers}
    return config, shapes + [(H, V), (V,)]


BOOK_MODELS = {"rnnlm": ("Rnnlm", _rnnlm_shapes), "better-rnnlm": ("BetterRnnlm", _better_rnnlm_shapes)}


def model_from_book_params(kind: str, arrays: list, source: str = "the weights"):
    """Build the model ``kind`` ("rnnlm" or "better-rnnlm") sized from the book's
    arrays and load them (cast to float32).

    The arrays' shapes are checked against the model they describe before it is
    built, so arrays that declare large sizes without holding the data (an empty
    ``(20000, 0)`` array setting the hidden size) are refused without allocating.

    Raises
    ------
    CheckpointError
        When the arrays do not fit the model (count, shapes, NaN or infinite
        values, or a tied weight that is not the transpose of its source); the
        message starts with ``source``.
    """
    from . import models

    if kind not in BOOK_MODELS:
        raise ValueError(f"argument 'model' expected one of {sorted(BOOK_MODELS)}, got {kind!r}")
    class_name, shapes_of = BOOK_MODELS[kind]
    try:
        config, shapes = shapes_of(arrays)
    except (IndexError, ValueError) as exc:
        raise CheckpointError(f"{source}: the arrays do not look like the book's {kind}: "
                              f"{exc}") from None
    if len(shapes) != len(arrays):
        raise CheckpointError(f"{source}: the book's {kind} has {len(shapes)} arrays, the file "
                              f"has {len(arrays)}")
    for i, (shape, a) in enumerate(zip(shapes, arrays)):
        if tuple(a.shape) != shape:
            raise CheckpointError(f"{source}: array {i} has shape {tuple(a.shape)}, the book's "
                                  f"{kind} with {config} has {shape}")
    try:
        model = getattr(models, class_name)(**config)
    except ValueError as exc:
        raise CheckpointError(f"{source}: the arrays do not look like the book's {kind}: "
                              f"{exc}") from None
    named = list(model.named_param_slots())
    for (name, p, _), a in zip(named, arrays):
        if tuple(p.shape) != tuple(a.shape):
            raise CheckpointError(f"{source}: array for {name!r} has shape {tuple(a.shape)}, "
                                  f"expected {tuple(p.shape)}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{source}: array for {name!r} has NaN or infinite values")
    values = {name: a for (name, _, _), a in zip(named, arrays)}
    state = {name: values[name].astype(np.float32) for name in model.param_names}
    model.load_state_dict(state)
    for tied, source_name, transpose in getattr(model, "_ties", []):
        want = values[source_name].T if transpose else values[source_name]
        if not np.array_equal(values[tied], want):
            raise CheckpointError(f"{source}: array for {tied!r} is not tied to "
                                  f"{source_name!r} as expected")
    return model


def import_book_weights(kind: str, pkl_path, out_path, vocab=None):
    """Read the book's pickled weights for ``kind`` and write a timelayers checkpoint.

    Parameters
    ----------
    kind : {"rnnlm", "better-rnnlm"}
    pkl_path, out_path : paths
    vocab : Vocabulary, optional
        Stored with the model (the book's models use the PTB vocabulary); it must
        have one word per row of the embedding.

    Returns
    -------
    the loaded model
    """
    from .models.base import check_vocab_fits, config_dict

    where = f"weights file {str(pkl_path)!r}"
    model = model_from_book_params(kind, load_book_pickle(pkl_path), source=where)
    if vocab is not None:
        check_vocab_fits(vocab, config_dict(model), where, type(model).__name__)
        model.vocab = vocab
    model.save(out_path)
    return model

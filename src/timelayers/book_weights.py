"""Import the book's pretrained weights safely.

The book distributes trained weights as pickled lists of float16 arrays (for
example ``BetterRnnlm.pkl``, saved by ``pickle.dump([p.astype(np.float16) for p
in model.params], f)``). Unpickling runs whatever the file names, so this module
reads them with a restricted unpickler that resolves only what such a file
needs — NumPy's array reconstruction functions, ``ndarray`` and ``dtype``; lists
and tuples are native to pickle — and refuses anything else *before* it is called.

The arrays are matched to a model's params in layer order, ties included (the
book saves the tied output weight as its own array; it is checked, not loaded).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from .errors import CheckpointError

__all__ = ["UnsafePickleError", "load_book_pickle", "model_from_book_params", "import_book_weights",
           "BOOK_MODELS"]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how pickle protocol 2 stores bytes; it only encodes a string
}


class UnsafePickleError(CheckpointError):
    """The pickle asked for something other than NumPy arrays, lists and tuples."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name} from a weights pickle: only "
                                f"lists, tuples and NumPy arrays are allowed")

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a pickle with persistent ids")


def load_book_pickle(path) -> list:
    """Read a book weights file: a list (or tuple) of NumPy arrays.

    Raises
    ------
    UnsafePickleError
        If the pickle references anything but NumPy arrays and dtypes.
    CheckpointError
        If the file is missing, corrupt, or does not hold a list of arrays.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"weights file {str(path)!r} does not exist") from None
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # any malformed pickle
        raise CheckpointError(f"weights file {str(path)!r} is not a readable pickle: {exc}") from None
    if not isinstance(obj, (list, tuple)) or not all(isinstance(a, np.ndarray) for a in obj):
        raise CheckpointError(f"weights file {str(path)!r} does not hold a list of arrays")
    return list(obj)


def _rnnlm(arrays, cell="lstm"):
    from .models import Rnnlm

    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    return Rnnlm(V, D, H, cell=cell)


def _better_rnnlm(arrays):
    from .models import BetterRnnlm

    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    n_layers = (len(arrays) - 3) // 3
    return BetterRnnlm(V, D, H, num_layers=n_layers)


BOOK_MODELS = {"rnnlm": _rnnlm, "better-rnnlm": _better_rnnlm}


def model_from_book_params(kind: str, arrays: list):
    """Build the model ``kind`` ("rnnlm" or "better-rnnlm") sized from the book's
    arrays and load them (cast to float32).

    Raises
    ------
    CheckpointError
        When the arrays do not fit the model (count, shapes, or a tied weight that
        is not the transpose of its source).
    """
    if kind not in BOOK_MODELS:
        raise ValueError(f"argument 'model' expected one of {sorted(BOOK_MODELS)}, got {kind!r}")
    try:
        model = BOOK_MODELS[kind](arrays)
    except (IndexError, ValueError) as exc:
        raise CheckpointError(f"the weights do not look like the book's {kind}: {exc}") from None
    named = list(model._all_named())
    if len(named) != len(arrays):
        raise CheckpointError(f"the book's {kind} has {len(named)} arrays, the file has {len(arrays)}")
    for (name, p, _), a in zip(named, arrays):
        if tuple(p.shape) != tuple(a.shape):
            raise CheckpointError(f"array for {name!r} has shape {tuple(a.shape)}, "
                                  f"expected {tuple(p.shape)}")
    values = {name: a for (name, _, _), a in zip(named, arrays)}
    state = {name: values[name].astype(np.float32) for name in model.param_names}
    model.load_state_dict(state)
    for tied, source, transpose in getattr(model, "_ties", []):
        want = values[source].T if transpose else values[source]
        if not np.array_equal(values[tied], want):
            raise CheckpointError(f"array for {tied!r} is not tied to {source!r} as expected")
    return model


def import_book_weights(kind: str, pkl_path, out_path, vocab=None):
    """Read the book's pickled weights for ``kind`` and write a timelayers checkpoint.

    Parameters
    ----------
    kind : {"rnnlm", "better-rnnlm"}
    pkl_path, out_path : paths
    vocab : Vocabulary, optional
        Stored with the model (the book's models use the PTB vocabulary).

    Returns
    -------
    the loaded model
    """
    model = model_from_book_params(kind, load_book_pickle(pkl_path))
    if vocab is not None:
        model.vocab = vocab
    model.save(out_path)
    return model

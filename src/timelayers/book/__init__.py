"""The book's files in Python: its pickled weights read safely, and into our models.

    params = timelayers.book.load_pickle("ch06/Rnnlm.pkl")      # list of arrays
    vectors = timelayers.book.load_pickle("ch04/cbow_params.pkl")
    # {"word_vecs": (V, D), "word_to_id": {str: int}, "id_to_word": {int: str}}
    model = timelayers.book.read_book_model("rnnlm", "ch06/Rnnlm.pkl", vocab=ptb_vocab)
    cbow = timelayers.book.read_book_model("cbow", "ch04/cbow_params.pkl")  # its own vocabulary

:func:`load_pickle` reads with a restricted unpickler (lists, tuples, the
word-vector dict and plain numeric NumPy arrays only; see
:mod:`timelayers.book.pickle`); :func:`read_book_model` builds the model of a kind
of :data:`BOOK_MODELS` from it; :func:`import_book_weights` and
:func:`import_book_run` write it as a checkpoint or a run folder (the command
``timelayers import-book-weights``).
"""

from .pickle import UnsafePickleError, load_book_pickle
from .weights import (BOOK_MODELS, book_data_vocabulary, import_book_run, import_book_weights,
                      read_book_model)

load_pickle = load_book_pickle
"""The book's ``.pkl`` file as plain Python: :func:`~timelayers.book.pickle.load_book_pickle`."""

__all__ = ["load_pickle", "load_book_pickle", "read_book_model", "import_book_weights",
           "import_book_run", "book_data_vocabulary", "BOOK_MODELS", "UnsafePickleError"]

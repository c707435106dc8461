"""A two-way map between tokens (words or characters) and integer ids.

Ids are assigned ``0, 1, 2, ...`` in order of first occurrence, as in the book,
so ``id_to_word`` is always the contiguous list ``words`` seen through a dict.

>>> vocab = Vocabulary("you say goodbye and i say hello .".split())
>>> vocab.encode(["say", "hello"]).tolist()
[1, 5]
>>> vocab.decode([0, 1])
['you', 'say']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from timelayers.backend import to_cpu
from timelayers.errors import DataError, ShapeError, TimelayersError
from timelayers.serialization import atomic_write, read_input

__all__ = ["Vocabulary", "UnknownWordError"]

_FORMAT = "timelayers.vocabulary"
_VERSION = 1


class UnknownWordError(TimelayersError, KeyError):
    """A word (or character) is not in the vocabulary.

    Attributes
    ----------
    word : str
        The word that was looked up.
    size : int
        The number of words in the vocabulary.
    """

    def __init__(self, word: str, size: int):
        self.word = word
        self.size = size
        super().__init__(word)

    def __str__(self) -> str:  # KeyError would show repr(args[0]) only
        return f"word {self.word!r} is not in the vocabulary ({self.size} words)"


class Vocabulary:
    """Words (or characters) and their ids, in order of first occurrence (example: the module's).

    Parameters
    ----------
    words : iterable of str, optional
        Tokens to add, in order; repeated tokens keep their first id.

    ``word_to_id`` (str to int) and ``id_to_word`` (ids ``0 .. len(self) - 1`` to
    str) are the book's two dicts; :meth:`add` and :meth:`update` grow both.
    """

    __hash__ = None  # mutable: equal vocabularies must not be dict keys

    def __init__(self, words: Iterable[str] = ()):
        self.word_to_id: dict[str, int] = {}
        self.id_to_word: dict[int, str] = {}
        self.update(words)

    # -- building -----------------------------------------------------------
    def add(self, word: str) -> int:
        """Add ``word`` if it is new and return its id."""
        wid = self.word_to_id.get(word)
        if wid is None:
            if not isinstance(word, str):
                raise TypeError(f"Vocabulary.add: word must be a str, got {type(word).__name__}")
            wid = len(self.word_to_id)
            self.word_to_id[word] = wid
            self.id_to_word[wid] = word
        return wid

    def update(self, words: Iterable[str]) -> None:
        """Add every word of ``words`` in order (a string adds its characters)."""
        for word in words:
            self.add(word)

    # -- container protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self.word_to_id)

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_id

    def __iter__(self):
        """Iterate over the words in id order."""
        return iter(self.word_to_id)

    def __getitem__(self, word: str) -> int:
        """The id of ``word``; raises :class:`UnknownWordError` when absent."""
        try:
            return self.word_to_id[word]
        except KeyError:
            raise UnknownWordError(word, len(self)) from None

    @property
    def words(self) -> list[str]:
        """The words in id order (``words[i]`` has id ``i``)."""
        return list(self.word_to_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.word_to_id == other.word_to_id

    def __repr__(self) -> str:
        head = ", ".join(repr(w) for w in list(self.word_to_id)[:5])
        more = ", ..." if len(self) > 5 else ""
        return f"Vocabulary({len(self)} words: [{head}{more}])"

    # -- conversion ---------------------------------------------------------
    def encode(self, words: Iterable[str]) -> np.ndarray:
        """Map words to ids.

        Parameters
        ----------
        words : iterable of str
            Length ``T``; a ``str`` is read as its characters.

        Returns
        -------
        ids : ndarray of int32, shape (T,)

        Raises
        ------
        UnknownWordError
            Naming the first word that is not in the vocabulary.
        """
        w2i = self.word_to_id
        if not isinstance(words, (list, tuple, str)):
            words = list(words)
        try:
            return np.fromiter((w2i[w] for w in words), dtype=np.int32, count=len(words))
        except KeyError as e:
            raise UnknownWordError(e.args[0], len(self)) from None

    def decode(self, ids) -> list[str]:
        """Map ids back to words.

        Parameters
        ----------
        ids : array_like of int, shape (T,)
            NumPy or CuPy array, or a sequence of ints.

        Returns
        -------
        list of str, length T

        Raises
        ------
        ShapeError
            If ``ids`` is not one-dimensional.
        DataError
            If an id is outside ``0 .. len(self) - 1``.
        """
        arr = to_cpu(ids)
        if arr.ndim != 1:
            raise ShapeError(f"Vocabulary.decode: ids must have shape (T,), got {arr.shape}")
        if arr.size == 0:
            return []
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"Vocabulary.decode: ids must be integers, got dtype {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= len(self):
            bad = lo if lo < 0 else hi
            raise DataError(f"id {bad} is out of range for a vocabulary of {len(self)} words")
        words = self.words
        return [words[i] for i in arr.tolist()]

    # -- persistence --------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready dict: ``{"format", "version", "words"}`` (words in id order)."""
        return {"format": _FORMAT, "version": _VERSION, "words": self.words}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Vocabulary":
        """Rebuild a vocabulary from :meth:`to_dict`'s output.

        Raises
        ------
        DataError
            If ``data`` has no ``"words"`` list of distinct strings.
        """
        words = data.get("words") if isinstance(data, Mapping) else None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError("vocabulary data must have a 'words' list of strings")
        vocab = cls(words)
        if len(vocab) != len(words):
            raise DataError(
                f"vocabulary data has repeated words ({len(words)} words, {len(vocab)} distinct)"
            )
        return vocab

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to ``path`` as JSON, atomically."""
        atomic_write(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Raises
        ------
        DataError
            If the file is not valid vocabulary JSON (the message names it).
        """
        path = Path(path)
        try:
            data = json.loads(read_input(path, "vocabulary file").decode("utf-8-sig"))
            return cls.from_dict(data)
        except (ValueError, RecursionError) as e:  # JSON, UTF-8, DataError; nesting too deep
            raise DataError(f"{path}: not a vocabulary file ({e})") from e

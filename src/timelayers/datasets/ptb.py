"""The Penn Treebank language-modelling corpus (Mikolov's 10,000-word version).

Files are looked for, in order, in ``data_dir``, in ``$TIMELAYERS_DATA`` and in
the user cache directory (``$XDG_CACHE_HOME/timelayers/ptb`` or
``~/.cache/timelayers/ptb``); each place may hold the files directly or in a
``ptb/`` subfolder. Missing files are downloaded with ``pooch`` (progress bar,
retries, the SHA-256 checked before the file is moved into place) into
``data_dir`` (when given) or the cache directory. Files found locally are
checked against :data:`PTB_SHA256` too: a changed ``ptb.train.txt`` would shift
every word id, so it is refused.

Token ids are cached next to the text as ``ptb.<split>.ids.safetensors`` and the
vocabulary as ``ptb.vocab.json``; each cache carries the SHA-256 of the text it was
built from (and the ids, of the vocabulary they number), and is rebuilt when that
is not the verified text's (a cache that is not of this form, or whose tensors'
CRC-32 fails, is never loaded). Caching is skipped silently where the directory
is read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from timelayers.datasets.textfile import read_utf8
from timelayers.serialization import (atomic_write, load_tensors, read_input, sha256_file,
                                     tensors_bytes)
from timelayers.errors import CheckpointError, DataError, DownloadError
from timelayers.vocab import UnknownWordError, Vocabulary

__all__ = ["load_ptb", "fetch_ptb", "cache_dir", "PTB_URL", "PTB_FILES", "PTB_SHA256"]

#: Where the three text files are downloaded from (``PTB_URL + "/" + name``).
PTB_URL = "https://raw.githubusercontent.com/tomsercu/lstm/master/data"

#: File name of each split.
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}

#: Expected SHA-256 of each file (downloaded or found locally).
PTB_SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}

#: Further attempts after a failed download, and the socket timeout in seconds.
DOWNLOAD_RETRIES = 2
DOWNLOAD_TIMEOUT = 30

ENV_VAR = "TIMELAYERS_DATA"
VOCAB_FILE = "ptb.vocab.json"
EOS = "<eos>"
_SPLITS = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}


def cache_dir() -> Path:
    """The user cache directory: ``$XDG_CACHE_HOME/timelayers`` or ``~/.cache/timelayers``."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "timelayers"


def load_ptb(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, Vocabulary]:
    """Load one split of the Penn Treebank as token ids.

    Every line ends with the token ``<eos>``. The vocabulary is built from the
    training split in order of first occurrence, so the ids match the book's
    (``'aer'`` is 0, ``<eos>`` is 24); it has 10,000 words.

    Parameters
    ----------
    split : {"train", "valid", "test"}
        ``"val"`` is accepted for ``"valid"``.
    data_dir : str or os.PathLike, optional
        Directory searched first, and where missing files are downloaded to.
    download : bool
        Download missing files (otherwise raise :class:`DataError`).
    progress : bool
        Show a progress bar on stderr while downloading (terminals only).

    Returns
    -------
    ids : ndarray of int32, shape (T,)
        ``T`` is 929,589 for train, 73,760 for valid and 82,430 for test.
    vocab : Vocabulary
        The training vocabulary (10,000 words).

    Raises
    ------
    ValueError
        For an unknown ``split``.
    DataError
        When a file is missing and ``download`` is false, a file found locally is
        not the corpus's (its SHA-256 differs), or a split holds a word that is
        not in the training vocabulary.
    DownloadError
        When a missing file cannot be downloaded (the message says where to put
        the files by hand).
    """
    key = _SPLITS.get(split) if isinstance(split, str) else None
    if key is None:
        raise ValueError(
            f"load_ptb: split must be one of 'train', 'valid' (or 'val'), 'test'; got {split!r}"
        )
    train_path = _locate_or_fetch(PTB_FILES["train"], data_dir, download, progress)
    text_path = train_path if key == "train" else _locate_or_fetch(
        PTB_FILES[key], data_dir, download, progress
    )

    train_tokens = None
    vocab_path = train_path.parent / VOCAB_FILE
    vocab_source = {"source_sha256": PTB_SHA256[train_path.name]}  # verified just above
    vocab = _read_vocab_cache(vocab_path, vocab_source)
    if vocab is None:
        train_tokens = _tokenize(train_path)
        vocab = Vocabulary(train_tokens)
        _try_cache(vocab_path, lambda: json.dumps(
            {**vocab_source, "vocabulary": vocab.to_dict()}, ensure_ascii=False).encode("utf-8"))

    ids_path = text_path.with_name(f"{text_path.stem}.ids.safetensors")
    ids_source = {"source_sha256": PTB_SHA256[text_path.name],
                  "vocabulary_sha256": hashlib.sha256(vocab.to_json().encode()).hexdigest()}
    ids = _read_ids_cache(ids_path, ids_source, len(vocab))
    if ids is None:
        tokens = train_tokens if key == "train" and train_tokens else _tokenize(text_path)
        try:
            ids = vocab.encode(tokens)
        except UnknownWordError as e:
            raise DataError(
                f"{text_path}: word {e.word!r} is not in the training vocabulary of {train_path}"
            ) from None
        _try_cache(ids_path, lambda: tensors_bytes({"ids": ids}, ids_source))
    return ids, vocab


def fetch_ptb(
    data_dir: str | os.PathLike | None = None, *, progress: bool = True
) -> dict[str, Path]:
    """Make sure the three text files are present (downloading them if needed).

    Returns
    -------
    dict of str to pathlib.Path
        The path of each split's text file.
    """
    return {
        split: _locate_or_fetch(name, data_dir, True, progress) for split, name in PTB_FILES.items()
    }


# -- locating and downloading ------------------------------------------------
def data_dir_from_environment() -> Path | None:
    """``$TIMELAYERS_DATA`` as a folder, None when it is unset or empty.

    Raises
    ------
    DataError
        When it names no folder (a typo must not fall through to a download).
    """
    env = os.environ.get(ENV_VAR)
    if not env:
        return None
    if not Path(env).is_dir():
        raise DataError(f"${ENV_VAR} expected a folder holding the Penn Treebank files, "
                        f"got {env!r}, which is "
                        f"{'not a folder' if Path(env).exists() else 'not there'}")
    return Path(env)


def _search_dirs(data_dir) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    env = data_dir_from_environment()
    if env is not None:
        roots.append(env)
    roots.append(cache_dir())
    dirs = []
    for root in roots:
        dirs += [root, root / "ptb"]
    return dirs


def _locate_or_fetch(name: str, data_dir, download: bool, progress: bool) -> Path:
    for d in _search_dirs(data_dir):
        if (d / name).is_file():
            return _verified(d / name)
    if not download:
        raise DataError(f"Penn Treebank file {name} was not found. {_where_to_put(data_dir)}")
    import pooch  # only to download: local files need nothing but hashlib

    target = Path(data_dir) if data_dir is not None else cache_dir() / "ptb"
    url = f"{PTB_URL.rstrip('/')}/{name}"
    fetcher = pooch.create(path=target, base_url=f"{PTB_URL.rstrip('/')}/",
                           registry={name: f"sha256:{PTB_SHA256[name]}"},
                           retry_if_failed=DOWNLOAD_RETRIES)
    downloader = pooch.HTTPDownloader(progressbar=progress and _stderr_is_tty(),
                                      timeout=DOWNLOAD_TIMEOUT)
    try:
        return Path(fetcher.fetch(name, downloader=downloader))
    except ValueError as e:  # pooch's hash mismatch, or a URL it cannot fetch
        raise DownloadError(f"could not download {name} from {url}: {e}. "
                            f"{_where_to_put(data_dir)}") from e
    except OSError as e:  # requests' errors, and a target folder that cannot be written
        raise DownloadError(f"could not download {name} from {url} into {target}: {e}. "
                            f"{_where_to_put(data_dir)}") from e


def _sha256(path: Path) -> str:
    return sha256_file(path, "Penn Treebank file")


def _verified(path: Path) -> Path:
    """``path`` if its SHA-256 is the Penn Treebank's; DataError otherwise."""
    want = PTB_SHA256[path.name]
    got = _sha256(path)
    if got != want:
        raise DataError(f"{path}: SHA-256 {got} is not the Penn Treebank's {want}; the file is "
                        f"damaged or another text (its word ids would not be the corpus's). "
                        f"Delete it to download it again, or copy the original from "
                        f"{PTB_URL.rstrip('/')}/{path.name}")
    return path


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _where_to_put(data_dir) -> str:
    names = ", ".join(PTB_FILES.values())
    env = os.environ.get(ENV_VAR)
    places = []
    if data_dir is not None:
        places.append(f"{Path(data_dir)} (data_dir)")
    places.append(f"{env} (${ENV_VAR})" if env else f"the directory named by ${ENV_VAR} (not set)")
    places.append(f"{cache_dir() / 'ptb'} (the cache directory)")
    return (
        f"Download {names} from {PTB_URL.rstrip('/')}/ and put them in one of: "
        + "; ".join(places)
    )


# -- reading and caching -------------------------------------------------------
def _tokenize(path: Path) -> list[str]:
    """Whitespace tokens of ``path``, with ``<eos>`` for each newline."""
    return read_utf8(path, "Penn Treebank file").replace("\n", f" {EOS} ").split()


_CACHE_LIMIT = 1 << 26  # bytes of a vocabulary cache (PTB's: 100 KB)


def _read_vocab_cache(path: Path, source: dict) -> Vocabulary | None:
    """The vocabulary cached at ``path`` when it was built from ``source`` (the
    train text's SHA-256), else None (missing, corrupt or stale: rebuild it)."""
    try:
        cached = json.loads(read_input(path, "vocabulary cache", _CACHE_LIMIT).decode("utf-8"))
        if not isinstance(cached, dict) or cached.keys() != {*source, "vocabulary"} \
                or any(cached[k] != v for k, v in source.items()):
            return None
        return Vocabulary.from_dict(cached["vocabulary"])
    except (OSError, ValueError, RecursionError):  # DataError is a ValueError
        return None


def _read_ids_cache(path: Path, source: dict, vocab_size: int) -> np.ndarray | None:
    """The ids cached at ``path`` when they were built from ``source`` (the text's
    and the vocabulary's SHA-256) and fit the vocabulary, else None."""
    try:  # sizes checked against the file before anything is allocated; the CRC-32 after
        tensors, metadata = load_tensors(path)
    except (OSError, CheckpointError):
        return None
    if metadata != source or tensors.keys() != {"ids"}:
        return None
    ids = tensors["ids"]
    if ids.dtype != np.int32 or ids.ndim != 1:
        return None
    if ids.size and not (0 <= ids.min() and ids.max() < vocab_size):
        return None
    return ids


def _writable(directory: Path) -> bool:
    """True when ``directory`` may be written to.

    A directory without any write permission bit counts as read-only even for
    a user (such as root) whom the operating system would let write.
    """
    try:
        return os.access(directory, os.W_OK) and bool(directory.stat().st_mode & 0o222)
    except OSError:
        return False


def _try_cache(path: Path, make_bytes) -> None:
    """Write a cache file atomically, or do nothing where that is not possible."""
    if not _writable(path.parent):
        return
    try:
        atomic_write(path, make_bytes())
    except OSError:
        pass  # read-only or full file system: caching is an optimisation only

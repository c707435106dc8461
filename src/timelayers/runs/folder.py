"""A run folder on disk: the files a run owns, starting a new run without mixing it
with an old one, and ``run.json`` read back with every field checked.

A run folder never pairs files of two runs: a new run starts only in a folder that
holds none of :data:`RUN_FILES` (or, when forced, after they are removed, ``run.json``
first, so that a kill half-way leaves no folder that reads as a run); then
``run.json`` is written, the checkpoint after every epoch and the model at the end,
each file atomically. A kill at any moment leaves the old run, or a new run that
holds its own ``run.json`` (and a checkpoint to resume from, after one epoch).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
from pathlib import Path

from ..errors import CheckpointError, DataError, OptionError
from .._checks import KINDS, check_options
from ..serialization import read_input, sha256_file, write_json

__all__ = ["RUN_FILES", "LOCK_FILE", "RunFolderLock", "run_files_in", "start_new_run",
           "new_run_id", "check_same_run", "saved_nothing", "sha256_of", "write_json", "read_run_json"]

RUN_FILES = ("run.json", "model.safetensors", "checkpoint.safetensors", "history.json",
             "metrics.json", "learning_curve.png", "attention.png")
"""The files a run writes, ``run.json`` (what makes a folder a run) first."""


def run_files_in(folder) -> list:
    """Names of the :data:`RUN_FILES` present in ``folder``: anything under such a
    name counts (a link, dangling or not, a FIFO, a folder), not only a file."""
    folder = Path(folder)
    return [name for name in RUN_FILES if os.path.lexists(folder / name)]


def start_new_run(folder, force=False) -> None:
    """Make ``folder`` ready for a new run: create it, or raise
    :class:`FileExistsError` when it holds a run, unless ``force``, which removes the
    old run's files (and their leftover temp files; other files are kept; a link
    is removed, never what it points to). A run that saved nothing yet (its
    ``run.json`` alone, a regular file: stopped in its first epoch, before any
    checkpoint) holds nothing to lose, and is replaced without ``force``."""
    folder = Path(folder)
    existing = run_files_in(folder)
    if existing and not force and not saved_nothing(folder):
        raise FileExistsError(f"run folder {str(folder)!r} already holds a run "
                              f"({', '.join(existing)}): continue it with --resume, replace it "
                              f"with --force, or train into another --out")
    for name in existing:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            raise FileExistsError(f"run folder {str(folder)!r} holds a folder named {name!r}, "
                                  f"where a run keeps a file: move it away first")
    for name in existing:
        (folder / name).unlink()  # a link goes, not what it points to
    for name in RUN_FILES:
        for temp in folder.glob(f".{name}.*.tmp"):
            temp.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)


def saved_nothing(folder) -> bool:
    """True when the run in ``folder`` is its ``run.json`` alone (a regular file):
    it stopped before its first checkpoint, and there is nothing to resume."""
    folder = Path(folder)
    return run_files_in(folder) == ["run.json"] and (folder / "run.json").is_file() \
        and not (folder / "run.json").is_symlink()


LOCK_FILE = ".timelayers.lock"
"""The file a writer of a run folder holds locked (``fcntl.flock``), with its pid
inside, while it writes; removed when it is done (a killed writer leaves it, locked
by no one)."""


class RunFolderLock:
    """The one writer of a run folder: :meth:`acquire` takes an exclusive
    ``flock`` on ``folder/.timelayers.lock`` (creating the folder), or raises
    :class:`~timelayers.errors.OptionError` at once naming the folder and the pid
    of the process holding it; :meth:`release` (or leaving the ``with`` block)
    removes the file and lets the lock go. The kernel releases it when its process
    ends, however it ends, so a lock left by a killed process never blocks the
    next run."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = self._open()
            try:
                if self._lock(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its holder removed the file meanwhile: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def _open(self) -> int:
        try:  # never through a link, never blocking on a FIFO
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            what = "is a link" if os.path.islink(self.path) else exc.strerror
            raise OptionError(f"run folder {str(self.folder)!r} cannot be locked: {LOCK_FILE} "
                              f"{what}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OptionError(f"run folder {str(self.folder)!r} cannot be locked: {LOCK_FILE} "
                              f"is not a regular file")
        return fd

    def _lock(self, fd) -> bool:
        """Lock ``fd``: True when it is still the file at :attr:`path`."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder = f" (process {holder})" if holder.isdigit() else ""
            raise OptionError(f"run folder {str(self.folder)!r} is being written by another "
                              f"training{holder}: wait for it to end, or train into another "
                              f"--out") from None
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.unlink(self.path)  # still locked: no one holds a lock on it meanwhile
            except OSError:
                pass
            os.close(fd)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def new_run_id() -> str:
    """A random id for a new run (32 hex digits), written to its ``run.json``,
    checkpoint and model so that the files of two runs are never taken as one."""
    return secrets.token_hex(16)


def check_same_run(info: dict, model, run_dir, model_file) -> None:
    """Raise :class:`~timelayers.errors.CheckpointError` unless ``model`` (read from
    ``model_file``) carries the run id of ``run.json`` (``info``): neither has one
    (a run from before ids), or both the same."""
    want, got = info.get("run_id"), getattr(model, "run_id", None)
    if want != got:
        def name(run_id):
            return f"run id {run_id[:12]}" if run_id else "no run id"

        raise CheckpointError(f"{str(model_file)!r} is not of the run in {str(run_dir)!r} "
                              f"({name(got)}, run.json has {name(want)}): a file copied from "
                              f"another run is not used")


def sha256_of(path, what="data file") -> str:
    """Hex SHA-256 of a regular file's bytes (a FIFO, a device or a file past
    :data:`~timelayers.serialization.INPUT_LIMIT` bytes: :class:`DataError`
    naming ``what``)."""
    return sha256_file(path, what)


_FIELDS = {  # field: (kind, required); a kind from timelayers._checks.KINDS
    "recipe": ("str", True), "options": (dict, True), "seed": ("non-negative int", True),
    "data": ("str", True), "task": ("str", False), "version": ("str", False),
    "data_sha256": ("str", False), "shape": (list, False), "resumed": (list, False),
    "processes": ("positive int", False),
    "imported": (dict, False),  # a run imported from the book's weights: its file and SHA-256
    "run_id": ("str", False),  # also in the run's checkpoint and model: files of one run
}
_MAY_BE_NULL = {"data", "data_sha256"}


RUN_JSON_LIMIT = 1 << 24
"""The most bytes a ``run.json`` may hold (16 MiB; the library writes a few KB)."""


def read_run_json(run_dir) -> dict:
    """``run_dir/run.json`` with its fields checked: a one-line error naming the file
    and the field (:class:`DataError`), or :class:`FileNotFoundError` when the
    folder holds no run."""
    path = Path(run_dir) / "run.json"
    try:
        info = json.loads(read_input(path, "run.json", RUN_JSON_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run folder (no run.json)") from None
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a 10**5-digit number,
        raise DataError(f"{str(path)!r} is corrupt: {exc}") from None  # nesting 10**5 deep

    def bad(what):
        return DataError(f"{str(path)!r} is not a valid run.json: {what}")

    if not isinstance(info, dict):
        raise bad(f"expected a JSON object, got a {type(info).__name__}")
    for field, (kind, required) in _FIELDS.items():
        if field not in info:
            if required:
                raise bad(f"field {field!r} is missing")
            continue
        value = info[field]
        if value is None and field in _MAY_BE_NULL:
            continue
        ok = isinstance(value, kind) if isinstance(kind, type) else KINDS[kind](value)
        if not ok:
            expected = kind.__name__ if isinstance(kind, type) else kind
            raise bad(f"field {field!r} expected a {expected}, got {value!r}")
    shape = info.get("shape")
    if shape is not None and (len(shape) != 2 or not all(KINDS["positive int"](n) for n in shape)):
        raise bad(f"field 'shape' expected [question width, answer length], got {shape!r}")
    try:
        check_options(info["options"], "field 'options'")
    except OptionError as exc:
        raise bad(str(exc)) from None
    return info

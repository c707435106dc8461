"""Safe file writing and checksum-verified downloads.

Every file is written to a temporary file in the target directory and moved
into place with :func:`os.replace`, so a reader never sees half a file and an
interrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from timelayers.errors import DownloadError

__all__ = ["download", "sha256_file"]

_CHUNK = 1 << 16


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _temp_beside(path: Path):
    """Open a new temporary file in ``path``'s directory; return ``(file, tmp_path)``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(tmp)


def download(
    url: str,
    path: str | os.PathLike,
    sha256: str,
    size: int | None = None,
    timeout: float = 30,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``path`` and verify its SHA-256 digest.

    Parameters
    ----------
    url : str
        What to fetch (any scheme :mod:`urllib` understands).
    path : str or os.PathLike
        Where to put the file; missing parent directories are created.
    sha256 : str
        Expected hex digest; the file is only moved into place when it matches.
    size : int, optional
        Expected size in bytes, used for the progress bar when the server sends
        no ``Content-Length``, and checked.
    timeout : float
        Socket timeout in seconds, for connecting and for each read.
    progress : bool
        Show a tqdm progress bar on stderr (only when stderr is a terminal).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DownloadError
        The server answered with an error, the connection failed, dropped or
        timed out, the size differs, or the digest does not match (the message
        names the file, the expected and the actual digest). No partial file is
        left behind in any of these cases.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f, tmp = _temp_beside(path)
    try:
        with f:
            digest, received, expected_len = _fetch(url, f, path.name, size, timeout, progress)
            f.flush()
            os.fsync(f.fileno())
        if expected_len is not None and received != expected_len:
            raise DownloadError(
                f"download of {path.name} from {url} ended early: "
                f"got {received} of {expected_len} bytes"
            )
        if size is not None and received != size:
            raise DownloadError(
                f"download of {path.name} from {url}: expected {size} bytes, got {received}"
            )
        if digest != sha256.lower():
            raise DownloadError(
                f"checksum mismatch for {path.name} downloaded from {url}: "
                f"expected sha256 {sha256.lower()}, got {digest}"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fetch(url, f, name, size, timeout, progress):
    """Stream ``url`` into the open file ``f``; return ``(digest, received, content_length)``."""
    h = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "timelayers"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            content_length = int(length) if length and length.isdigit() else None
            total = content_length if content_length is not None else size
            show = progress and _stderr_is_tty()
            with tqdm(
                total=total,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=not show,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DownloadError(
            f"could not download {name} from {url}: HTTP {e.code} {e.reason}"
        ) from e
    except urllib.error.URLError as e:
        raise DownloadError(f"could not download {name} from {url}: {e.reason}") from e
    except (TimeoutError, socket.timeout) as e:
        raise DownloadError(
            f"download of {name} from {url} timed out (no data for {timeout} s)"
        ) from e
    except http.client.IncompleteRead as e:
        raise DownloadError(
            f"download of {name} from {url} ended early: connection dropped after "
            f"{received + len(e.partial)} bytes"
        ) from e
    except (http.client.HTTPException, ConnectionError) as e:
        raise DownloadError(f"download of {name} from {url} failed: {e!r}") from e
    return h.hexdigest(), received, content_length


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False

"""download() against a local HTTP server; nothing here touches the network."""

import hashlib
import importlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from timelayers.datasets.download import download, sha256_file
from timelayers.serialization import atomic_write
from timelayers.errors import DataError, DownloadError

# timelayers.datasets.download is also the name of the function the package exports
download_module = importlib.import_module("timelayers.datasets.download")

BODY = b"".join(b"line %d of the fixture file\n" % i for i in range(5000))  # ~130 kB
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Routes: /good, /corrupt, /drop (half the body, then close), /hang, /nolength."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests += 1
        route = self.path.lstrip("/")
        if route not in ("good", "corrupt", "drop", "hang", "nolength"):
            self.send_error(404)
            return
        body = BODY
        if route == "corrupt":
            body = BODY[:-2] + b"!\n"
        self.send_response(200)
        if route != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if route in ("drop", "hang"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if route == "hang":
                self.server.release.wait(10)
            self.close_connection = True
            return
        self.wfile.write(body)
        if route == "nolength":
            self.close_connection = True


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.block_on_close = False
    srv.release = threading.Event()
    srv.requests = 0
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_downloads_and_verifies(server, tmp_path, capsys):
    target = tmp_path / "sub" / "data.txt"
    result = download(f"{server.base}/good", target, DIGEST, size=len(BODY))
    assert result == target
    assert target.read_bytes() == BODY
    assert _names(target.parent) == ["data.txt"]
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no progress bar


def test_digest_is_case_insensitive_and_length_optional(server, tmp_path):
    download(f"{server.base}/nolength", tmp_path / "f", DIGEST.upper(), progress=False)
    assert (tmp_path / "f").read_bytes() == BODY


def test_progress_bar_on_a_terminal(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download_module, "_stderr_is_tty", lambda: True)
    download(f"{server.base}/good", tmp_path / "data.txt", DIGEST)
    assert "data.txt" in capsys.readouterr().err
    download(f"{server.base}/good", tmp_path / "quiet.txt", DIGEST, progress=False)
    assert capsys.readouterr().err == ""


def test_checksum_mismatch(server, tmp_path):
    target = tmp_path / "data.txt"
    with pytest.raises(DownloadError) as info:
        download(f"{server.base}/corrupt", target, DIGEST)
    message = str(info.value)
    actual = hashlib.sha256(BODY[:-2] + b"!\n").hexdigest()
    assert "data.txt" in message and DIGEST in message and actual in message
    assert _names(tmp_path) == []


def test_failed_download_keeps_the_existing_file(server, tmp_path):
    target = tmp_path / "data.txt"
    target.write_bytes(b"old")
    with pytest.raises(DownloadError):
        download(f"{server.base}/corrupt", target, DIGEST)
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.txt"]


def test_dropped_connection(server, tmp_path):
    with pytest.raises(DownloadError, match="ended early"):
        download(f"{server.base}/drop", tmp_path / "data.txt", DIGEST)
    assert _names(tmp_path) == []


def test_timeout(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(f"{server.base}/hang", tmp_path / "data.txt", DIGEST, timeout=0.5)
    assert time.monotonic() - start < 5
    assert _names(tmp_path) == []


def test_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(f"{server.base}/missing", tmp_path / "data.txt", DIGEST)
    assert _names(tmp_path) == []


def test_wrong_size(server, tmp_path):
    with pytest.raises(DownloadError, match="expected 10 bytes"):
        download(f"{server.base}/nolength", tmp_path / "data.txt", DIGEST, size=10)
    assert _names(tmp_path) == []


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="could not download"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "data.txt", DIGEST, timeout=2)
    assert _names(tmp_path) == []


def test_download_error_is_a_data_error():
    assert issubclass(DownloadError, DataError) and issubclass(DownloadError, ValueError)


def test_sha256_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(BODY)
    assert sha256_file(path) == DIGEST
    assert sha256_file(path, chunk_size=7) == DIGEST


def test_atomic_write(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, b"first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")
    assert path.read_bytes() == b"second"
    assert _names(tmp_path) == ["out.bin"]

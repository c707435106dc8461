"""load_ptb on small fake corpora (downloaded from a local HTTP server) and on the
real files."""

import functools
import hashlib
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from timelayers.datasets import ptb
from timelayers.datasets.ptb import load_ptb
from timelayers.errors import DataError, DownloadError
from timelayers.serialization import load_tensors, save_tensors
from timelayers.vocab import Vocabulary

NAMES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")

FAKE = {
    "ptb.train.txt": " the cat sat on the mat \n the dog sat \n a cat <unk> N \n",
    "ptb.valid.txt": " the dog sat on a mat \n",
    "ptb.test.txt": " a cat \n the N \n",
}


def _find_real_ptb():
    here = Path(__file__).resolve()
    candidates = [here.parents[3] / "shared" / "datasets" / "ptb"]
    env = os.environ.get("TIMELAYERS_DATA")
    if env:
        candidates += [Path(env), Path(env) / "ptb", Path(env) / "datasets" / "ptb"]
    for c in candidates:
        if all((c / n).is_file() for n in NAMES):
            return c
    return None


REAL_PTB = _find_real_ptb()  # located before the fixtures below clear the environment
KNOWN_SHA256 = dict(ptb.PTB_SHA256)  # before the fixtures below replace it by the fakes'


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No network, no user cache, no TIMELAYERS_DATA, the fake files' digests:
    every test sets up its own files."""
    monkeypatch.delenv("TIMELAYERS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ptb, "PTB_URL", "http://127.0.0.1:9/nowhere")  # the discard port
    monkeypatch.setattr(ptb, "PTB_SHA256", {n: _sha256(t) for n, t in FAKE.items()})
    monkeypatch.setattr(ptb, "DOWNLOAD_RETRIES", 0)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """A folder of fake PTB files, served over HTTP on 127.0.0.1 as PTB_URL."""
    folder = tmp_path / "remote"
    folder.mkdir()
    for name, text in FAKE.items():
        (folder / name).write_text(text)
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(ptb, "PTB_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield folder
    server.shutdown()
    server.server_close()
    thread.join(5)


def _expected(name):
    words = FAKE["ptb.train.txt"].replace("\n", "<eos>").strip().split()  # the book's recipe
    vocab = {}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tokens = FAKE[name].replace("\n", "<eos>").strip().split()
    return [vocab[w] for w in tokens], list(vocab)


def _write_fake(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FAKE.items():
        (folder / name).write_text(text)


def test_downloads_into_the_cache_dir(remote, tmp_path):
    ids, vocab = load_ptb("train", progress=False)
    cache = tmp_path / "cache" / "timelayers" / "ptb"
    assert (cache / "ptb.train.txt").read_text() == FAKE["ptb.train.txt"]
    expected_ids, expected_words = _expected("ptb.train.txt")
    assert ids.dtype == np.int32 and ids.tolist() == expected_ids
    assert vocab.words == expected_words and vocab["<eos>"] == 5
    assert vocab.decode(ids[:7]) == ["the", "cat", "sat", "on", "the", "mat", "<eos>"]
    assert sorted(p.name for p in cache.iterdir()) == ["ptb.train.ids.safetensors",
                                                       "ptb.train.txt",
                                                       "ptb.vocab.json"]  # no partial file


@pytest.mark.parametrize("split", ["valid", "val", "test"])
def test_other_splits_use_the_train_vocabulary(remote, tmp_path, split):
    data = tmp_path / "data"
    ids, vocab = load_ptb(split, data_dir=data, progress=False)
    name = "ptb.test.txt" if split == "test" else "ptb.valid.txt"
    assert (data / name).is_file() and (data / "ptb.train.txt").is_file()  # downloaded into data_dir
    assert ids.tolist() == _expected(name)[0]
    assert vocab == Vocabulary(_expected(name)[1])


def test_bad_split_names_argument_and_choices():
    with pytest.raises(ValueError, match=r"split.*'train'.*'valid'.*'test'.*'training'"):
        load_ptb("training")
    with pytest.raises(ValueError, match="split"):
        load_ptb(None)


def test_files_found_without_download(tmp_path):
    _write_fake(tmp_path / "data")
    ids, _ = load_ptb("test", data_dir=tmp_path / "data", download=False)
    assert ids.tolist() == _expected("ptb.test.txt")[0]


def test_environment_variable_and_ptb_subfolder(tmp_path, monkeypatch):
    _write_fake(tmp_path / "env" / "ptb")
    monkeypatch.setenv("TIMELAYERS_DATA", str(tmp_path / "env"))
    ids, _ = load_ptb("valid", download=False)
    assert ids.tolist() == _expected("ptb.valid.txt")[0]


def test_data_dir_comes_before_the_environment_variable(tmp_path, monkeypatch):
    _write_fake(tmp_path / "data")
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "ptb.test.txt").write_text(" other words \n")
    monkeypatch.setenv("TIMELAYERS_DATA", str(tmp_path / "env"))
    ids, _ = load_ptb("test", data_dir=tmp_path / "data", download=False)
    assert ids.tolist() == _expected("ptb.test.txt")[0]


def test_user_cache_dir_is_searched(tmp_path):
    _write_fake(tmp_path / "cache" / "timelayers" / "ptb")
    ids, _ = load_ptb("train", download=False)
    assert ids.tolist() == _expected("ptb.train.txt")[0]


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("TIMELAYERS_DATA", str(tmp_path / "env"))
    data = tmp_path / "data"
    for kwargs, error in [({"download": False}, DataError), ({}, DownloadError)]:
        with pytest.raises(error) as info:
            load_ptb("train", data_dir=data, progress=False, **kwargs)
        message = str(info.value)
        for expected in [*NAMES, str(data), str(tmp_path / "env"), "TIMELAYERS_DATA"]:
            assert expected in message
        assert str(tmp_path / "cache" / "timelayers" / "ptb") in message
    assert not data.exists() or list(data.iterdir()) == []


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_data_variable_that_names_no_folder_is_an_error_not_a_download(tmp_path, monkeypatch,
                                                                         kind):
    env = tmp_path / "ptb-typo"
    if kind == "file":
        env.write_text("not a folder")
    monkeypatch.setenv("TIMELAYERS_DATA", str(env))
    for kwargs in ({"download": False}, {}):
        with pytest.raises(DataError, match=r"\$TIMELAYERS_DATA expected a folder") as info:
            load_ptb("train", progress=False, **kwargs)
        assert str(env) in str(info.value) and not isinstance(info.value, DownloadError)
    assert not (tmp_path / "cache" / "timelayers" / "ptb").exists()


def test_checksum_mismatch_leaves_no_file(remote, tmp_path, monkeypatch):
    monkeypatch.setitem(ptb.PTB_SHA256, "ptb.train.txt", "0" * 64)
    with pytest.raises(DownloadError, match="ptb.train.txt.*0{64}"):
        load_ptb("train", data_dir=tmp_path / "data", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_download_that_fails_is_retried(remote, tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "DOWNLOAD_RETRIES", 1)
    (remote / "ptb.valid.txt").unlink()  # 404
    with pytest.raises(DownloadError, match="ptb.valid.txt.*404"):
        load_ptb("valid", data_dir=tmp_path / "data", progress=False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["ptb.train.txt"]


def test_a_changed_local_file_is_refused(tmp_path):
    data = tmp_path / "data"
    _write_fake(data)
    (data / "ptb.train.txt").write_text(" the new cat sat on the mat \n" + FAKE["ptb.train.txt"])
    with pytest.raises(DataError) as info:
        load_ptb("test", data_dir=data)
    message = str(info.value)
    assert str(data / "ptb.train.txt") in message and "\n" not in message
    assert ptb.PTB_SHA256["ptb.train.txt"] in message and "Delete it" in message


def test_caches_carry_the_hash_of_their_source_and_are_rebuilt_when_it_differs(tmp_path,
                                                                              monkeypatch):
    data = tmp_path / "data"
    _write_fake(data)
    ids, vocab = load_ptb("test", data_dir=data)
    cached = data / "ptb.test.ids.safetensors"
    tensors, metadata = load_tensors(cached)
    assert tensors["ids"].tolist() == ids.tolist()
    assert metadata["source_sha256"] == ptb.PTB_SHA256["ptb.test.txt"]
    vocab_cache = json.loads((data / "ptb.vocab.json").read_text())
    assert vocab_cache["source_sha256"] == ptb.PTB_SHA256["ptb.train.txt"]
    assert Vocabulary.from_dict(vocab_cache["vocabulary"]) == vocab

    # The cache is used as it is (proved by tampering with it, keeping its form) ...
    save_tensors(cached, {"ids": ids[::-1].copy()}, metadata)
    assert load_ptb("test", data_dir=data)[0].tolist() == ids[::-1].tolist()
    # ... whatever its time stamp, while the text it was built from is the one found
    text_time = (data / "ptb.test.txt").stat().st_mtime
    os.utime(data / "ptb.test.txt", (text_time + 20, text_time + 20))
    assert load_ptb("test", data_dir=data)[0].tolist() == ids[::-1].tolist()

    # An array of the right length written over it, newer than the text: not loaded
    np.save(cached, np.zeros_like(ids), allow_pickle=False)
    os.rename(str(cached) + ".npy", cached)
    os.utime(cached, (text_time + 30, text_time + 30))
    assert load_ptb("test", data_dir=data)[0].tolist() == ids.tolist()
    for key, value in [("source_sha256", "0" * 64), ("vocabulary_sha256", "0" * 64)]:
        save_tensors(cached, {"ids": np.zeros_like(ids)}, {**metadata, key: value})
        assert load_ptb("test", data_dir=data)[0].tolist() == ids.tolist(), key
    # A vocabulary cache of another text, or of the old form, is rebuilt too
    (data / "ptb.vocab.json").write_text(json.dumps({**vocab_cache, "source_sha256": "0" * 64}))
    assert load_ptb("test", data_dir=data)[1] == vocab
    vocab.save(data / "ptb.vocab.json")
    assert load_ptb("test", data_dir=data)[1] == vocab
    assert "source_sha256" in json.loads((data / "ptb.vocab.json").read_text())


def test_corrupt_caches_are_rebuilt(tmp_path):
    data = tmp_path / "data"
    _write_fake(data)
    ids, vocab = load_ptb("train", data_dir=data)
    cached = data / "ptb.train.ids.safetensors"
    metadata = load_tensors(cached)[1]
    cached.write_bytes(b"garbage")
    (data / "ptb.vocab.json").write_text("{")
    again, vocab2 = load_ptb("train", data_dir=data)
    assert again.tolist() == ids.tolist() and vocab2 == vocab
    save_tensors(cached, {"ids": np.full(3, 99, dtype=np.int32)}, metadata)  # ids out of range
    assert load_ptb("train", data_dir=data)[0].tolist() == ids.tolist()
    data_start = len(cached.read_bytes()) - 4  # a flipped byte of the ids: the CRC-32 fails
    raw = bytearray(cached.read_bytes())
    raw[data_start] ^= 1
    cached.write_bytes(bytes(raw))
    assert load_ptb("train", data_dir=data)[0].tolist() == ids.tolist()


def test_read_only_directory_skips_caching(tmp_path):
    data = tmp_path / "data"
    _write_fake(data)
    data.chmod(0o555)
    try:
        ids, _ = load_ptb("valid", data_dir=data, download=False)
        assert sorted(p.name for p in data.iterdir()) == sorted(NAMES)
    finally:
        data.chmod(0o755)
    assert ids.tolist() == _expected("ptb.valid.txt")[0]


def test_failing_cache_writes_are_ignored(tmp_path, monkeypatch):
    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ptb, "atomic_write", refuse)
    _write_fake(tmp_path / "data")
    ids, _ = load_ptb("train", data_dir=tmp_path / "data")
    assert ids.tolist() == _expected("ptb.train.txt")[0]


def test_word_outside_the_train_vocabulary(tmp_path, monkeypatch):
    data = tmp_path / "data"
    _write_fake(data)
    (data / "ptb.test.txt").write_text(" the zebra \n")
    monkeypatch.setitem(ptb.PTB_SHA256, "ptb.test.txt", _sha256(" the zebra \n"))
    with pytest.raises(DataError, match="ptb.test.txt.*'zebra'"):
        load_ptb("test", data_dir=data)


# -- the real corpus ---------------------------------------------------------------
needs_real_ptb = pytest.mark.skipif(
    REAL_PTB is None,
    reason="Penn Treebank files not found in ../shared/datasets/ptb or $TIMELAYERS_DATA",
)


@pytest.fixture(scope="module")
def real():
    before = sorted(p.name for p in REAL_PTB.iterdir())
    splits = {s: load_ptb(s, data_dir=REAL_PTB, download=False) for s in ("train", "valid", "test")}
    yield splits
    if not REAL_PTB.stat().st_mode & 0o222:  # a read-only folder stays untouched
        assert sorted(p.name for p in REAL_PTB.iterdir()) == before


@needs_real_ptb
def test_real_files_have_the_known_digests():
    for name, digest in KNOWN_SHA256.items():
        assert hashlib.sha256((REAL_PTB / name).read_bytes()).hexdigest() == digest


@needs_real_ptb
def test_real_counts(real):
    assert [len(real[s][0]) for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    for ids, vocab in real.values():
        assert ids.dtype == np.int32
        assert len(vocab) == 10_000
        assert 0 <= ids.min() and ids.max() < 10_000
    assert real["train"][1] == real["valid"][1] == real["test"][1]


@needs_real_ptb
def test_real_ids_match_the_book(real):
    ids, vocab = real["train"]
    assert [vocab.id_to_word[i] for i in range(3)] == ["aer", "banknote", "berlitz"]
    assert vocab["<eos>"] == 24 and vocab["<unk>"] == 26 and vocab["N"] == 27
    assert ids[:39].tolist() == list(range(39))  # 24 words, <eos>, "pierre <unk> N years old ..."
    assert vocab.decode(ids[25:30]) == ["pierre", "<unk>", "N", "years", "old"]
    assert ids[39:41].tolist() == [27, 24]  # "nov. N <eos>"
    assert (ids == 24).sum() == 42_068  # one <eos> per line


def test_an_ids_cache_that_declares_more_than_it_holds_is_rebuilt(tmp_path):
    data = tmp_path / "data"
    _write_fake(data)
    ids, _ = load_ptb("train", data_dir=data)
    header = json.dumps({"ids": {"dtype": "I32", "shape": [10**10],
                                 "data_offsets": [0, 4 * 10**10]}}).encode()
    # a header alone, declaring 40 GB
    (data / "ptb.train.ids.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    assert load_ptb("train", data_dir=data)[0].tolist() == ids.tolist()

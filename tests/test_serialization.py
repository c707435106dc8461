"""safetensors reading/writing: round trips, interoperability with the
``safetensors`` package, damaged files, atomic writes, Model.save/load checks."""

import json
import os
import struct
from dataclasses import dataclass

import numpy as np
import pytest

from timelayers.errors import CheckpointError
from timelayers.layers import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.models.base import Model
from support.faults import fail_writes_after
from timelayers.serialization import atomic_write, load_tensors, save_tensors

st_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402


def sample_tensors(rng):
    return {
        "w": rng.standard_normal((3, 4)),
        "w32": rng.standard_normal((2, 5)).astype(np.float32),
        "h": rng.standard_normal(7).astype(np.float16),
        "ids": rng.integers(-5, 5, (2, 3)).astype(np.int64),
        "i32": np.arange(4, dtype=np.int32),
        "u8": np.arange(3, dtype=np.uint8),
        "flag": np.array([True, False, True]),
        "scalar": np.array(2.5),
        "empty": np.zeros((3, 0), dtype=np.float32),
        "strided": np.arange(12.0).reshape(3, 4)[:, ::2],
        "bigendian": np.arange(3, dtype=">f4"),
    }


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape, k
        assert x.dtype.newbyteorder("=") == y.dtype.newbyteorder("="), k
        np.testing.assert_array_equal(x, y, err_msg=k)


def test_round_trip(tmp_path, rng):
    tensors = sample_tensors(rng)
    path = tmp_path / "t.safetensors"
    save_tensors(path, tensors, {"note": "hello", "json": json.dumps({"a": [1, 2]})})
    loaded, meta = load_tensors(path)
    assert_same(tensors, loaded)
    assert list(loaded) == sorted(tensors)  # by name
    assert meta == {"note": "hello", "json": '{"a": [1, 2]}'}
    assert loaded["scalar"].shape == ()
    assert all(v.flags.writeable for v in loaded.values())


def test_our_files_load_in_safetensors(tmp_path, rng):
    tensors = sample_tensors(rng)
    path = tmp_path / "t.safetensors"
    save_tensors(path, tensors, {"note": "x"})
    theirs = st_numpy.load_file(str(path))
    assert_same({k: tensors[k] for k in theirs}, theirs)
    assert set(theirs) == set(tensors)
    with safe_open(str(path), framework="np") as f:
        assert f.metadata()["note"] == "x"


def test_safetensors_files_load_here(tmp_path, rng):
    tensors = {k: np.ascontiguousarray(v.astype(v.dtype.newbyteorder("=")))
               for k, v in sample_tensors(rng).items()}
    path = tmp_path / "theirs.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"who": "safetensors"})
    loaded, meta = load_tensors(path)
    assert meta == {"who": "safetensors"}
    assert_same({k: tensors[k] for k in loaded}, loaded)
    assert set(loaded) == set(tensors)


def test_empty_file_set(tmp_path):
    save_tensors(tmp_path / "e", {})
    assert load_tensors(tmp_path / "e") == ({}, {})


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="unsupported dtype"):
        save_tensors(tmp_path / "x", {"c": np.zeros(2, dtype=np.complex128)})
    with pytest.raises(TypeError, match="strings"):
        save_tensors(tmp_path / "x", {}, {"n": 3})
    assert not (tmp_path / "x").exists()


# -- damaged files ------------------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path, rng):
    path = tmp_path / "good.safetensors"
    save_tensors(path, {"a": rng.standard_normal((4, 4)), "b": np.arange(5)}, {"k": "v"})
    return path


def test_every_truncation_is_refused(tmp_path, good_file):
    data = good_file.read_bytes()
    bad = tmp_path / "bad.safetensors"
    for cut in sorted(set(range(0, 40)) | set(range(40, len(data), 7)) | {len(data) - 1}):
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_tensors(bad)


def test_flipped_data_byte_is_refused(tmp_path, good_file):
    data = bytearray(good_file.read_bytes())
    data[-3] ^= 0x10
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC-32"):
        load_tensors(bad)


def rewrite(path, out, edit):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n:])
    return out


NOT_SAFETENSORS = "is not a valid safetensors file"


@pytest.mark.parametrize("edit, message", [
    (lambda h: h["a"].update(dtype="BF16", shape=[4, 16]), "dtype BF16, which is not supported"),
    (lambda h: h["a"].update(dtype=["F64"]), NOT_SAFETENSORS),
    (lambda h: h["a"].update(shape=[4, -4]), NOT_SAFETENSORS),
    (lambda h: h["a"].update(shape=[4, 5]), NOT_SAFETENSORS),
    (lambda h: h["a"].update(shape=[10**30]), NOT_SAFETENSORS),
    (lambda h: h["a"].update(data_offsets=[0, 10_000]), NOT_SAFETENSORS),
    (lambda h: h["a"].update(data_offsets=[8, 4]), NOT_SAFETENSORS),
    (lambda h: h["b"].update(shape=[6]), NOT_SAFETENSORS),
    (lambda h: h.update(__metadata__=["x"]), NOT_SAFETENSORS),
    (lambda h: h.update(c=3), NOT_SAFETENSORS),
])
def test_bad_headers(tmp_path, good_file, edit, message):
    bad = rewrite(good_file, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=message):
        load_tensors(bad)


def test_other_damage(tmp_path, good_file):
    data = good_file.read_bytes()
    bad = tmp_path / "bad"
    bad.write_bytes(data + b"\0" * 8)
    with pytest.raises(CheckpointError, match=NOT_SAFETENSORS):
        load_tensors(bad)
    for header_length in (2**40, 2**60):
        bad.write_bytes(struct.pack("<Q", header_length) + data[8:])
        with pytest.raises(CheckpointError, match=NOT_SAFETENSORS):
            load_tensors(bad)
    (n,) = struct.unpack("<Q", data[:8])
    bad.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])
    with pytest.raises(CheckpointError, match=NOT_SAFETENSORS):
        load_tensors(bad)
    bad.write_bytes(struct.pack("<Q", 2) + b"[]")
    with pytest.raises(CheckpointError, match=NOT_SAFETENSORS):
        load_tensors(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_tensors(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="folder"):
        load_tensors(tmp_path)


# -- atomic writes ----------------------------------------------------------------------------
class _Boom(Exception):
    pass


def test_atomic_write_failing_part_way_keeps_old_file(tmp_path, good_file, monkeypatch):
    before = good_file.read_bytes()
    fail_writes_after(monkeypatch, 100, _Boom("disk full"))
    with pytest.raises(_Boom):
        save_tensors(good_file, {"a": np.zeros((50, 50))})
    monkeypatch.undo()
    assert good_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.safetensors"]  # no temp left
    load_tensors(good_file)


def test_atomic_write_replaces(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write(path, lambda f: f.write(b"one"))
    atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


# -- Model.save / Model.load -------------------------------------------------------------------
@dataclass
class SerConfig:
    vocab_size: int = 6
    hidden: int = 3


class SerTiny(Model):
    def __init__(self, vocab_size=6, hidden=3, rng=None):
        rng = np.random.default_rng(rng)
        self.config = SerConfig(vocab_size, hidden)
        self.embed = TimeEmbedding(rng.standard_normal((vocab_size, hidden)))
        self.affine = TimeAffine(rng.standard_normal((hidden, vocab_size)), np.zeros(vocab_size))
        self.loss_layer = TimeSoftmaxWithLoss()

    def forward(self, xs, ts):
        return self.loss_layer.forward(self.affine.forward(self.embed.forward(xs)), ts)

    def _backward(self, dout=1):
        self.embed.backward(self.affine.backward(self.loss_layer.backward(dout)))


def test_model_round_trip_with_metadata(tmp_path):
    from timelayers import __version__

    m = SerTiny(rng=1)
    path = tmp_path / "m.safetensors"
    m.save(path)
    loaded = Model.load(path)
    assert type(loaded) is SerTiny and loaded.config == m.config
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)
    with safe_open(str(path), framework="np") as f:
        meta = json.loads(f.metadata()["timelayers"])
    assert meta["model"] == "SerTiny" and meta["version"] == __version__
    assert meta["config"] == {"vocab_size": 6, "hidden": 3}


def test_model_vocab_is_saved(tmp_path):
    vocab_mod = pytest.importorskip("timelayers.vocab")
    m = SerTiny(rng=1)
    m.vocab = vocab_mod.Vocabulary(["a", "b", "c", "d", "e", "f"])  # one word per row
    m.save(tmp_path / "m")
    loaded = SerTiny.load(tmp_path / "m")
    assert loaded.vocab == m.vocab


def test_model_load_damaged_or_mismatched(tmp_path):
    m = SerTiny(rng=1)
    path = tmp_path / "m.safetensors"
    m.save(path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError):
        Model.load(path)
    with pytest.raises(CheckpointError, match="no timelayers metadata"):
        save_tensors(tmp_path / "plain", {"a": np.zeros(1)})
        Model.load(tmp_path / "plain")

    other = SerTiny(vocab_size=6, hidden=3, rng=2)
    before = {k: v.copy() for k, v in other.state_dict().items()}
    state = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError, match="'affine.W' has shape"):
        other.load_state_dict({**state, "affine.W": np.zeros((3, 5))})
    with pytest.raises(CheckpointError, match="'embed.W' has dtype float32"):
        other.load_state_dict({**state, "embed.W": state["embed.W"].astype(np.float32)})
    with pytest.raises(CheckpointError, match=r"missing \['affine.b'\]"):
        other.load_state_dict({k: v for k, v in state.items() if k != "affine.b"})
    with pytest.raises(CheckpointError, match=r"unexpected \['extra'\]"):
        other.load_state_dict({**state, "extra": np.zeros(1)})
    for k, v in other.state_dict().items():  # nothing half-loaded
        np.testing.assert_array_equal(v, before[k])


def test_extra_tensor_cannot_shadow_a_param(tmp_path):
    m = SerTiny(rng=1)
    with pytest.raises(ValueError, match="embed.W"):
        m.save(tmp_path / "m", extra_tensors={"embed.W": np.zeros(1)})


# -- files written before the safetensors package was used ------------------------------------
def write_old_format(path, tensors, metadata):
    """The writer of timelayers 0.1: header in insertion order, then the tensors'
    bytes back to back, and the CRC-32 of those bytes as ``timelayers.crc32``."""
    header, body = {}, b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        code = {"float64": "F64", "float32": "F32", "int64": "I64"}[a.dtype.name]
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    import zlib

    header["__metadata__"] = {**metadata, "timelayers.crc32": f"{zlib.crc32(body):08x}"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + body)


def test_old_format_files_still_load(tmp_path, rng):
    tensors = {"z": rng.standard_normal((3, 2)), "a": np.arange(4), "m": np.ones(2, np.float32)}
    old = tmp_path / "old.safetensors"
    write_old_format(old, tensors, {"note": "v0.1"})
    loaded, meta = load_tensors(old)
    assert_same(tensors, loaded)
    assert meta == {"note": "v0.1"}  # the CRC key is checked and hidden
    data = bytearray(old.read_bytes())
    data[-1] ^= 0x01
    old.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC-32"):
        load_tensors(old)


def test_old_format_model_loads(tmp_path):
    m = SerTiny(rng=1)
    meta = {"format": "timelayers", "model": "SerTiny", "config": {"vocab_size": 6, "hidden": 3},
            "version": "0.1.0"}
    write_old_format(tmp_path / "m", m.state_dict(), {"timelayers": json.dumps(meta)})
    loaded = Model.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.embed.params[0], m.embed.params[0])


# -- what atomic writes leave behind ----------------------------------------------------------
def test_next_write_removes_temp_files_of_killed_writes(tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    target = tmp_path / "checkpoint.safetensors"
    stale = [f".checkpoint.safetensors.{child.pid}-k2j3.tmp",  # its writer is gone
             ".checkpoint.safetensors.a8d_x1q9.tmp"]  # the names of timelayers 0.1
    kept = [f".checkpoint.safetensors.{os.getpid()}-live.tmp",  # a writer still running
            ".other.safetensors.a8d_x1q9.tmp", "notes.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
    save_tensors(target, {"a": np.zeros(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [target.name])


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save_tensors(tmp_path / "t", {"a": np.zeros(2)})
        atomic_write(tmp_path / "b", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o640


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "run" / "model.safetensors"
    fail_writes_after(monkeypatch, 100, OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left on device") as info:
        save_tensors(target, {"a": np.zeros((50, 50))})
    assert info.value.errno == 28 and str(target) in str(info.value)
    monkeypatch.undo()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_takes_bytes_or_a_writer(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, b"first")
    atomic_write(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_small_model_with_a_wide_window_loads(tmp_path):
    """Config integers up to 64 need not be tensor dimensions (here a 5-word window
    over 4 words)."""
    from timelayers.models import SimpleCBOW

    m = SimpleCBOW(4, 3, window_size=5, rng=0)
    m.save(tmp_path / "cbow")
    loaded = Model.load(tmp_path / "cbow")
    assert loaded.config.window_size == 5 and len(loaded.in_layers) == 10

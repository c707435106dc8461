"""Crafted and damaged files (issue 17): each is refused with a one-line error
naming the file, and the memory used to refuse it stays within about twice its
size, whatever sizes it declares."""

import json
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from timelayers.errors import CheckpointError
from timelayers.models import Model, Rnnlm
from timelayers.optim import Adam
from timelayers.serialization import load_tensors, save_tensors
from timelayers.training import Trainer
from timelayers.vocab import Vocabulary
from tiny_models import TinyLM


def refused_within(call, error, match, limit_bytes):
    """Call ``call``, expect ``error`` matching ``match`` on one line, and check
    that the Python and NumPy memory it allocated peaked under ``limit_bytes``."""
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < limit_bytes, f"refusing took {peak} bytes, more than {limit_bytes}"
    return info.value


def rewrite(path, out, edit):
    """Copy the checkpoint ``path`` to ``out`` with ``edit(tensors, metadata)`` applied."""
    tensors, raw = load_tensors(path)
    meta = json.loads(raw["timelayers"])
    edit(tensors, meta)
    save_tensors(out, tensors, {"timelayers": json.dumps(meta)})
    return out


# -- checkpoints ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rnnlm_file(tmp_path_factory):
    """A 0.5 MB Rnnlm checkpoint (1000 words, 50 wide) with its vocabulary."""
    path = tmp_path_factory.mktemp("ckpt") / "rnnlm.safetensors"
    model = Rnnlm(1000, 50, 50, rng=0)
    model.vocab = Vocabulary(f"w{i}" for i in range(1000))
    model.save(path)
    return path


def test_a_config_larger_than_the_weights_is_refused_before_building(tmp_path, rnnlm_file):
    bad = rewrite(rnnlm_file, tmp_path / "big.safetensors",
                  lambda ts, m: m["config"].update(vocab_size=20_000_000))
    size = bad.stat().st_size
    err = refused_within(lambda: Model.load(bad), CheckpointError,
                         "vocab_size=20000000 is larger than every dimension", 2 * size)
    assert str(bad) in str(err)


@pytest.mark.parametrize("edit, message", [
    (lambda ts, m: m.update(vocab=Vocabulary(["a", "b", "c"]).to_dict()),
     "the vocabulary has 3 words, the Rnnlm has 1000"),
    (lambda ts, m: m.update(vocab={"words": "abc"}), "'words' list"),
    (lambda ts, m: ts["rnn.Wx"].__setitem__((0, 3), np.nan), "'rnn.Wx' has NaN or infinite"),
    (lambda ts, m: ts["affine.b"].__setitem__(7, -np.inf), "'affine.b' has NaN or infinite"),
    (lambda ts, m: m["config"].update(hidden_size=-3), "hidden_size=-3 is negative"),
    (lambda ts, m: m["config"].update(hidden_size=10**30), "larger than every dimension"),
    (lambda ts, m: m["config"].update(colour="red"), "does not accept"),
    (lambda ts, m: m.update(config=[1000, 50, 50]), "'config' should be a JSON object"),
    (lambda ts, m: m.update(model=["Rnnlm"]), "'model' should be a string"),
    (lambda ts, m: m.pop("model"), "lacks 'model'"),
    (lambda ts, m: m.update(model="Transformer"), "unknown model 'Transformer'"),
])
def test_bad_model_files(tmp_path, rnnlm_file, edit, message):
    bad = rewrite(rnnlm_file, tmp_path / "bad.safetensors", edit)
    err = refused_within(lambda: Model.load(bad), CheckpointError, message,
                         2 * bad.stat().st_size)
    assert str(bad) in str(err)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["config"].update(hidden_size=7),
     r"'rnn.Wx' has shape \(50, 200\) in the checkpoint, the model expects \(50, 28\)"),
    (lambda m: m["config"].update(hidden_size="50"), "config that Rnnlm does not accept"),
])
def test_a_config_that_does_not_fit_the_weights(tmp_path, rnnlm_file, edit, message):
    """Found while or after the model the config describes is built: its params
    and grads beside the file's tensors, three times the file here."""
    bad = rewrite(rnnlm_file, tmp_path / "bad.safetensors", lambda ts, m: edit(m))
    refused_within(lambda: Model.load(bad), CheckpointError, message, 3 * bad.stat().st_size)


@pytest.fixture(scope="module")
def trainer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "trainer.safetensors"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (20, 4))
    trainer = Trainer(TinyLM(rng=1), Adam(lr=0.05), max_grad=1.0, rng=2, progress=False)
    trainer.fit(x, (x + 1) % 8, max_epoch=1, batch_size=10, checkpoint=path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["training"].update(history=[1, 2]), "'history' should be a JSON object"),
    (lambda m: m["training"]["history"].update(epoch=3), "history 'epoch' should be a JSON list"),
    (lambda m: m["training"]["trainer_config"].update(colour="red"),
     r"trainer_config has unknown keys \['colour'\]"),
    (lambda m: m["training"].update(trainer_config="max_grad"),
     "'trainer_config' should be a JSON object"),
    (lambda m: m["training"].update(epoch="1"), "'epoch' should be a non-negative integer"),
    (lambda m: m["training"].update(iteration=-2), "'iteration' should be a non-negative"),
    (lambda m: m["training"].update(optimizer=None), "'optimizer' should be a JSON object"),
    (lambda m: m["training"]["optimizer"].pop("hyper"), "lacks training optimizer 'hyper'"),
    (lambda m: m.update(training=[]), "'training' should be a JSON object"),
])
def test_bad_training_checkpoints(tmp_path, trainer_file, edit, message):
    bad = rewrite(trainer_file, tmp_path / "bad.safetensors", lambda ts, m: edit(m))
    err = refused_within(lambda: Trainer.resume(bad), CheckpointError, message, 1 << 20)
    assert str(bad) in str(err)


def test_the_untouched_training_checkpoint_resumes(tmp_path, trainer_file):
    same = rewrite(trainer_file, tmp_path / "same.safetensors", lambda ts, m: None)
    assert Trainer.resume(same).epoch == 1


# -- safetensors headers, measured in a fresh process ----------------------------------------------
def crafted_headers():
    """(name, file bytes) of headers that declare far more than the file holds."""
    def file(header, body=b"\0" * 16):
        blob = json.dumps(header).encode()
        return struct.pack("<Q", len(blob)) + blob + body

    return {
        "shape_1e30": file({"a": {"dtype": "F32", "shape": [10**30], "data_offsets": [0, 16]}}),
        "shape_1e9": file({"a": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 16]}}),
        "offsets_beyond": file({"a": {"dtype": "F32", "shape": [10**8],
                                      "data_offsets": [0, 4 * 10**8]}}),
        "header_2_60": struct.pack("<Q", 2**60) + b"{}",
        "header_beyond": struct.pack("<Q", 10**7) + b"{}",
    }


def test_crafted_headers_are_refused_in_bounded_memory(tmp_path):
    """Run in a child process so that allocations outside Python (the
    safetensors parser) count too: its peak resident memory grows by less than
    16 MB while every crafted header is refused."""
    for name, data in crafted_headers().items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
    script = textwrap.dedent("""
        import resource, sys
        from pathlib import Path
        from timelayers.errors import CheckpointError
        from timelayers.serialization import load_tensors
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for path in sorted(Path(sys.argv[1]).iterdir()):
            try:
                load_tensors(path)
                print("LOADED", path.name)
            except CheckpointError as exc:
                print("refused", path.name, str(exc).count(chr(10)))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grown_kib", grown)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split("\n")
    refused = [line for line in out if line.startswith("refused")]
    assert len(refused) == len(crafted_headers()) and all(l.endswith(" 0") for l in refused)
    grown = int(next(line for line in out if line.startswith("grown_kib")).split()[1])
    assert grown < 16 * 1024

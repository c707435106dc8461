"""Crafted and damaged files (issue 17): each is refused with a one-line error
naming the file, and the memory used to refuse it stays within about twice its
size, whatever sizes it declares."""

import json
import pickle
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from timelayers.errors import CheckpointError
from timelayers import models
from timelayers.models import Model, Rnnlm
from timelayers.optim import Adam
from timelayers.serialization import load_tensors, save_tensors
from timelayers.training import Trainer
from timelayers.vocab import Vocabulary
from support.tiny_models import TinyLM


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
     r"tensor 'rnn.Wx' has shape \(50, 200\), the Rnnlm its config describes expects \(50, 28\)"),
    (lambda m: m["config"].update(hidden_size="50"), "config that Rnnlm does not accept"),
    (lambda m: m["config"].update(cell="gru2"), "config that Rnnlm does not accept"),
])
def test_a_config_that_does_not_fit_the_weights(tmp_path, rnnlm_file, edit, message):
    bad = rewrite(rnnlm_file, tmp_path / "bad.safetensors", lambda ts, m: edit(m))
    err = refused_within(lambda: Model.load(bad), CheckpointError, message,
                         2 * bad.stat().st_size)
    assert str(bad) in str(err)


# A config whose sizes are real dimensions of the file (so no bound on sizes refuses
# it) but describe another model: built, each would take from 64 MB to 1 GB.
V_REUSED = 4000
REUSED_DIMENSION_CASES = {
    "Rnnlm": (lambda: Rnnlm(V_REUSED, 16, 16, rng=0), {"hidden_size": V_REUSED},
              r"tensor 'rnn.Wx' has shape \(16, 64\), the Rnnlm its config describes "
              r"expects \(16, 16000\)"),
    "BetterRnnlm-layers": (
        lambda: models.BetterRnnlm(V_REUSED, 16, 16, rng=0), {"num_layers": V_REUSED},
        r"the BetterRnnlm its config describes has a param 'rnns.2.Wx' of shape \(16, 64\), "
        r"the file has no such tensor"),
    "BetterRnnlm-sizes": (
        lambda: models.BetterRnnlm(V_REUSED, 16, 16, rng=0),
        {"wordvec_size": V_REUSED, "hidden_size": V_REUSED},
        r"tensor 'embed.W' has shape \(4000, 16\), .* expects \(4000, 4000\)"),
    "CBOW": (lambda: models.CBOW(V_REUSED, 16, counts=np.ones(V_REUSED, int), rng=0),
             {"hidden_size": V_REUSED},
             r"tensor 'in_layer.W' has shape \(4000, 16\), .* expects \(4000, 4000\)"),
    "PeekySeq2seq": (lambda: models.PeekySeq2seq(V_REUSED, 16, 16, rng=0),
                     {"wordvec_size": V_REUSED},
                     r"tensor 'encoder.embed.W' has shape \(4000, 16\), .* expects "
                     r"\(4000, 4000\)"),
    "AttentionSeq2seq": (lambda: models.AttentionSeq2seq(V_REUSED, 16, 16, rng=0),
                         {"hidden_size": V_REUSED},
                         r"tensor 'encoder.lstm.Wx' has shape \(16, 64\), .* expects "
                         r"\(16, 16000\)"),
    "TransformerLM": (lambda: models.TransformerLM(V_REUSED, 16, 2, 1, 32, 8, rng=0),
                      {"ff_size": V_REUSED},
                      r"tensor 'blocks.0.ff1.W' has shape \(16, 32\), the TransformerLM its "
                      r"config describes expects \(16, 4000\)"),
    "TransformerSeq2seq": (
        lambda: models.TransformerSeq2seq(V_REUSED, 16, 2, 1, 1, 32, 8, rng=0),
        {"decoder_layers": V_REUSED},
        r"has a param 'decoder.blocks.1.self_attn_norm.gamma' of shape \(16,\), the file has "
        r"no such tensor"),
}


@pytest.mark.parametrize("case", REUSED_DIMENSION_CASES)
def test_a_config_reusing_a_real_dimension_is_refused_before_building(tmp_path, case):
    make, change, message = REUSED_DIMENSION_CASES[case]
    good = tmp_path / "good.safetensors"
    make().save(good)
    bad = rewrite(good, tmp_path / "bad.safetensors", lambda ts, m: m["config"].update(change))
    err = refused_within(lambda: Model.load(bad), CheckpointError, message,
                         2 * bad.stat().st_size)
    assert str(bad) in str(err)


@pytest.mark.parametrize("part", ["TokenInput", "TransformerEncoder", "TransformerDecoder"])
def test_a_part_of_a_transformer_is_not_loaded_on_its_own(tmp_path, rnnlm_file, part):
    bad = rewrite(rnnlm_file, tmp_path / "bad.safetensors",
                  lambda ts, m: m.update(model=part, config={"rng": 0}))
    refused_within(lambda: Model.load(bad), CheckpointError,
                   f"config that {part} does not accept: {part} is built only as a part",
                   2 * bad.stat().st_size)


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
    (lambda m: m["training"]["history"].update(loss=["x"]),
     "history 'loss' should hold numbers or null, got \"x\""),
    (lambda m: m["training"]["history"].pop("interval_loss"), r"history lacks \['interval_loss'\]"),
    (lambda m: m["training"]["history"].update(lr=[0.1, 0.2]), "history lists differ in length"),
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


# -- the book's weights pickles -----------------------------------------------------------------
class Reduces:
    """Pickles as ``call(*args)`` (then ``state``, if given, set on the result)."""

    def __init__(self, call, args, state=None):
        self.reduce = (call, args) if state is None else (call, args, state)

    def __reduce__(self):
        return self.reduce


def _book_rnnlm_arrays(V=12, D=4, H=5):
    rng = np.random.default_rng(0)
    shapes = [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (H, V), (V,)]
    return [rng.standard_normal(s).astype(np.float16) for s in shapes]


_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's, wherever it lives
_F2 = np.dtype("f2")


def _flagged_dtype():
    dtype = np.dtype("f8")
    state = list(dtype.__reduce__()[2])
    state[7] = 0x1F  # NPY_ITEM_HASOBJECT and friends: float bytes read as object pointers
    return Reduces(np.dtype, ("f8", False, True), tuple(state))


CRAFTED_PICKLES = {
    # a 10**5 x 10**5 view of two bytes: gigabytes once copied
    "zero_stride": [Reduces(np.ndarray, ((10**5, 10**5), _F2, b"\0\0", 0, (0, 0)))],
    "declared_shape": [Reduces(_reconstruct, (np.ndarray, (10**6, 10**6), b"b"))],
    "state_shape_1e30": [Reduces(_reconstruct, (np.ndarray, (0,), b"b"),
                                 (1, (10**30,), _F2, False, b"\0\0"))],
    "state_shape_no_data": [Reduces(_reconstruct, (np.ndarray, (0,), b"b"),
                                    (1, (10**4, 10**4), _F2, False, b"\0\0"))],
    "subarray_dtype": [Reduces(np.dtype, ("f4", False, True),
                               (3, "|", (np.dtype("f4"), (10**5, 10**5)), None, None, 4, 4, 0))],
    "flagged_dtype": [_flagged_dtype()],
    "object_array": [np.array([1, "a"], dtype=object)],
    "frombuffer_shape": [Reduces(np.frombuffer, (b"\0" * 4,))],  # numpy.frombuffer: not allowed
}


@pytest.mark.parametrize("name", sorted(CRAFTED_PICKLES))
def test_crafted_pickles_are_refused_in_bounded_memory(tmp_path, name):
    from timelayers.book.weights import UnsafePickleError, import_book_weights

    pkl = tmp_path / f"{name}.pkl"
    pkl.write_bytes(pickle.dumps(CRAFTED_PICKLES[name], protocol=2))
    assert pkl.stat().st_size < 400
    err = refused_within(lambda: import_book_weights("rnnlm", pkl, tmp_path / "out.safetensors"),
                         UnsafePickleError, "refusing", 2 * pkl.stat().st_size + 64 * 1024)
    assert str(pkl) in str(err)
    assert not (tmp_path / "out.safetensors").exists()


def test_a_declared_bytearray_length_is_bounded_by_the_file(tmp_path):
    """Python's unpickler allocates a BYTEARRAY8's declared length before reading it."""
    from timelayers.book.weights import UnsafePickleError, load_book_pickle

    pkl = tmp_path / "bytearray.pkl"
    pkl.write_bytes(b"\x80\x05" + pickle.BYTEARRAY8 + struct.pack("<Q", 2**34) + b"\0" * 8
                    + pickle.STOP)
    refused_within(lambda: load_book_pickle(pkl), UnsafePickleError,
                   "refusing a bytearray of 17179869184 bytes", 64 * 1024)


def test_a_buffer_that_does_not_hold_its_shape(tmp_path):
    from timelayers.book.weights import UnsafePickleError, load_book_pickle

    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # how protocol 5 rebuilds arrays
    pkl = tmp_path / "buffer.pkl"
    pkl.write_bytes(pickle.dumps([Reduces(frombuffer, (b"\0" * 4, _F2, (10**6,), "C"))],
                                 protocol=5))
    with pytest.raises(UnsafePickleError, match="does not hold an array of shape"):
        load_book_pickle(pkl)


def test_empty_arrays_that_declare_a_large_model(tmp_path):
    """An empty (20000, 0) array where the LSTM's Wh goes would make the hidden
    size 20000 (a 6 GB model) if the model were built before the shapes are
    compared."""
    from timelayers.book.weights import import_book_weights

    arrays = _book_rnnlm_arrays()
    arrays[2] = np.zeros((20000, 0), np.float16)
    pkl = tmp_path / "empty.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    refused_within(lambda: import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors"),
                   CheckpointError, r"array 1 has shape \(4, 20\), the book's rnnlm .* has "
                   r"\(4, 80000\)", 2 * pkl.stat().st_size + 64 * 1024)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_not_imported(tmp_path, value):
    from timelayers.book.weights import import_book_weights

    arrays = _book_rnnlm_arrays()
    arrays[3][5] = value
    pkl = tmp_path / "nan.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    with pytest.raises(CheckpointError, match=r"nan.pkl': array for 'rnn.b' has NaN or infinite"):
        import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


def test_a_vocabulary_of_another_size_is_not_attached(tmp_path):
    from timelayers.book.weights import import_book_weights

    pkl = tmp_path / "w.pkl"
    pkl.write_bytes(pickle.dumps(_book_rnnlm_arrays(V=12)))
    vocab = Vocabulary(f"w{i}" for i in range(10000))
    with pytest.raises(CheckpointError, match="the vocabulary has 10000 words, the Rnnlm has 12"):
        import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors", vocab=vocab)
    assert not (tmp_path / "o.safetensors").exists()
    model = import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors",
                                vocab=Vocabulary(f"w{i}" for i in range(12)))
    assert len(Model.load(tmp_path / "o.safetensors").vocab) == 12 == len(model.vocab)


def test_nan_weights_are_not_loaded_into_a_trainer(tmp_path, trainer_file):
    bad = rewrite(trainer_file, tmp_path / "nan.safetensors",
                  lambda ts, m: ts["embed.W"].__setitem__((2, 1), np.nan))
    trainer = Trainer(TinyLM(rng=1), Adam(lr=0.05), max_grad=1.0, rng=2, progress=False)
    before = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="'embed.W' has NaN or infinite values"):
        trainer.load_checkpoint(bad)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# -- JSON nested too deeply, numbers too long, arrays that allocate (the audit of issue 17) -------
DEEP = "[" * 100_000
LONG_NUMBER = "1" * 100_000  # Python refuses to read an int of more than 4300 digits


@pytest.mark.parametrize("text", [DEEP, '{"a":' * 100_000, LONG_NUMBER])
def test_unreadable_model_metadata_is_a_checkpoint_error(tmp_path, text):
    bad = tmp_path / "bad.safetensors"
    save_tensors(bad, {"a": np.zeros(2, np.float32)}, {"timelayers": text})
    err = refused_within(lambda: Model.load(bad), CheckpointError,
                         "timelayers metadata that cannot be read", 1 << 24)
    assert str(bad) in str(err)


@pytest.mark.parametrize("text", [DEEP, LONG_NUMBER])
def test_an_unreadable_run_json_is_a_data_error(tmp_path, text):
    from timelayers.errors import DataError
    from timelayers.runs.folder import read_run_json

    (tmp_path / "run.json").write_text(text)
    err = refused_within(lambda: read_run_json(tmp_path), DataError, "is corrupt", 1 << 24)
    assert str(tmp_path / "run.json") in str(err)


def test_a_vocabulary_nested_too_deeply_is_a_data_error(tmp_path):
    from timelayers.errors import DataError

    path = tmp_path / "vocab.json"
    path.write_text(DEEP)
    err = refused_within(lambda: Vocabulary.load(path), DataError, "not a vocabulary file",
                         1 << 24)
    assert str(path) in str(err)


@pytest.mark.parametrize("text, message", [(DEEP, "not a history file"),
                                           ("[1, 2]", "expected a JSON object of lists, got a list"),
                                           ("{", "not a history file")])
def test_a_bad_history_file_is_a_data_error(tmp_path, text, message):
    from timelayers.errors import DataError
    from timelayers.training import load_history

    path = tmp_path / "history.json"
    path.write_text(text)
    err = refused_within(lambda: load_history(path), DataError, message, 1 << 24)
    assert str(path) in str(err)


@pytest.mark.parametrize("array, message", [
    # 4 numbers of a (1000, 1000) subarray dtype: 32 MB once built (100 of (10000, 10000): 74 GiB)
    ({"__ndarray__": [0] * 4, "dtype": "(1000,1000)f8"}, "plain number type"),
    ({"__ndarray__": 0, "dtype": "V100000000000"}, "plain number type"),
    ({"__ndarray__": [1], "dtype": "O"}, "plain number type"),
    ({"__ndarray__": "abc", "dtype": "<f8"}, "numbers or lists, got str"),
    ({"__ndarray__": [[1], [1, 2]], "dtype": "<f8"}, "cannot hold its values"),
])
def test_an_array_in_the_training_metadata_allocates_no_more_than_its_numbers(
        tmp_path, trainer_file, array, message):
    bad = rewrite(trainer_file, tmp_path / "bad.safetensors",
                  lambda ts, m: m["training"].update(layer_rng_states={"x": array}))
    err = refused_within(lambda: Trainer.resume(bad), CheckpointError, message, 1 << 22)
    assert str(bad) in str(err)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A small rnnlm run folder (2 epochs on a 600-word corpus)."""
    from timelayers.runs import recipes

    folder = tmp_path_factory.mktemp("run")
    words = np.random.default_rng(0).choice(["the", "cat", "sat", "on", "a", "mat"], 600)
    (folder / "corpus.txt").write_text("\n".join(" ".join(words[i:i + 10])
                                                 for i in range(0, 600, 10)))
    recipes.train("rnnlm", folder / "run", data=folder / "corpus.txt", progress=False,
                  overrides=dict(epochs=1, hidden_size=8, wordvec_size=8, batch_size=2,
                                 time_size=5))
    return folder / "run"


@pytest.mark.parametrize("key, value", [("hidden_size", 999), ("cell", "gru")])
def test_a_run_json_that_contradicts_the_model_is_refused(tmp_path, lm_run, key, value):
    import shutil

    from timelayers.runs import recipes
    from timelayers.errors import DataError

    run = tmp_path / "run"
    shutil.copytree(lm_run, run)
    info = json.loads((run / "run.json").read_text())
    info["options"][key] = value
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=f"says {key}={value!r}, but .*model.safetensors' holds "
                                        f"a Rnnlm with {key}="):
        recipes.load_run(run)
    with pytest.raises(DataError, match="checkpoint.safetensors' holds a Rnnlm"):
        recipes.train("rnnlm", run, resume=True, progress=False, overrides=dict(epochs=2))
    assert recipes.load_run(lm_run).model.config.hidden_size == 8

"""Importing the book's pickled weights with a restricted unpickler."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import timelayers as tl
from timelayers.book_weights import (UnsafePickleError, import_book_weights, load_book_pickle)
from timelayers.cli import main


def _book_rnnlm_arrays(rng, V=12, D=4, H=5):
    shapes = [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (H, V), (V,)]
    return [rng.standard_normal(s).astype(np.float16) for s in shapes]


def _book_better_arrays(rng, V=12, H=6):
    embed = rng.standard_normal((V, H)).astype(np.float16)
    arrays = [embed]
    for _ in range(2):
        arrays += [rng.standard_normal((H, 4 * H)).astype(np.float16),
                   rng.standard_normal((H, 4 * H)).astype(np.float16),
                   rng.standard_normal(4 * H).astype(np.float16)]
    return arrays + [embed.T.copy(), rng.standard_normal(V).astype(np.float16)]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_import_rnnlm_weights(tmp_path, protocol):
    arrays = _book_rnnlm_arrays(np.random.default_rng(0))
    pkl = tmp_path / "Rnnlm.pkl"
    pkl.write_bytes(pickle.dumps(arrays, protocol=protocol))
    model = import_book_weights("rnnlm", pkl, tmp_path / "rnnlm.safetensors")
    assert model.config.hidden_size == 5 and model.config.vocab_size == 12
    loaded = tl.models.Model.load(tmp_path / "rnnlm.safetensors")
    for a, p in zip(arrays, loaded.params):
        np.testing.assert_array_equal(a.astype(np.float32), p)
    assert loaded.params[0].dtype == np.float32


def test_import_better_rnnlm_weights_checks_tie(tmp_path, capsys):
    arrays = _book_better_arrays(np.random.default_rng(1))
    pkl = tmp_path / "BetterRnnlm.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    assert main(["import-book-weights", "better-rnnlm", str(pkl), str(tmp_path / "b.safetensors")]) == 0
    assert "BetterRnnlm" in capsys.readouterr().out
    model = tl.models.Model.load(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(model.affine.params[0], arrays[0].astype(np.float32).T)
    arrays[-2] = arrays[-2] + np.float16(1)  # break the tie
    pkl.write_bytes(pickle.dumps(arrays))
    with pytest.raises(tl.CheckpointError, match="not tied"):
        import_book_weights("better-rnnlm", pkl, tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps([np.zeros(3, np.float16), _Evil(marker)]))
    with pytest.raises(UnsafePickleError, match="system"):
        load_book_pickle(pkl)
    assert not marker.exists()
    code = main(["import-book-weights", "rnnlm", str(pkl), str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "refusing" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_other_objects_are_refused(tmp_path):
    pkl = tmp_path / "x.pkl"
    pkl.write_bytes(pickle.dumps({"W": np.zeros(2)}))
    with pytest.raises(tl.CheckpointError, match="list of arrays"):
        load_book_pickle(pkl)
    pkl.write_bytes(pickle.dumps([np.zeros(2), set()]))
    with pytest.raises(tl.CheckpointError, match="list of arrays"):
        load_book_pickle(pkl)
    import collections

    pkl.write_bytes(pickle.dumps([np.zeros(2), collections.OrderedDict()]))
    with pytest.raises(UnsafePickleError, match="OrderedDict"):
        load_book_pickle(pkl)
    pkl.write_bytes(b"not a pickle")
    with pytest.raises(tl.CheckpointError, match="not a readable pickle"):
        load_book_pickle(pkl)


def test_wrong_shapes_are_refused(tmp_path):
    arrays = _book_rnnlm_arrays(np.random.default_rng(0))
    arrays[2] = np.zeros((3, 3), np.float16)
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    with pytest.raises(tl.CheckpointError):
        import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors")


_SHARED_PTB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ptb"


@pytest.mark.skipif(not (_SHARED_PTB / "ptb.train.txt").is_file(),
                    reason="Penn Treebank files not found in ../shared/datasets/ptb")
def test_ptb_vocab_must_fit_the_embedding(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIMELAYERS_DATA", str(_SHARED_PTB))
    pkl = tmp_path / "Rnnlm.pkl"
    pkl.write_bytes(pickle.dumps(_book_rnnlm_arrays(np.random.default_rng(0), V=10)))
    out = tmp_path / "out.safetensors"
    code = main(["import-book-weights", "rnnlm", str(pkl), str(out), "--ptb-vocab"])
    err = capsys.readouterr().err
    assert code == 2 and "the vocabulary has 10000 words, the Rnnlm has 10" in err
    assert str(pkl) in err and err.count("\n") == 1 and not out.exists()

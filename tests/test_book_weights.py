"""Importing the book's pickled weights (a restricted unpickler) into checkpoints
and run folders: pickles in the book's formats, made here from our models, give
back the same numbers; crafted pickles are refused with one-line errors."""

import os
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import timelayers as tl
from timelayers import models
from timelayers.runs import recipes
from timelayers.book.weights import (UnsafePickleError, book_data_vocabulary, import_book_run,
                                     import_book_weights, load_book_pickle)
from timelayers.cli import main
from timelayers.datasets import load_sequence, make_addition, reverse_questions, write_sequence
from timelayers.decoding import greedy_decode
from timelayers.text import analogy, most_similar
from timelayers.backend import to_cpu
from support.data import find_ptb
from support.tiny_models import scale_params


# -- the book's formats: what its code writes (BaseModel.save_params: float16 arrays in the
# model's order; ch04's word vectors as a dict), made from our models, and its seq2seq
# forward written from its conventions, to check an import against

def round_to_float16(model):
    """Round every param of ``model`` to float16 in place (what the book's files keep),
    so that the model and its import hold the same numbers. Returns the model."""
    for p in model.params:
        p[...] = p.astype(np.float16)
    return model


def book_params(model) -> list:
    """``model``'s params as the book saves them: float16 arrays in the book's order,
    a tied weight saved as its own array, and a PeekyDecoder's LSTM Wx and affine W
    with the encoder state's rows first (the book concatenates ``[h, embedding]`` and
    ``[h, LSTM output]``; we put ``h`` last)."""
    arrays = {name: to_cpu(p).astype(np.float16) for name, p, _ in model.named_param_slots()}
    if isinstance(model, models.PeekySeq2seq):
        D, H = model.config.wordvec_size, model.config.hidden_size
        Wx, W = arrays["decoder.lstm.Wx"], arrays["decoder.affine.W"]
        arrays["decoder.lstm.Wx"] = np.concatenate([Wx[D:], Wx[:D]])  # (H + D, 4H)
        arrays["decoder.affine.W"] = np.concatenate([W[H:], W[:H]])  # (H + H, V)
    return list(arrays.values())


def book_word_vectors(model) -> dict:
    """A CBOW's or SkipGram's word vectors as the book's ch04 pickles them."""
    words = model.vocab.words
    return {"word_vecs": to_cpu(model.word_vecs).astype(np.float16),
            "word_to_id": {w: i for i, w in enumerate(words)},
            "id_to_word": dict(enumerate(words))}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _book_lstm(xs, Wx, Wh, b, h):
    """The book's TimeLSTM over ``xs (N, T, D)`` from ``h (N, H)`` and ``c = 0``, with
    its gate columns f, g, i, o; returns ``hs (N, T, H)``."""
    H = Wh.shape[0]
    c = np.zeros_like(h)
    hs = []
    for t in range(xs.shape[1]):
        A = xs[:, t] @ Wx + h @ Wh + b
        f, g, i, o = (_sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H]), _sigmoid(A[:, 2 * H:3 * H]),
                      _sigmoid(A[:, 3 * H:]))
        c = f * c + g * i
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def book_seq2seq_scores(kind, arrays, xs, ts_in):
    """Decoder scores ``(N, Ta, V)`` of the book's Seq2seq, PeekySeq2seq or
    AttentionSeq2seq (``kind``: "seq2seq", "peeky", "attention") from its saved
    ``arrays`` in float64, for questions ``xs (N, Tq)`` and decoder inputs ``ts_in
    (N, Ta)``: the book's layer order, its peeky ``[h, x]`` concatenations and its
    attention's ``[context, h]``."""
    a = [np.asarray(x, dtype=np.float64) for x in arrays]
    enc_hs = _book_lstm(a[0][xs], a[1], a[2], a[3], np.zeros((len(xs), a[2].shape[0])))
    h = enc_hs[:, -1]
    dec_in = a[4][ts_in]  # (N, Ta, D)
    N, T, _ = dec_in.shape
    peek = np.broadcast_to(h[:, None, :], (N, T, h.shape[1]))
    if kind == "peeky":
        dec_in = np.concatenate([peek, dec_in], axis=2)
    dec_hs = _book_lstm(dec_in, a[5], a[6], a[7], h)
    if kind == "peeky":
        dec_hs = np.concatenate([peek, dec_hs], axis=2)
    elif kind == "attention":
        scores = np.einsum("nqh,nth->ntq", enc_hs, dec_hs)
        weights = np.exp(scores - scores.max(axis=2, keepdims=True))
        weights /= weights.sum(axis=2, keepdims=True)
        dec_hs = np.concatenate([np.einsum("ntq,nqh->nth", weights, enc_hs), dec_hs], axis=2)
    return dec_hs @ a[8] + a[9]



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


def _write(path, obj, protocol=4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


_SHARED_PTB = find_ptb()  # $TIMELAYERS_DATA, else ../shared/datasets/ptb
needs_ptb = pytest.mark.skipif(_SHARED_PTB is None,
                               reason="Penn Treebank files not found in $TIMELAYERS_DATA nor "
                                      "../shared/datasets/ptb")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- language models -----------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_import_rnnlm_weights(tmp_path, protocol):
    arrays = _book_rnnlm_arrays(np.random.default_rng(0))
    pkl = _write(tmp_path / "Rnnlm.pkl", arrays, protocol)
    model = import_book_weights("rnnlm", pkl, tmp_path / "rnnlm.safetensors")
    assert model.config.hidden_size == 5 and model.config.vocab_size == 12
    loaded = tl.models.Model.load(tmp_path / "rnnlm.safetensors")
    for a, p in zip(arrays, loaded.params):
        np.testing.assert_array_equal(a.astype(np.float32), p)
    assert loaded.params[0].dtype == np.float32


def test_import_better_rnnlm_weights_checks_tie(tmp_path, capsys):
    arrays = _book_better_arrays(np.random.default_rng(1))
    pkl = _write(tmp_path / "BetterRnnlm.pkl", arrays)
    assert main(["import-book-weights", "better-rnnlm", str(pkl), str(tmp_path / "b.safetensors")]) == 0
    assert "BetterRnnlm" in capsys.readouterr().out
    model = tl.models.Model.load(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(model.affine.params[0], arrays[0].astype(np.float32).T)
    arrays[-2] = arrays[-2] + np.float16(1)  # break the tie
    _write(pkl, arrays)
    with pytest.raises(tl.CheckpointError, match="not tied"):
        import_book_weights("better-rnnlm", pkl, tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


def test_the_wrong_kind_says_which_model_the_file_looks_like(tmp_path):
    rnnlm = _write(tmp_path / "Rnnlm.pkl", _book_rnnlm_arrays(np.random.default_rng(0)))
    with pytest.raises(tl.CheckpointError, match="; the file looks like the book.s "
                                                 "rnnlm: import it as rnnlm"):
        import_book_weights("better-rnnlm", rnnlm, tmp_path / "x.safetensors")
    better = _write(tmp_path / "BetterRnnlm.pkl", _book_better_arrays(np.random.default_rng(1)))
    with pytest.raises(tl.CheckpointError, match="looks like the book's better-rnnlm"):
        import_book_weights("rnnlm", better, tmp_path / "y.safetensors")
    for kind in ("seq2seq", "peeky", "attention"):
        with pytest.raises(tl.CheckpointError) as info:
            import_book_weights(kind, rnnlm, tmp_path / "z.safetensors")
        assert "looks like the book's rnnlm" in str(info.value)


@needs_ptb
def test_rnnlm_run_folder_gives_the_originals_perplexity(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIMELAYERS_DATA", str(_SHARED_PTB))
    _, vocab = tl.datasets.load_ptb("train")
    original = models.Rnnlm(len(vocab), 6, 5, rng=0)
    scale_params(original, np.random.default_rng(1), scale=0.3)
    round_to_float16(original)
    pkl = _write(tmp_path / "Rnnlm.pkl", book_params(original))
    run_dir = tmp_path / "book-rnnlm"
    code, out, err = run(capsys, "import-book-weights", "rnnlm", pkl, run_dir, "--run-folder")
    assert code == 0, err
    assert f"wrote run folder {run_dir}: Rnnlm(vocab_size=10000, wordvec_size=6" in out
    # eval on an excerpt of PTB's test text (the whole split takes a minute): its last 10%
    lines = (_SHARED_PTB / "ptb.test.txt").read_text().splitlines()[:200]
    excerpt = tmp_path / "excerpt.txt"
    excerpt.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "eval", run_dir, "--data", excerpt)
    assert code == 0, err
    ids = vocab.encode("\n".join(lines).replace("\n", " <eos> ").split() + ["<eos>"])
    want = tl.perplexity(original, ids[int(len(ids) * 0.9):], batch_size=10, time_size=35)
    assert out.split()[0] == "perplexity"
    np.testing.assert_allclose(float(out.split()[1]), want, rtol=1e-4)
    code, out, err = run(capsys, "generate", run_dir, "--start", "the", "--length", 5,
                         "--seed", 0)
    assert code == 0 and out.startswith("the "), err


@needs_ptb
def test_ptb_vocab_must_fit_the_embedding(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIMELAYERS_DATA", str(_SHARED_PTB))
    pkl = _write(tmp_path / "Rnnlm.pkl", _book_rnnlm_arrays(np.random.default_rng(0), V=10))
    out = tmp_path / "out.safetensors"
    for extra in ([out, "--ptb-vocab"], [tmp_path / "run", "--run-folder"]):
        code, _, err = run(capsys, "import-book-weights", "rnnlm", pkl, *extra)
        assert code == 2 and "the vocabulary has 10000 words, the Rnnlm has 10" in err
        assert str(pkl) in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "run").exists()


# -- seq2seq, peeky, attention ---------------------------------------------------------------------
SEQ2SEQ_MODELS = {"seq2seq": models.Seq2seq, "peeky": models.PeekySeq2seq,
                  "attention": models.AttentionSeq2seq}


@pytest.fixture
def addition_file(tmp_path):
    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(300, np.random.default_rng(0)))
    return path


def _original_seq2seq(kind, vocab, D=5, H=6):
    """A model of ``kind`` with weights large enough to answer unevenly, held in float16."""
    model = SEQ2SEQ_MODELS[kind](len(vocab), D, H, rng=0)
    scale_params(model, np.random.default_rng(3), scale=1.5)
    model.vocab = vocab
    return round_to_float16(model)


@pytest.mark.parametrize("kind", sorted(SEQ2SEQ_MODELS))
def test_seq2seq_imports_give_the_books_scores(tmp_path, addition_file, kind):
    vocab = book_data_vocabulary(addition_file)
    (x, t), _, _ = load_sequence(addition_file, seed=None, vocab=vocab)
    x, t = x[:20], t[:20]
    original = _original_seq2seq(kind, vocab)
    arrays = book_params(original)
    pkl = _write(tmp_path / f"{kind}.pkl", arrays)
    imported = import_book_weights(kind, pkl, tmp_path / "m.safetensors", vocab=vocab)
    imported = models.Model.load(tmp_path / "m.safetensors")
    assert type(imported) is type(original) and imported.vocab == vocab
    scores = imported.decoder.forward(t[:, :-1], imported.encoder.forward(x))
    book = book_seq2seq_scores(kind, arrays, x, t[:, :-1])
    np.testing.assert_allclose(scores, book, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(imported.forward(x, t), original.forward(x, t), rtol=1e-6)
    answers = greedy_decode(imported, x, vocab["_"], t.shape[1] - 1)
    np.testing.assert_array_equal(answers, greedy_decode(original, x, vocab["_"], t.shape[1] - 1))
    assert len({tuple(row) for row in answers}) > 2  # answers differ: the comparison can fail


@pytest.mark.parametrize("kind", ["attention", "peeky"])
def test_seq2seq_run_folder_answers_as_the_original(tmp_path, addition_file, capsys, kind):
    vocab = book_data_vocabulary(addition_file)
    original = _original_seq2seq(kind, vocab)
    pkl = _write(tmp_path / f"{kind}.pkl", book_params(original))
    run_dir = tmp_path / "book-run"
    code, out, err = run(capsys, "import-book-weights", kind, pkl, run_dir, "--run-folder",
                         "--data", addition_file)
    assert code == 0, err
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.safetensors", "run.json"]
    info = recipes.load_run(run_dir)
    assert info.options["reverse"] is True and info.shape == (7, 4)
    questions = ["16+75", "8+4", "706+796"]
    code, out, err = run(capsys, "generate", run_dir, *questions)
    assert code == 0, err
    x = reverse_questions(np.stack([vocab.encode(q.ljust(7)) for q in questions]))
    want = ["".join(vocab.decode(row)).strip() for row in greedy_decode(original, x, vocab["_"], 4)]
    assert out.splitlines() == [f"{q}\t{a}" for q, a in zip(questions, want)]
    code, out, err = run(capsys, "eval", run_dir)
    assert code == 0, err
    _, (x_test, t_test), _ = load_sequence(addition_file, seed=0, vocab=vocab)
    want = tl.sequence_accuracy(original, reverse_questions(x_test), t_test)
    assert out == f"accuracy {want:.4f}\n"


def test_no_reverse_and_a_run_that_holds_a_run(tmp_path, addition_file, capsys):
    vocab = book_data_vocabulary(addition_file)
    pkl = _write(tmp_path / "s.pkl", book_params(_original_seq2seq("seq2seq", vocab)))
    run_dir = tmp_path / "run"
    argv = ["import-book-weights", "seq2seq", pkl, run_dir, "--run-folder", "--data", addition_file]
    assert run(capsys, *argv, "--reverse")[0] == 0
    assert recipes.load_run(run_dir).options["reverse"] is True
    before = (run_dir / "model.safetensors").read_bytes()
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already holds a run" in err and err.count("\n") == 1
    bad = _write(tmp_path / "bad.pkl", book_params(_original_seq2seq("seq2seq", vocab))[:9])
    code, _, err = run(capsys, "import-book-weights", "seq2seq", bad, run_dir, "--run-folder",
                       "--data", addition_file, "--force")
    assert code == 2 and "has 10 arrays, the file has 9" in err
    assert (run_dir / "model.safetensors").read_bytes() == before  # the old run is kept
    assert run(capsys, *argv, "--force", "--no-reverse")[0] == 0
    assert recipes.load_run(run_dir).options["reverse"] is False
    assert recipes.load_run(run_dir).options == {
        **recipes.RECIPES["seq2seq"].train_args, **recipes.COMMON_OPTIONS, "wordvec_size": 5,
        "hidden_size": 6, "reverse": False}
    imported = __import__("json").loads((run_dir / "run.json").read_text())["imported"]
    assert imported["file"] == str(pkl.resolve()) and len(imported["sha256"]) == 64


# -- word vectors --------------------------------------------------------------------------------
WORDS = ("king queen man woman car cars child children you we they year month day week "
         "toyota ford apple pear cat dog").split()


@pytest.mark.parametrize("kind, cls", [("cbow", models.CBOW), ("skipgram", models.SkipGram)])
def test_word_vector_run_folder_gives_the_originals_neighbours(tmp_path, capsys, kind, cls):
    rng = np.random.default_rng(3)
    original = cls(len(WORDS), 8, corpus=rng.integers(0, len(WORDS), 200), rng=0)
    original.vocab = tl.Vocabulary(WORDS)
    scale_params(original, rng)
    round_to_float16(original)
    pkl = _write(tmp_path / f"{kind}_params.pkl", book_word_vectors(original))
    run_dir = tmp_path / kind
    code, out, err = run(capsys, "import-book-weights", kind, pkl, run_dir, "--run-folder")
    assert code == 0, err
    assert f"{cls.__name__}(vocab_size={len(WORDS)}, hidden_size=8, window_size=5" in out
    vectors = original.word_vecs
    code, out, err = run(capsys, "similar", run_dir, "car", "--top", 4)
    assert code == 0, err
    assert out == "".join(f"{w}\t{s:.4f}\n" for w, s in most_similar("car", original.vocab,
                                                                      vectors, top=4))
    code, out, err = run(capsys, "analogy", run_dir, "king", "man", "queen")
    assert code == 0, err
    assert out == "".join(f"{w}\t{s:.4f}\n" for w, s in analogy("king", "man", "queen",
                                                                 original.vocab, vectors))
    imported = recipes.load_run(run_dir).model
    assert imported.vocab == original.vocab
    np.testing.assert_array_equal(imported.params[1], 0)  # the book keeps no output weights
    assert "output weights are zero" in (run_dir / "run.json").read_text()


# -- refused ---------------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    pkl = _write(tmp_path / "evil.pkl", [np.zeros(3, np.float16), _Evil(marker)])
    with pytest.raises(UnsafePickleError, match="system"):
        load_book_pickle(pkl)
    assert not marker.exists()
    for argv in (["rnnlm", pkl, tmp_path / "out.safetensors"],
                 ["cbow", _write(tmp_path / "evil2.pkl", {"word_vecs": _Evil(marker)}),
                  tmp_path / "run", "--run-folder"]):
        code, _, err = run(capsys, "import-book-weights", *argv)
        assert code == 2 and "refusing" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    assert not (tmp_path / "run").exists()


def test_other_objects_are_refused(tmp_path):
    pkl = tmp_path / "x.pkl"
    _write(pkl, {"W": np.zeros(2)})
    with pytest.raises(tl.CheckpointError, match=r"dict with keys \['W'\], not the book's word"):
        load_book_pickle(pkl)
    _write(pkl, [np.zeros(2), None])
    with pytest.raises(tl.CheckpointError, match="list of arrays"):
        load_book_pickle(pkl)
    _write(pkl, [np.zeros(2), set()])
    with pytest.raises(UnsafePickleError, match="refusing a set"):
        load_book_pickle(pkl)
    import collections

    _write(pkl, [np.zeros(2), collections.OrderedDict()])
    with pytest.raises(UnsafePickleError, match="OrderedDict"):
        load_book_pickle(pkl)
    pkl.write_bytes(b"not a pickle")
    with pytest.raises(tl.CheckpointError, match="not a readable pickle"):
        load_book_pickle(pkl)


def test_wrong_shapes_are_refused(tmp_path):
    arrays = _book_rnnlm_arrays(np.random.default_rng(0))
    arrays[2] = np.zeros((3, 3), np.float16)
    pkl = _write(tmp_path / "bad.pkl", arrays)
    with pytest.raises(tl.CheckpointError, match=r"array 1 has shape \(4, 20\), the book's rnnlm"):
        import_book_weights("rnnlm", pkl, tmp_path / "o.safetensors")


def _seq2seq_arrays(kind="seq2seq", V=13):
    return book_params(_original_seq2seq(kind, tl.Vocabulary(f"c{i}" for i in range(V))))


def _vectors(V=4, H=3):
    words = [f"w{i}" for i in range(V)]
    return {"word_vecs": np.ones((V, H), np.float16), "word_to_id": {w: i for i, w in enumerate(words)},
            "id_to_word": dict(enumerate(words))}


def _edited(obj, edit):
    edit(obj)
    return obj


CRAFTED = {  # name: (model, what the pickle holds, what the one-line error says)
    "count": ("attention", _seq2seq_arrays("attention")[:9],
              "the book's attention has 10 arrays, the file has 9"),
    "decoder_Wh": ("seq2seq", _edited(_seq2seq_arrays(), lambda a: a.__setitem__(
        6, np.zeros((6, 20), np.float16))),
                   r"array 6 has shape \(6, 20\), the book's seq2seq .* has \(6, 24\)"),
    "not_peeky": ("peeky", _seq2seq_arrays("seq2seq"),
                  r"array 5 has shape \(5, 24\), the book's peeky .* has \(11, 24\)"),
    "not_attention": ("attention", _seq2seq_arrays("seq2seq"),
                      r"array 8 has shape \(6, 13\), the book's attention .* has \(12, 13\)"),
    "nan": ("peeky", _edited(_seq2seq_arrays("peeky"), lambda a: a[8].__setitem__((1, 2), np.nan)),
            "array for 'decoder.affine.W' has NaN or infinite values"),
    "zero_hidden": ("seq2seq", [np.zeros((13, 5), np.float16), np.zeros((5, 0), np.float16),
                                *[np.zeros(s, np.float16) for s in [(0, 0), (0,), (13, 5),
                                                                    (5, 0), (0, 0), (0,), (0, 13),
                                                                    (13,)]]],
                    "every size must be at least 1"),
    "dict_for_rnnlm": ("rnnlm", _vectors(), "holds the book's word vectors, not the rnnlm's"),
    "list_for_cbow": ("cbow", [np.zeros((4, 3), np.float16)], "not the book's word-vector dict"),
    "int_keys": ("cbow", _edited(_vectors(), lambda d: d.__setitem__("word_to_id", {3: 3})),
                 "'word_to_id' maps str to int in the book's format, but holds 3: 3"),
    "str_values": ("skipgram", _edited(_vectors(), lambda d: d["id_to_word"].__setitem__(2, 2)),
                   "'id_to_word' maps int to str in the book's format, but holds 2: 2"),
    "vocab_size": ("cbow", _edited(_vectors(), lambda d: d["word_to_id"].pop("w3")),
                   "'word_vecs' has 4 rows, 'word_to_id' 3 words and 'id_to_word' 4"),
    "ids_gap": ("cbow", _edited(_vectors(), lambda d: d.__setitem__(
        "id_to_word", {**{i: f"w{i}" for i in range(3)}, 7: "w3"})),
                "'id_to_word' has no word for id 3"),
    "inconsistent": ("cbow", _edited(_vectors(), lambda d: d["word_to_id"].update(w1=2, w2=1)),
                     "'id_to_word' maps 1 to 'w1', but 'word_to_id' maps 'w1' to 2"),
    "nan_vectors": ("cbow", _edited(_vectors(), lambda d: d["word_vecs"].__setitem__((1, 1), np.inf)),
                    "'word_vecs' has NaN or infinite values"),
    "vector_rank": ("skipgram", _edited(_vectors(), lambda d: d.__setitem__(
        "word_vecs", np.zeros(4, np.float16))), r"'word_vecs' has shape \(4,\), expected"),
    "extra_key": ("cbow", _edited(_vectors(), lambda d: d.__setitem__("counts", [1, 2])),
                  r"keys \['counts', 'id_to_word', 'word_to_id', 'word_vecs'\]"),
    "set_value": ("cbow", _edited(_vectors(), lambda d: d.__setitem__("word_to_id", {"a"})),
                  "refusing a set"),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_pickles_are_one_line_errors(tmp_path, capsys, name):
    kind, content, message = CRAFTED[name]
    pkl = _write(tmp_path / f"{name}.pkl", content)
    out = tmp_path / "out"
    code, _, err = run(capsys, "import-book-weights", kind, pkl, out, "--run-folder",
                       *(["--data", _addition_13(tmp_path)] if kind in SEQ2SEQ_MODELS else []))
    assert code == 2, err
    assert err.count("\n") == 1 and str(pkl) in err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def _addition_13(tmp_path):
    """A data file of 13 characters (the crafted seq2seq models' vocabulary)."""
    path = tmp_path / "addition13.txt"
    lines = make_addition(200, np.random.default_rng(0))
    assert len(book_data_vocabulary(lines)) == 13
    write_sequence(path, lines)
    return path


def test_a_data_file_of_another_vocabulary_size(tmp_path, capsys):
    pkl = _write(tmp_path / "a.pkl", _seq2seq_arrays("attention", V=20))
    code, _, err = run(capsys, "import-book-weights", "attention", pkl, tmp_path / "o.safetensors",
                       "--data", _addition_13(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert f"weights file '{pkl}': the vocabulary has 13 words, the AttentionSeq2seq has 20" in err


@pytest.mark.parametrize("argv, message", [
    (["rnnlm", "--data", "x.txt"], "--data applies to seq2seq, peeky and attention; rnnlm takes "
                                   "the PTB vocabulary"),
    (["cbow", "--ptb-vocab"], "--ptb-vocab applies to rnnlm and better-rnnlm; cbow takes the "
                              "vocabulary in its file"),
    (["attention", "--force"], "--force is an option of a run folder: add --run-folder"),
    (["peeky", "--no-reverse"], "--reverse/--no-reverse is an option of a run folder"),
    (["attention", "--run-folder"], "a attention run folder needs the data file"),
    (["rnnlm", "--run-folder", "--reverse"], "argument 'reverse' does not apply to rnnlm"),
    (["seq2seq", "--data", "missing.txt"], "data file 'missing.txt' does not exist"),
])
def test_option_errors(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("1+1_2\n")
    pkl = _write(tmp_path / "w.pkl", [np.zeros(2, np.float16)])
    code, _, err = run(capsys, "import-book-weights", argv[0], pkl, tmp_path / "out", *argv[1:])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def _peak_while_refused(path):
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="refusing more dict, list and memo entries"):
            load_book_pickle(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_crafted_file_is_refused_within_its_size(tmp_path):
    """An entry of a dict, a list or the memo, or a bare push on the stack, costs
    tens of bytes for one to five bytes of the file: more than the file's size
    allows are refused, and the memory stays within 2.5 times the file (plus the
    free entries' constant)."""
    words = _vectors()
    words["id_to_word"] = {i: "w" for i in range(300_000)}  # the value memoized once
    big = _write(tmp_path / "big.pkl", words)
    book_sized = dict(_vectors(), word_vecs=np.zeros((10000, 100), np.float16))
    book_sized["word_to_id"] = {f"word{i}": i for i in range(200_000)}
    inflated = _write(tmp_path / "inflated.pkl", book_sized)
    memo = tmp_path / "memo.pkl"
    memo.write_bytes(b"\x80\x04N" + pickle.MEMOIZE * 1_000_000 + b"." )
    pushes = tmp_path / "pushes.pkl"  # a mark, then a million ints on the stack
    pushes.write_bytes(b"\x80\x04" + pickle.MARK + (pickle.BININT + b"\x00\x01\x00\x00") * 1_000_000
                       + pickle.STOP)
    for path in (big, inflated, memo, pushes):
        size = path.stat().st_size
        assert _peak_while_refused(path) < 2.5 * size + (1 << 20), path.name
    # a file the size of the book's cbow_params.pkl (10000 words, 100 wide) loads
    words = [f"word{i}" for i in range(10000)]
    book = _write(tmp_path / "cbow_params.pkl", {
        "word_vecs": np.zeros((10000, 100), np.float16),
        "word_to_id": {w: i for i, w in enumerate(words)}, "id_to_word": dict(enumerate(words))})
    assert len(load_book_pickle(book)["id_to_word"]) == 10000


@pytest.mark.parametrize("opcode", [pickle.BINBYTES8, pickle.BINUNICODE8])
def test_a_declared_length_beyond_the_file_allocates_nothing(tmp_path, opcode):
    """Bytes and strings declare their length: 2**40 is read as what the file
    holds, not allocated first."""
    path = tmp_path / "long.pkl"
    path.write_bytes(b"\x80\x04" + opcode + struct.pack("<Q", 1 << 40) + b"abc")
    tracemalloc.start()
    try:
        with pytest.raises(tl.CheckpointError, match="is not a readable pickle"):
            load_book_pickle(path)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()

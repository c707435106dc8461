"""The book's names as thin equivalents: save_params/load_params, the language
models' generate(start_id, skip_ids, sample_size), seq2seq generate with the
book's arguments, eval_perplexity, eval_seq2seq, Trainer.plot(ylim, path), and
timelayers.book.load_pickle / read_book_model."""

import pickle

import numpy as np
import pytest

import timelayers as tl
from timelayers.errors import CheckpointError
from timelayers.metrics import eval_perplexity, eval_seq2seq, perplexity
from timelayers.models import AttentionSeq2seq, BetterRnnlm, PeekySeq2seq, Rnnlm, TransformerLM
from timelayers.vocab import Vocabulary


def test_save_params_and_load_params(tmp_path):
    a, b = Rnnlm(30, 5, 6, rng=0), Rnnlm(30, 5, 6, rng=1)
    path = tmp_path / "Rnnlm.safetensors"
    a.save_params(path)
    ids = [id(p) for p in b.params]
    b.load_params(path)
    assert [id(p) for p in b.params] == ids  # in place
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params))
    assert type(tl.models.Model.load(path)) is Rnnlm  # the same file as save's
    with pytest.raises(CheckpointError, match=r"config differs from this one's in \['hidden_size'"):
        Rnnlm(30, 5, 7).load_params(path)
    with pytest.raises(CheckpointError, match="holds a Rnnlm, this model is a BetterRnnlm"):
        BetterRnnlm(30, 6, 6).load_params(path)


@pytest.mark.parametrize("make", [lambda: Rnnlm(20, 4, 5, rng=0),
                                  lambda: BetterRnnlm(20, 5, 5, rng=0),
                                  lambda: TransformerLM(20, d_model=8, num_heads=2, num_layers=1,
                                                        ff_size=16, max_len=16, rng=0)])
def test_language_models_generate_the_books_list(make):
    model = make()
    ids = model.generate(3, skip_ids=[5, 6], sample_size=12, rng=0)
    assert isinstance(ids, list) and len(ids) == 12 and ids[0] == 3
    assert all(isinstance(i, int) and 0 <= i < 20 and i not in (5, 6) for i in ids)
    model.reset_state()
    assert model.generate(3, [5, 6], 12, rng=0) == ids  # the book's positional order
    model.reset_state()
    want = [3] + tl.decoding.generate_ids(model, 3, 11, skip_ids=[5, 6], rng=0)
    assert ids == want  # a thin layer over generate_ids
    assert model.generate(3, sample_size=1) == [3]


def test_seq2seq_generate_takes_and_returns_the_books(rng):
    model = PeekySeq2seq(13, 4, 6, rng=0)
    xs = rng.integers(0, 13, (4, 7))
    batch = model.generate(xs, 2, 5)
    assert batch.shape == (4, 5)
    one = model.generate(xs[[1]], 2, 5)  # the book passes x[[i]], shape (1, Tq)
    assert isinstance(one, list) and all(isinstance(i, int) for i in one)
    assert one == batch[1].tolist()
    assert tl.sequence_accuracy(model, xs[:1], np.c_[[2], batch[:1]]) == 1.0


def test_eval_seq2seq(rng, capsys):
    chars = list("0123456789+_ ")
    vocab = Vocabulary(chars)
    model = AttentionSeq2seq(len(chars), 4, 6, rng=0)
    question = rng.integers(0, 13, (1, 5))
    start = vocab.word_to_id["_"]
    guess = model.generate(question, start, 4)
    correct = np.array([[start] + guess])
    assert eval_seq2seq(model, question, correct, vocab.id_to_word) == 1
    assert capsys.readouterr().out == ""
    wrong = correct.copy()
    wrong[0, 1] = (wrong[0, 1] + 1) % 13
    assert eval_seq2seq(model, question, wrong, vocab, verbos=True, is_reverse=True) == 0
    out = capsys.readouterr().out.splitlines()
    q = "".join(chars[i] for i in question[0])
    assert out == ["Q " + q[::-1], "T " + "".join(chars[i] for i in wrong[0, 1:]),
                   "X " + "".join(chars[i] for i in guess), "---"]
    with pytest.raises(tl.ShapeError, match=r"expected question \(1, Tq\)"):
        eval_seq2seq(model, np.zeros((2, 5), int), correct, vocab)


def test_eval_perplexity(rng, capsys, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("timelayers"), "level", logging.NOTSET)
    model = Rnnlm(15, 4, 5, rng=0)
    corpus = rng.integers(0, 15, 400)
    assert eval_perplexity(model, corpus) == perplexity(model, corpus)
    assert "evaluating perplexity" in capsys.readouterr().err
    eval_perplexity(model, corpus, verbose=False)
    assert capsys.readouterr() == ("", "")


def test_trainer_plot_shows_or_writes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = Rnnlm(15, 4, 5, rng=0)
    trainer = tl.RnnlmTrainer(model, tl.SGD(lr=1.0), progress=False)
    corpus = np.random.default_rng(0).integers(0, 15, 300)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=2, time_size=5, eval_interval=5)
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    fig = trainer.plot(ylim=(0, 5))
    assert shown == [True] and fig.axes[0].get_ylim() == (0, 5)
    plt.close(fig)
    path = trainer.plot(path=tmp_path / "curve.png")
    assert path.read_bytes().startswith(b"\x89PNG") and shown == [True]
    assert trainer.plot(tmp_path / "old.png").exists()  # plot(path), as before


def test_book_pickles_from_python(tmp_path):
    arrays = [np.random.default_rng(0).standard_normal(s).astype(np.float32)
              for s in [(20, 4), (4, 20), (5, 20), (20,), (5, 20), (20,)]]
    path = tmp_path / "Rnnlm.pkl"
    path.write_bytes(pickle.dumps(arrays))
    got = tl.book.load_pickle(path)
    assert all(np.array_equal(a, b) for a, b in zip(got, arrays))
    words = [f"w{i}" for i in range(8)]
    vectors = {"word_vecs": np.eye(8, dtype=np.float16),
               "word_to_id": {w: i for i, w in enumerate(words)},
               "id_to_word": dict(enumerate(words))}
    cbow = tmp_path / "cbow_params.pkl"
    cbow.write_bytes(pickle.dumps(vectors))
    assert tl.book.load_pickle(cbow)["word_to_id"] == vectors["word_to_id"]
    model = tl.book.read_book_model("cbow", cbow)
    assert model.vocab.words == words

"""ONNX export checked by ONNX Runtime: an implementation of LSTM, GRU, attention and
layer norm that none of us wrote gives our logits (to 1e-5 relative, float32)."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install '.[onnx]')")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime is not installed (pip install '.[onnx]')")

from timelayers.errors import OptionError  # noqa: E402
from timelayers.export import to_onnx  # noqa: E402
from timelayers.export.onnx_graphs import OPSET  # noqa: E402
from timelayers.models import (CBOW, AttentionSeq2seq, BetterRnnlm, PeekySeq2seq, Rnnlm,  # noqa: E402
                               Seq2seq, SimpleRnnlm, SkipGram, TransformerLM, TransformerSeq2seq)
from timelayers.models.mlp import TwoLayerNet  # noqa: E402
from timelayers.vocab import Vocabulary  # noqa: E402

V = 40


def close(theirs, ours):
    """1e-5 relative, measured against the largest magnitude (logits cross zero)."""
    ours = np.asarray(ours)
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5 * float(np.abs(ours).max()))


def shaken(model, seed=1, scale=0.3):
    """Weights moved away from the initialisation (biases 0 and tiny embeddings hide
    swapped gates and biases), in evaluation mode."""
    rng = np.random.default_rng(seed)
    for p in model.params:
        p[...] += rng.normal(0, scale, p.shape).astype(p.dtype)
    return model.eval()


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ids(shape, seed=2, high=V):
    return np.random.default_rng(seed).integers(0, high, shape)


# -- language models ------------------------------------------------------------------------
LMS = {
    "lstm": lambda: Rnnlm(V, 8, 6, "lstm", rng=0),
    "gru": lambda: Rnnlm(V, 8, 6, "gru", rng=0),
    "gru-reset-after": lambda: Rnnlm(V, 8, 6, "gru-reset-after", rng=0),
    "rnn": lambda: SimpleRnnlm(V, 8, 6, rng=0),
    "better-lstm": lambda: BetterRnnlm(V, 10, 10, 0.5, rng=0),
    "better-gru-reset-after": lambda: BetterRnnlm(V, 10, 10, 0.5, 3, "gru-reset-after", rng=0),
}


def zero_state(sess, N):
    return {i.name: np.zeros((N, i.shape[1]), np.float32) for i in sess.get_inputs()[1:]}


def next_state(sess, outputs):
    names = [o.name for o in sess.get_outputs()]
    return {n.removesuffix(".next"): v for n, v in zip(names[1:], outputs[1:])}


@pytest.mark.parametrize("name", list(LMS))
def test_language_model_logits_equal_ours_and_two_windows_are_one(tmp_path, name):
    model = shaken(LMS[name]())
    path = tmp_path / "lm.onnx"
    assert to_onnx(model, path) == [path]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET >= 17
    sess = session(path)
    xs = ids((3, 12))
    ours = model.predict(xs)                                 # from zeros, state carried after
    first = sess.run(None, {"ids": xs[:, :5], **zero_state(sess, 3)})
    second = sess.run(None, {"ids": xs[:, 5:], **next_state(sess, first)})
    close(np.concatenate([first[0], second[0]], axis=1), ours)
    whole = sess.run(None, {"ids": xs, **zero_state(sess, 3)})
    close(whole[0], ours)
    for (key, value), ort_value in zip(model.get_state().items(), whole[1:]):
        close(ort_value, value)
    # carried on: our next window from our state equals theirs from the exported state
    more = ids((3, 4), seed=5)
    close(sess.run(None, {"ids": more, **next_state(sess, whole)})[0], model.predict(more))


def test_state_inputs_are_named_as_get_state_names_them(tmp_path):
    model = shaken(BetterRnnlm(V, 10, 10, rng=0))
    to_onnx(model, tmp_path / "m.onnx")
    sess = session(tmp_path / "m.onnx")
    model.predict(ids((2, 3)))
    assert [i.name for i in sess.get_inputs()] == ["ids", *model.get_state()]
    assert [o.name for o in sess.get_outputs()] == ["logits", *(k + ".next"
                                                               for k in model.get_state())]


def test_tied_weights_are_stored_once(tmp_path):
    model = BetterRnnlm(V, 10, 10, rng=0)
    to_onnx(model, tmp_path / "m.onnx")
    shapes = [tuple(t.dims) for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer]
    assert shapes.count((V, 10)) == 1 and (10, V) not in shapes


def test_metadata_holds_vocabulary_config_and_recipe(tmp_path):
    model = Rnnlm(V, 8, 6, rng=0)
    model.vocab = Vocabulary(f"w{i}" for i in range(V))
    to_onnx(model, tmp_path / "m.onnx", recipe={"recipe": "rnnlm", "options": {"lr": 20.0}})
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["timelayers.model"]) == "Rnnlm"
    assert Vocabulary.from_dict(json.loads(meta["timelayers.vocab"])) == model.vocab
    assert json.loads(meta["timelayers.config"])["hidden_size"] == 6
    assert json.loads(meta["timelayers.recipe"]) == {"recipe": "rnnlm", "options": {"lr": 20.0}}


@pytest.mark.parametrize("positional,activation", [("sinusoidal", "gelu_tanh"),
                                                   ("learned", "gelu"), ("sinusoidal", "relu")])
def test_transformer_lm_logits_equal_ours(tmp_path, positional, activation):
    model = shaken(TransformerLM(V, 16, 4, 2, 32, max_len=12, dropout=0.1,
                                 positional=positional, activation=activation, rng=0), scale=0.1)
    to_onnx(model, tmp_path / "t.onnx")
    sess = session(tmp_path / "t.onnx")
    for T in (12, 5, 1):
        xs = ids((3, T))
        model.reset_state()
        close(sess.run(None, {"ids": xs})[0], model.predict(xs))


@pytest.mark.parametrize("cls", [CBOW, SkipGram])
def test_word2vec_exports_the_word_vectors(tmp_path, cls):
    model = cls(V, 8, 2, counts=np.arange(1, V + 1), rng=0)
    to_onnx(model, tmp_path / "w.onnx")
    xs = ids((7,))
    np.testing.assert_array_equal(session(tmp_path / "w.onnx").run(None, {"ids": xs})[0],
                                  model.word_vecs[xs])


# -- seq2seq: encoder and decoder-step graphs ---------------------------------------------
def ort_greedy(encoder, decoder, questions, start_id, length):
    """The greedy loop a user writes with ONNX Runtime alone."""
    enc = dict(zip([o.name for o in encoder.get_outputs()],
                   encoder.run(None, {"questions": questions})))
    feeds = {i.name: enc[i.name] for i in decoder.get_inputs() if i.name != "ids"}
    names = [o.name for o in decoder.get_outputs()]
    step_ids = np.full(questions.shape[0], start_id, dtype=np.int64)
    out, logits = [], []
    for _ in range(length):
        res = dict(zip(names, decoder.run(None, {"ids": step_ids, **feeds})))
        feeds.update({k.removesuffix(".next"): v for k, v in res.items() if k.endswith(".next")})
        logits.append(res["logits"])
        step_ids = res["logits"].argmax(axis=1)
        out.append(step_ids)
    return np.stack(out, axis=1), np.stack(logits, axis=1)


S2S = {
    "seq2seq": lambda: Seq2seq(V, 8, 12, rng=0),
    "peeky": lambda: PeekySeq2seq(V, 8, 12, rng=0),
    "attention": lambda: AttentionSeq2seq(V, 8, 12, rng=0),
    "attention-general": lambda: AttentionSeq2seq(V, 8, 12, score="general", rng=0),
}


@pytest.mark.parametrize("name", list(S2S))
def test_seq2seq_decoder_steps_equal_ours(tmp_path, name):
    model = shaken(S2S[name]())
    paths = to_onnx(model, tmp_path / "s2s")
    assert [p.name for p in paths] == ["encoder.onnx", "decoder.onnx"]
    encoder, decoder = session(paths[0]), session(paths[1])
    questions = ids((6, 9))
    # our decoder, step by step, with its scores
    model.begin_decoding(questions)
    step_ids = np.full(6, 3)
    ours_ids, ours_logits = [], []
    for _ in range(5):
        scores = model.decode_step(step_ids)
        ours_logits.append(scores)
        step_ids = scores.argmax(axis=1)
        ours_ids.append(step_ids)
    theirs_ids, theirs_logits = ort_greedy(encoder, decoder, questions, 3, 5)
    close(theirs_logits, np.stack(ours_logits, axis=1))
    np.testing.assert_array_equal(theirs_ids, np.stack(ours_ids, axis=1))
    np.testing.assert_array_equal(theirs_ids, model.generate(questions, 3, 5))


def test_transformer_seq2seq_decoder_equals_ours(tmp_path):
    model = shaken(TransformerSeq2seq(V, 16, 4, 2, 2, 32, max_len=16, rng=0), scale=0.1)
    encoder, decoder = (session(p) for p in to_onnx(model, tmp_path / "t"))
    questions = ids((4, 9))
    (memory,) = encoder.run(None, {"questions": questions})
    close(memory, model.encoder.forward(questions))
    prefix = np.full((4, 1), 3, dtype=np.int64)
    for _ in range(5):
        (logits,) = decoder.run(None, {"prefix": prefix, "memory": memory})
        close(logits, model.decoder.forward(prefix, model.encoder.forward(questions))[:, -1])
        prefix = np.concatenate([prefix, logits.argmax(axis=1)[:, None]], axis=1)
    np.testing.assert_array_equal(prefix[:, 1:], model.generate(questions, 3, 5))


# -- refusals ------------------------------------------------------------------------------
def test_a_model_that_cannot_be_exported_is_a_one_line_error(tmp_path):
    with pytest.raises(OptionError, match=r"got a TwoLayerNet \(it cannot be exported\)"):
        to_onnx(TwoLayerNet(4, 5, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_existing_output_is_refused_without_force(tmp_path):
    model = Rnnlm(V, 8, 6, rng=0)
    (tmp_path / "m.onnx").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="exists"):
        to_onnx(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == b"keep"
    to_onnx(model, tmp_path / "m.onnx", force=True)
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)

"""TransformerLM and TransformerSeq2seq: whole-model gradient checks (float64),
weight tying, save/load, the evaluation context of the language model, the
decoding protocol (step by step equals teacher forcing; greedy and beam search),
training runs that learn, and moving between array modules."""

import contextlib
import itertools

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_close, assert_gradcheck_attention
from support.devices import needs_cupy
from timelayers import models
from timelayers.decoding import beam_search, generate_ids, greedy_decode, sequence_log_prob
from timelayers.metrics import perplexity, sequence_accuracy
from timelayers.optim import AdamW
from timelayers.training import RnnlmTrainer, Trainer

V = 9


def small_lm(positional="sinusoidal", dropout=0.0, dtype="float64", **kwargs):
    args = dict(vocab_size=V, d_model=8, num_heads=2, num_layers=2, ff_size=12, max_len=12,
                dropout=dropout, positional=positional, dtype=dtype, rng=0)
    return models.TransformerLM(**{**args, **kwargs})


def small_seq2seq(positional="sinusoidal", dropout=0.0, dtype="float64", **kwargs):
    args = dict(vocab_size=V, d_model=8, num_heads=2, encoder_layers=1, decoder_layers=2,
                ff_size=12, max_len=10, dropout=dropout, positional=positional, dtype=dtype,
                rng=0)
    return models.TransformerSeq2seq(**{**args, **kwargs})


# -- gradients and structure ---------------------------------------------------------------
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_lm_gradcheck(rng, positional):
    model = small_lm(positional)
    xs, ts = rng.integers(0, V, (2, 5)), rng.integers(0, V, (2, 5))
    errors = assert_gradcheck_attention(model, xs, ts)
    assert "input.embed.W" in errors and "affine.W" not in errors  # tied


def test_seq2seq_gradcheck(rng):
    model = small_seq2seq("learned")
    xs, ts = rng.integers(0, V, (2, 6)), rng.integers(0, V, (2, 4))
    errors = assert_gradcheck_attention(model, xs, ts)
    assert {"encoder.input.embed.W", "decoder.blocks.1.cross_attn.Wv"} <= set(errors)


def test_gradcheck_with_dropout(rng):
    model = small_lm(dropout=0.2)
    xs, ts = rng.integers(0, V, (2, 5)), rng.integers(0, V, (2, 5))
    state = model.rng.bit_generator.state

    def setup():  # the same masks at every forward
        model.rng.bit_generator.state = state

    assert_gradcheck_attention(model, xs, ts, setup=setup)


def test_ties_share_one_array():
    lm = small_lm()
    assert np.shares_memory(lm.affine.params[0], lm.input.embed.params[0])
    s2s = small_seq2seq()
    W = s2s.encoder.input.embed.params[0]
    assert s2s.decoder.input.embed.params[0] is W
    assert np.shares_memory(s2s.decoder.affine.params[0], W)
    names = s2s.param_names
    assert "decoder.input.embed.W" not in names and "decoder.affine.W" not in names
    assert len(set(map(id, s2s.params))) == len(s2s.params)


def test_float32_by_default(rng):
    model = models.TransformerLM(vocab_size=V, d_model=8, num_heads=2, ff_size=16, max_len=8,
                                 rng=0)
    assert all(p.dtype == np.float32 for p in model.params)
    loss = model.forward(rng.integers(0, V, (2, 4)), rng.integers(0, V, (2, 4)))
    model.backward()
    assert np.isfinite(loss) and all(g.dtype == np.float32 for g in model.grads)
    assert model.predict(rng.integers(0, V, (2, 4))).dtype == np.float32


def test_argument_errors():
    with pytest.raises(ValueError, match="positional.*'rotary'"):
        small_lm(positional="rotary")
    with pytest.raises(ValueError, match="num_heads"):
        small_lm(num_heads=3)
    with pytest.raises(ValueError, match="'num_layers'.*0"):
        small_lm(num_layers=0)
    with pytest.raises(tl.ShapeError, match="max_len=12.*\\(1, 13\\)"):
        small_lm().predict(np.zeros((1, 13), dtype=np.int64))


# -- save / load -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [small_lm, small_seq2seq])
def test_save_load_round_trip(tmp_path, rng, make):
    model = make(positional="learned")
    for p in model.params:  # move away from the initial values
        p += rng.standard_normal(p.shape) * 0.1
    model.save(tmp_path / "m.safetensors")
    loaded = models.Model.load(tmp_path / "m.safetensors")
    assert type(loaded) is type(model) and loaded.config == model.config
    for a, b in zip(loaded.params, model.params):
        np.testing.assert_array_equal(a, b)
    lm = isinstance(model, models.TransformerLM)
    xs, ts = rng.integers(0, V, (3, 5)), rng.integers(0, V, (3, 5 if lm else 4))
    assert loaded.forward(xs, ts) == model.forward(xs, ts)
    if lm:
        assert np.shares_memory(loaded.affine.params[0], loaded.input.embed.params[0])
    else:
        assert np.shares_memory(loaded.decoder.affine.params[0],
                                loaded.encoder.input.embed.params[0])


# -- the language model's context -------------------------------------------------------------
def test_lm_training_mode_is_stateless(rng):
    model = small_lm()
    xs = rng.integers(0, V, (2, 5))
    first = model.predict(xs)
    model.predict(rng.integers(0, V, (2, 5)))
    assert_close(model.predict(xs), first, rtol=0, atol=0)
    assert model.context is None


def test_lm_eval_context_equals_one_long_window(rng):
    model = small_lm().eval()
    xs = rng.integers(0, V, (2, 10))
    whole = model.predict(xs)
    model.reset_state()
    pieces = [model.predict(xs[:, :4]), model.predict(xs[:, 4:5]), model.predict(xs[:, 5:])]
    assert_close(np.concatenate(pieces, axis=1), whole, rtol=1e-12, atol=1e-12)
    model.reset_state()
    one_by_one = [model.predict(xs[:, t:t + 1]) for t in range(10)]
    assert_close(np.concatenate(one_by_one, axis=1), whole, rtol=1e-12, atol=1e-12)


def test_lm_eval_context_keeps_the_last_max_len_ids(rng):
    model = small_lm().eval()  # max_len 12
    xs = rng.integers(0, V, (1, 20))
    model.predict(xs[:, :15 - 4])
    last = model.predict(xs[:, 11:15])
    assert model.context.shape == (1, 12)
    model.reset_state()
    want = model.predict(xs[:, 3:15])[:, -4:]
    assert_close(last, want, rtol=1e-12, atol=1e-12)


def test_lm_causality(rng):
    model = small_lm()
    xs = rng.integers(0, V, (2, 8))
    changed = xs.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % V
    assert_close(model.predict(changed)[:, :5], model.predict(xs)[:, :5], rtol=1e-13, atol=0)


def test_lm_generate_ids_and_perplexity(rng):
    model = small_lm(dropout=0.1)
    ids = generate_ids(model, 0, 15, rng=0)
    assert len(ids) == 15 and all(0 <= i < V for i in ids)
    assert model.training  # generate_ids restores the mode
    corpus = rng.integers(0, V, 200)
    ppl = perplexity(model, corpus, batch_size=2, time_size=5)
    assert 1 < ppl < 10 * V and model.context is None


# -- the decoding protocol ---------------------------------------------------------------------
def test_decode_steps_equal_teacher_forcing(rng):
    model = small_seq2seq().eval()
    xs, ts = rng.integers(0, V, (3, 6)), rng.integers(0, V, (3, 5))
    forced = model.decoder.forward(ts[:, :-1], model.encoder.forward(xs))  # (3, 4, V)
    model.begin_decoding(xs)
    stepped = np.stack([model.decode_step(ts[:, t]) for t in range(4)], axis=1)
    assert_close(stepped, forced, rtol=1e-12, atol=1e-12)


def test_reorder_decoding_keeps_rows(rng):
    model = small_seq2seq().eval()
    xs = rng.integers(0, V, (3, 6))
    model.begin_decoding(xs)
    model.decode_step(np.array([1, 2, 3]))
    model.reorder_decoding(np.array([2, 2, 0]))
    reordered = model.decode_step(np.array([4, 5, 6]))
    model.begin_decoding(xs[[2, 2, 0]])
    model.decode_step(np.array([3, 3, 1]))
    assert_close(reordered, model.decode_step(np.array([4, 5, 6])), rtol=1e-12, atol=1e-12)


def test_greedy_and_beam_search(rng):
    model = small_seq2seq(dtype="float32")
    for p in model.params:
        p += rng.standard_normal(p.shape).astype(np.float32)
    xs = rng.integers(0, V, (4, 6))
    greedy = greedy_decode(model, xs, 0, 3)
    np.testing.assert_array_equal(model.generate(xs, 0, 3), greedy)
    np.testing.assert_array_equal(beam_search(model, xs, 0, 3, beam_size=1), greedy)
    ids, scores = beam_search(model, xs, 0, 3, beam_size=V * V, return_scores=True)
    np.testing.assert_allclose(scores, sequence_log_prob(model, xs, 0, ids), rtol=1e-5)
    every = np.array(list(itertools.product(range(V), repeat=3)))  # V**3 answers
    for n in range(2):  # a beam of V*V is exhaustive for the first two words
        best = sequence_log_prob(model, np.repeat(xs[n:n + 1], len(every), 0), 0, every).max()
        assert scores[n] >= best - 1e-4
    assert model.training  # decoding restores the mode


# -- learning ---------------------------------------------------------------------------------
def test_lm_learns_a_periodic_text():
    corpus = np.tile(np.array([1, 4, 2, 7, 3, 8, 2, 5]), 100)  # "2" is followed by 7 or 5
    model = models.TransformerLM(vocab_size=V, d_model=32, num_heads=4, num_layers=2, ff_size=64,
                                 max_len=12, dropout=0.0, rng=0)
    trainer = RnnlmTrainer(model, AdamW(lr=3e-3, weight_decay=0.0), max_grad=1.0,
                           progress=False)
    history = trainer.fit(corpus[:-1], corpus[1:], max_epoch=8, batch_size=8, time_size=12)
    assert history["loss"][0] > 2.0 and history["loss"][-1] < 0.05, history["loss"]
    # with the evaluation context even the first word of a batch is predictable
    assert perplexity(model, corpus, batch_size=4, time_size=6) < 1.05


def test_seq2seq_learns_to_reverse():
    rng = np.random.default_rng(0)
    xs = rng.integers(2, V, (640, 5))
    ts = np.concatenate([np.ones((640, 1), dtype=np.int64), xs[:, ::-1]], axis=1)  # 1 = start
    model = models.TransformerSeq2seq(vocab_size=V, d_model=32, num_heads=4, encoder_layers=1,
                                      decoder_layers=1, ff_size=64, max_len=8, dropout=0.0, rng=0)
    trainer = Trainer(model, AdamW(lr=3e-3, weight_decay=0.0), max_grad=1.0, rng=0,
                      progress=False)
    history = trainer.fit(xs[:512], ts[:512], max_epoch=12, batch_size=32)
    assert history["loss"][-1] < 0.2 * history["loss"][0], history["loss"]
    assert sequence_accuracy(model, xs[512:], ts[512:]) > 0.9


# -- array modules --------------------------------------------------------------------------
def test_moved_model_is_the_same_model(rng):
    """Model.replace_arrays with a copying conversion (what to_gpu does with CuPy):
    ties are re-made, and a training step gives the same loss."""
    model, twin = small_seq2seq(), small_seq2seq()
    model.replace_arrays(lambda a: np.array(a, order="K", copy=True))
    W = model.encoder.input.embed.params[0]
    assert model.decoder.input.embed.params[0] is W
    assert np.shares_memory(model.decoder.affine.params[0], W)
    xs, ts = rng.integers(0, V, (3, 6)), rng.integers(0, V, (3, 4))
    for m in (model, twin):
        m.forward(xs, ts)
        m.backward()
    for a, b in zip(model.grads, twin.grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [small_lm, small_seq2seq])
def test_training_step_on_each_array_module(xp, rng, make):
    dropout = 0.1 if xp is np else 0.0   # a GPU draws its own masks (README, "On a GPU")
    model, reference = make(dropout=dropout), make(dropout=dropout)
    if xp is not np:
        model.to_gpu()
    lm = isinstance(reference, models.TransformerLM)
    xs, ts = rng.integers(0, V, (3, 6)), rng.integers(0, V, (3, 6 if lm else 5))
    losses = []
    for m, x, t in ((model, xp.asarray(xs), xp.asarray(ts)), (reference, xs, ts)):
        losses.append(m.forward(x, t))
        m.backward()
    assert float(losses[0]) == pytest.approx(losses[1], rel=1e-10)
    for a, b in zip(model.grads, reference.grads):
        assert_close(a, b, rtol=1e-9, atol=1e-12)
    if not lm:
        np.testing.assert_array_equal(tl.to_cpu(greedy_decode(model, xp.asarray(xs), 0, 3)),
                                      greedy_decode(reference, xs, 0, 3))


def test_eval_mode_turns_every_dropout_off(rng):
    model = small_lm(dropout=0.5)
    xs = rng.integers(0, V, (2, 6))
    assert not np.allclose(model.predict(xs), model.predict(xs))  # training: new masks
    model.eval()
    assert all(not d.train_flg for block in model.blocks for d in block.dropouts)
    first = model.predict(xs)
    model.reset_state()
    assert_close(model.predict(xs), first, rtol=0, atol=0)


def test_lm_training_resumes_to_the_bit(tmp_path):
    corpus = np.random.default_rng(3).integers(0, V, 400)

    def trainer():
        return RnnlmTrainer(small_lm(dropout=0.2, dtype="float32"), AdamW(lr=1e-3),
                            max_grad=1.0, progress=False)

    straight = trainer()
    straight.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=4, time_size=8)
    first = trainer()
    first.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=4, time_size=8,
              checkpoint=tmp_path / "c.safetensors")
    resumed = RnnlmTrainer.resume(tmp_path / "c.safetensors", progress=False)
    resumed.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=4, time_size=8)
    assert resumed.history["loss"] == straight.history["loss"]
    for a, b in zip(resumed.model.params, straight.model.params):
        np.testing.assert_array_equal(a, b)


def test_attention_map_matches_decoding(rng):
    model = small_seq2seq(dtype="float32")
    xs = rng.integers(0, V, (2, 6))
    ids, weights = model.attention_map(xs, 0, 3, head=1)
    np.testing.assert_array_equal(ids, greedy_decode(model, xs, 0, 3))
    assert weights.shape == (2, 3, 6)
    model.eval()
    model.begin_decoding(xs)
    previous = np.zeros(2, dtype=np.int64)
    for t in range(3):  # the weights of each decoding step
        model.decode_step(previous)
        step_weights = model.decoder.blocks[-1].cross_attn.attention_weights[:, 1, -1]  # (2, 6)
        assert_close(weights[:, t], step_weights, rtol=1e-5, atol=1e-6)
        previous = ids[:, t]
    model.train()
    _, mean = model.attention_map(xs, 0, 3)
    assert_close(mean.sum(axis=-1), np.ones((2, 3)), rtol=1e-5)
    assert model.training


@needs_cupy
@pytest.mark.parametrize("make", [small_lm, small_seq2seq])
def test_gpu_training_step_never_waits_for_the_device(rng, make):
    """Forward (dropout on: masks drawn on the device), backward, clip and AdamW
    make no host read after a first step."""
    import cupy

    from support.devices import no_device_sync
    from timelayers.optim import clip_grads

    model = make(dropout=0.1, dtype="float32").to_gpu()
    optimizer = AdamW(lr=1e-3)
    lm = isinstance(model, models.TransformerLM)
    batches = [(cupy.asarray(rng.integers(0, V, (3, 6))),
                cupy.asarray(rng.integers(0, V, (3, 6 if lm else 5)))) for _ in range(2)]
    for i, (x, t) in enumerate(batches):
        with no_device_sync(cupy) if i else contextlib.nullcontext():
            model.forward(x, t)
            model.backward()
            clip_grads(model.grads, 1.0)
            optimizer.update(model.params, model.grads)

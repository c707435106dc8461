"""Decoding: sampling controls for language models, greedy and beam search for seq2seq,
large batches decoded in row blocks on replicas of the model."""

from contextlib import contextmanager

import numpy as np
import pytest

from timelayers import models
from timelayers.decoding import (MIN_ROWS_PER_THREAD, beam_search, generate_ids, greedy_decode,
                                 sample_next, sequence_log_prob)
from timelayers.threads import get_num_threads, set_num_threads

V = 9


def _random_seq2seq(cls=models.AttentionSeq2seq, seed=0):
    model = cls(V, 4, 8, rng=seed)
    rng = np.random.default_rng(seed)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape) * 0.8
    return model


def test_sample_next_controls():
    rng = np.random.default_rng(0)
    scores = np.array([0.0, 5.0, 4.0, -1.0])
    assert sample_next(scores, rng, temperature=0) == 1
    assert sample_next(scores, rng, temperature=0, skip_ids=[1]) == 2
    draws = {sample_next(scores, rng, top_k=2) for _ in range(200)}
    assert draws == {1, 2}
    assert all(sample_next(scores, rng, skip_ids=[1, 2]) in (0, 3) for _ in range(50))
    hot = [sample_next(scores, rng, temperature=100.0) for _ in range(400)]
    assert len(set(hot)) == 4  # high temperature: close to uniform
    with pytest.raises(ValueError, match="temperature"):
        sample_next(scores, rng, temperature=-1)


def test_generate_ids_reproducible_and_skips():
    model = models.Rnnlm(V, 4, 6, rng=0)
    a = generate_ids(model, 0, 20, rng=3, skip_ids=[4])
    model.reset_state()
    b = generate_ids(model, 0, 20, rng=3, skip_ids=[4])
    assert a == b and len(a) == 20 and 4 not in a
    assert model.training  # mode restored


@pytest.mark.parametrize("cls", [models.Seq2seq, models.PeekySeq2seq, models.AttentionSeq2seq])
def test_beam_size_one_equals_greedy(cls):
    model = _random_seq2seq(cls)
    xs = np.random.default_rng(1).integers(0, V, (6, 5))
    np.testing.assert_array_equal(beam_search(model, xs, 0, 4, beam_size=1),
                                  greedy_decode(model, xs, 0, 4))


@pytest.mark.parametrize("cls", [models.Seq2seq, models.PeekySeq2seq, models.AttentionSeq2seq])
@pytest.mark.parametrize("beam", [2, 3, 5])
def test_wider_beam_never_scores_below_greedy(cls, beam):
    model = _random_seq2seq(cls, seed=beam)
    xs = np.random.default_rng(2).integers(0, V, (8, 5))
    greedy = greedy_decode(model, xs, 0, 5)
    ids, scores = beam_search(model, xs, 0, 5, beam_size=beam, return_scores=True)
    np.testing.assert_allclose(scores, sequence_log_prob(model, xs, 0, ids), rtol=1e-5, atol=1e-6)
    assert np.all(scores >= sequence_log_prob(model, xs, 0, greedy) - 1e-6)


def test_beam_search_finds_the_best_sequence_exhaustively():
    model = _random_seq2seq(models.Seq2seq, seed=7)
    xs = np.random.default_rng(3).integers(0, V, (1, 4))
    import itertools

    all_seqs = np.array(list(itertools.product(range(V), repeat=2)))
    scores = sequence_log_prob(model, np.repeat(xs, len(all_seqs), 0), 0, all_seqs)
    ids = beam_search(model, xs, 0, 2, beam_size=V * V)
    np.testing.assert_array_equal(ids[0], all_seqs[np.argmax(scores)])


def test_beam_search_with_end_id_pads_after_end():
    model = _random_seq2seq(models.Seq2seq, seed=4)
    xs = np.random.default_rng(4).integers(0, V, (5, 4))
    ids = beam_search(model, xs, 0, 6, beam_size=3, end_id=2, length_penalty=1.0)
    for row in ids:
        ends = np.flatnonzero(row == 2)
        if ends.size:
            assert np.all(row[ends[0]:] == 2)


def test_bad_beam_size():
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(_random_seq2seq(), np.zeros((1, 3), int), 0, 2, beam_size=0)


# ----------------------------------------------------------------------------- row blocks
# A large batch is decoded in blocks of rows at once, each on a replica of the model
# (Model.replica): the answers must be those of the whole batch, and no array the model
# holds may be written meanwhile (the replicas share them all).

SEQ2SEQ = {
    "seq2seq": lambda: models.Seq2seq(V, 4, 8, dtype="float64", rng=0),
    "peeky": lambda: models.PeekySeq2seq(V, 4, 8, dtype="float64", rng=0),
    "attention": lambda: models.AttentionSeq2seq(V, 4, 8, dtype="float64", rng=0),
    "attention-general": lambda: models.AttentionSeq2seq(V, 4, 8, score="general",
                                                         dtype="float64", rng=0),
    "transformer": lambda: models.TransformerSeq2seq(V, 8, 2, 1, 1, 16, max_len=12,
                                                     dropout=0.0, dtype="float64", rng=0),
}


def _held_arrays(model):
    """Every array the model, its layers and their caches and buffers hold."""
    found = {}
    model.replace_arrays(lambda a: found.setdefault(id(a), a))
    return list(found.values())


@contextmanager
def _read_only(arrays):
    """Any write into ``arrays`` (or a view made of them) raises meanwhile."""
    writeable = [(a, a.flags.writeable) for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    try:
        yield
    finally:  # bases before their views: a view cannot be writeable over a read-only base
        for a, flag in sorted(writeable, key=lambda pair: pair[0].base is not None):
            a.flags.writeable = flag


@pytest.fixture
def two_threads():
    pytest.importorskip("threadpoolctl")
    before = get_num_threads()
    set_num_threads(2)
    yield
    set_num_threads(before)


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_row_blocks_on_replicas_decode_as_the_whole_batch(name, two_threads, monkeypatch):
    model = SEQ2SEQ[name]()
    rng = np.random.default_rng(1)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape) * 0.8
    N = 2 * MIN_ROWS_PER_THREAD + 3
    xs = rng.integers(0, V, (N, 7))
    ts = rng.integers(0, V, (N, 6))
    model.forward(xs, ts)       # a training step first: its caches and buffers are held too
    model.backward()
    replicas = []
    make_replica = type(model).replica
    monkeypatch.setattr(type(model), "replica",
                        lambda m: replicas.append(1) or make_replica(m))

    def both():
        """(greedy ids, beam ids and scores, log-probabilities): cut, then whole."""
        runs = []
        for threads in (2, 1):
            set_num_threads(threads)
            runs.append((greedy_decode(model, xs, 0, 5),
                         beam_search(model, xs, 0, 4, beam_size=2, return_scores=True),
                         sequence_log_prob(model, xs, 0, ts[:, 1:])))
        return runs

    with _read_only(_held_arrays(model)):
        (greedy, (beam, scores), logp), (greedy1, (beam1, scores1), logp1) = both()
    assert len(replicas) == 2 * 3      # two blocks for each of the three calls, then none
    np.testing.assert_array_equal(greedy, greedy1)
    np.testing.assert_array_equal(beam, beam1)
    np.testing.assert_allclose(scores, scores1, rtol=1e-12)
    np.testing.assert_allclose(logp, logp1, rtol=1e-12)
    assert greedy.shape == (N, 5) and logp.shape == (N,)


def test_small_batches_and_other_arrays_decode_whole(two_threads, monkeypatch):
    model = _random_seq2seq()
    monkeypatch.setattr(type(model), "replica", lambda m: pytest.fail("made a replica"))
    xs = np.zeros((2 * MIN_ROWS_PER_THREAD - 1, 3), dtype=np.int64)
    assert greedy_decode(model, xs, 0, 2).shape == (len(xs), 2)   # one block would be too small

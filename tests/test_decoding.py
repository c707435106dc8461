"""Decoding: sampling controls for language models, greedy and beam search for seq2seq."""

import numpy as np
import pytest

from timelayers import models
from timelayers.decoding import (beam_search, generate_ids, greedy_decode, sample_next,
                                 sequence_log_prob)

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

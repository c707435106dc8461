"""perplexity and sequence_accuracy on tiny models with hand-computable results."""

import math

import numpy as np
import pytest

from timelayers.errors import ShapeError
from timelayers.layers import Layer, TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.metrics import bptt_batches, evaluation_mode, perplexity, sequence_accuracy
from timelayers.models.base import Model


class FlagLayer(Layer):
    pass


class RecordingLM(Model):
    """Loss = mean(ts) / 10; records the batches, the mode and the resets."""

    def __init__(self):
        self.flag = FlagLayer()
        self.seen, self.modes, self.resets = [], [], 0

    def forward(self, xs, ts):
        self.seen.append((xs.copy(), ts.copy()))
        self.modes.append(self.flag.train_flg)
        return float(ts.mean()) / 10

    def reset_state(self):
        self.resets += 1


def test_perplexity_streams_in_bptt_order():
    model = RecordingLM()
    corpus = np.arange(21)  # 20 predictions, 2 streams of jump 10, 3 batches of 3 steps
    ppl = perplexity(model, corpus, batch_size=2, time_size=3)
    want_xs = [[[0, 1, 2], [10, 11, 12]], [[3, 4, 5], [13, 14, 15]], [[6, 7, 8], [16, 17, 18]]]
    assert [xs.tolist() for xs, _ in model.seen] == want_xs
    assert [ts.tolist() for _, ts in model.seen] == [(np.array(x) + 1).tolist() for x in want_xs]
    # batch losses 0.7, 1.0, 1.3 -> mean 1.0
    assert ppl == pytest.approx(math.e, rel=1e-12)
    assert model.modes == [False] * 3
    assert model.flag.train_flg is True  # restored
    assert model.resets == 2  # before and after


def test_perplexity_keeps_eval_mode_and_checks_sizes():
    model = RecordingLM().eval()
    perplexity(model, np.arange(21), batch_size=2, time_size=3)
    assert model.flag.train_flg is False
    with pytest.raises(ValueError, match="too short"):
        perplexity(model, np.arange(6), batch_size=2, time_size=3)
    with pytest.raises(ShapeError, match="corpus"):
        perplexity(model, np.zeros((3, 9), dtype=int))


class BigramLM(Model):
    """logits = log p(next | current): an embedding of log-probabilities, an identity
    affine, and softmax (which gives those probabilities back)."""

    def __init__(self, probs, dropout=0.0, seed=0):
        V = probs.shape[0]
        self.rng = np.random.default_rng(seed)
        self.embed = TimeEmbedding(np.log(probs))
        self.drop = TimeDropout(dropout, self.rng)
        self.affine = TimeAffine(np.eye(V), np.zeros(V))
        self.loss_layer = TimeSoftmaxWithLoss()

    def forward(self, xs, ts):
        return self.loss_layer.forward(self.affine.forward(self.drop.forward(
            self.embed.forward(xs))), ts)


def test_perplexity_of_a_known_bigram_model():
    probs = np.array([[0.75, 0.25], [0.5, 0.5]])
    corpus = np.array([0, 0, 1, 1, 0])
    # pairs 0->0 (.75), 0->1 (.25), 1->1 (.5), 1->0 (.5)
    want = (0.75 * 0.25 * 0.5 * 0.5) ** -0.25
    assert perplexity(BigramLM(probs), corpus, batch_size=1, time_size=4) == \
        pytest.approx(want, rel=1e-12)
    # two streams of two steps: [0, 0] -> [0, 1] and [1, 1] -> [1, 0]: the same pairs
    assert perplexity(BigramLM(probs), corpus, batch_size=2, time_size=2) == \
        pytest.approx(want, rel=1e-12)


def test_uniform_model_has_perplexity_vocab_size():
    V = 7
    model = BigramLM(np.full((V, V), 1.0 / V))
    corpus = np.random.default_rng(0).integers(0, V, 100)
    assert perplexity(model, corpus, batch_size=3, time_size=5) == pytest.approx(V, rel=1e-12)


def test_perplexity_is_deterministic_with_dropout():
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=5)
    model = BigramLM(probs, dropout=0.5)
    corpus = np.random.default_rng(2).integers(0, 5, 80)
    a = perplexity(model, corpus, 2, 4)
    b = perplexity(model, corpus, 2, 4)
    assert a == b == pytest.approx(perplexity(BigramLM(probs), corpus, 2, 4), rel=1e-12)
    assert model.training


def test_bptt_batches_shapes():
    batches = list(bptt_batches(np.arange(50), batch_size=4, time_size=3))
    assert len(batches) == 49 // 12
    assert all(xs.shape == ts.shape == (4, 3) for xs, ts in batches)


# -- sequence accuracy ---------------------------------------------------------------------------
class EchoSeq2seq(Model):
    """generate() answers with the first ``sample_size`` question ids, in order."""

    def __init__(self):
        self.flag = FlagLayer()
        self.calls = []

    def generate(self, xs, start_id, sample_size):
        self.calls.append((xs.shape[0], start_id, sample_size, self.flag.train_flg))
        return xs[:, :sample_size].copy()


def test_sequence_accuracy_exact_match():
    questions = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1], [2, 2, 2]])
    answers = np.array([[0, 1, 2], [0, 4, 5], [0, 7, 0], [0, 1, 1], [0, 2, 3]])
    model = EchoSeq2seq()
    acc = sequence_accuracy(model, questions, answers, batch_size=2)
    assert acc == pytest.approx(3 / 5)
    assert model.calls == [(2, 0, 2, False), (2, 0, 2, False), (1, 0, 2, False)]
    assert type(model.calls[0][1]) is int
    assert model.flag.train_flg is True


def test_sequence_accuracy_checks():
    model = EchoSeq2seq()
    q = np.zeros((3, 4), dtype=int)
    with pytest.raises(ValueError, match="start with different symbols"):
        sequence_accuracy(model, q, np.array([[0, 1], [0, 1], [5, 1]]))
    with pytest.raises(ShapeError, match="returned shape"):
        sequence_accuracy(model, q, np.zeros((3, 6), dtype=int))
    with pytest.raises(ShapeError, match="same N"):
        sequence_accuracy(model, q, np.zeros((2, 3), dtype=int))
    with pytest.raises(ShapeError):
        sequence_accuracy(model, q, np.zeros((3, 1), dtype=int))


def test_evaluation_mode_restores_each_layer():
    model = BigramLM(np.full((2, 2), 0.5), dropout=0.5)
    model.drop.train_flg = False  # mixed modes
    with evaluation_mode(model):
        assert not model.training
    assert model.drop.train_flg is False and model.embed.train_flg is True

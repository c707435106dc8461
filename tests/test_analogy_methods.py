"""analogy(..., method=...): 3CosAdd (the default), 3CosMul (Levy & Goldberg
2014) and the book's util.analogy, each against a reference written from its
formula; the same choice in analogy_ranks / analogy_accuracy and on the command
line (timelayers analogy --method)."""

import numpy as np
import pytest

from timelayers.text import ANALOGY_METHODS, analogy, analogy_accuracy, analogy_ranks
from timelayers.vocab import Vocabulary


def small(seed=0, V=12, D=5):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(V)]
    # rows of different lengths: the book's score (raw rows) and the cosines differ
    W = rng.standard_normal((V, D)) * rng.uniform(0.2, 3.0, (V, 1))
    return Vocabulary(words), W.astype(np.float32)


def ranked(scores, skip, top):
    order = sorted((i for i in range(len(scores)) if i not in skip and not np.isnan(scores[i])),
                   key=lambda i: (-scores[i], i))
    return [(f"w{i}", scores[i]) for i in order[:top]]


def book_reference(W, a, b, c):
    """The book's util.analogy, written from its formula: query = b - a + c,
    normalised by its length, dotted with every raw word vector."""
    W = W.astype(np.float64)
    q = W[b] - W[a] + W[c]
    q = q / np.sqrt(np.sum(q * q))
    return np.array([float(np.dot(W[i], q)) for i in range(len(W))])


def cosine(x, y):
    return float(np.dot(x, y) / (np.sqrt(np.dot(x, x) + 1e-8) * np.sqrt(np.dot(y, y) + 1e-8)))


def cosadd_reference(W, a, b, c):
    W = W.astype(np.float64)
    unit = W / np.linalg.norm(W, axis=1, keepdims=True)
    q = unit[b] - unit[a] + unit[c]
    return np.array([cosine(W[i], q) for i in range(len(W))])


def cosmul_reference(W, a, b, c):
    W = W.astype(np.float64)
    s = lambda i, j: (cosine(W[i], W[j]) + 1) / 2  # noqa: E731
    return np.array([s(i, b) * s(i, c) / (s(i, a) + 0.001) for i in range(len(W))])


REFERENCES = {"book": book_reference, "3cosadd": cosadd_reference, "3cosmul": cosmul_reference}


@pytest.mark.parametrize("method", ANALOGY_METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_analogy_scores_equal_the_formula(method, seed):
    vocab, W = small(seed)
    a, b, c = 0, 3, 7
    got = analogy("w0", "w3", "w7", vocab, W, top=6, method=method)
    want = ranked(REFERENCES[method](W, a, b, c), {a, b, c}, 6)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-12)


def test_the_book_method_differs_from_3cosadd_where_lengths_differ():
    # a long vector wins the book's raw dot product, a short one the cosine
    vocab = Vocabulary(["a", "b", "c", "long", "short"])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [10.0, 3.0], [0.0, 0.2]])
    assert analogy("a", "b", "c", vocab, W, top=1, method="book")[0][0] == "long"
    assert analogy("a", "b", "c", vocab, W, top=1, method="3cosadd")[0][0] == "short"


def test_the_default_is_3cosadd():
    vocab, W = small()
    assert analogy("w1", "w2", "w3", vocab, W) == analogy("w1", "w2", "w3", vocab, W,
                                                           method="3cosadd")


def test_a_zero_book_query_answers_nothing():
    vocab = Vocabulary(["a", "b", "c", "d"])
    W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    assert analogy("a", "b", "c", vocab, W, method="book") == []


@pytest.mark.parametrize("method", ANALOGY_METHODS)
def test_ranks_agree_with_analogy(method):
    vocab, W = small(3, V=20)
    questions = [("w0", "w1", "w2", "w5"), ("w4", "w9", "w3", "w11"), ("w7", "w8", "w6", "w7")]
    ranks = analogy_ranks(questions, vocab, W, method=method)
    for (a, b, c, d), rank in zip(questions, ranks):
        answers = [w for w, _ in analogy(a, b, c, vocab, W, top=20, method=method)]
        if d in answers:
            assert rank == answers.index(d) + 1
        else:  # d is a, b or c: past every possible answer
            assert rank > len(answers)
    first = analogy("w0", "w1", "w2", vocab, W, top=1, method=method)[0][0]
    assert analogy_accuracy([("w0", "w1", "w2", first)], vocab, W,
                            method=method).total.accuracy == 1.0


def test_an_unknown_method_is_one_line():
    vocab, W = small()
    with pytest.raises(ValueError, match="argument 'method' expected one of 3cosadd, 3cosmul, "
                                         "book, got 'cos'"):
        analogy("w0", "w1", "w2", vocab, W, method="cos")

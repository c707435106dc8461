"""Analogy questions: reading the Google format, the rank of each answer and the
accuracy per section, on hand-made vectors with known answers and on random
vectors checked against the one-question ``analogy``."""

import numpy as np
import pytest

from timelayers.text import (AnalogyScore, analogy, analogy_accuracy, analogy_ranks,
                             read_analogy_questions)
from timelayers.vocab import Vocabulary

# Words on three axes: person (man/woman), royalty (+ king/queen), plural.
GENDER_WORDS = ["man", "woman", "king", "queen", "boy", "girl", "men", "women"]
GENDER_VECS = np.array([
    [1.0, 0.0, 0.0, 0.0],  # man
    [0.0, 1.0, 0.0, 0.0],  # woman
    [1.0, 0.0, 1.0, 0.0],  # king
    [0.0, 1.0, 1.0, 0.0],  # queen
    [1.0, 0.0, -1.0, 0.0],  # boy
    [0.0, 1.0, -1.0, 0.0],  # girl
    [1.0, 0.0, 0.0, 1.0],  # men
    [0.0, 1.0, 0.0, 1.0],  # women
])


def test_hand_made_parallelograms_are_all_answered():
    vocab = Vocabulary(GENDER_WORDS)
    questions = {
        "gender": [("man", "woman", "king", "queen"), ("king", "queen", "boy", "girl"),
                   ("boy", "girl", "men", "women")],
        "plural": [("man", "men", "woman", "women")],
    }
    assert analogy_ranks(questions["gender"], vocab, GENDER_VECS).tolist() == [1, 1, 1]
    result = analogy_accuracy(questions, vocab, GENDER_VECS)
    assert result.total == AnalogyScore(correct=4, answered=4, skipped=0)
    assert result.total.accuracy == 1.0
    assert list(result.sections) == ["gender", "plural"]
    assert result.sections["plural"] == AnalogyScore(1, 1, 0)


def test_wrong_answers_have_their_rank_and_unknown_words_are_skipped():
    vocab = Vocabulary(GENDER_WORDS)
    questions = [
        ("man", "woman", "king", "queen"),  # rank 1
        ("man", "woman", "king", "girl"),  # queen is ahead of girl
        ("man", "king", "woman", "man"),  # d is a query word: never found
        ("man", "woman", "emperor", "empress"),  # not in the vocabulary
    ]
    ranks = analogy_ranks(questions, vocab, GENDER_VECS)
    expected_girl = 1 + [w for w, _ in analogy("man", "woman", "king", vocab, GENDER_VECS,
                                               top=8)].index("girl")
    assert ranks[0] == 1 and ranks[1] == expected_girl > 1
    assert ranks[2] > len(GENDER_WORDS) - 3 and ranks[3] == 0
    result = analogy_accuracy(questions, vocab, GENDER_VECS)
    assert result.sections["all"] == result.total == AnalogyScore(1, 3, 1)
    assert result.total.accuracy == pytest.approx(1 / 3)
    assert result.as_dict()["total"] == {"correct": 1, "answered": 3, "skipped": 1,
                                         "accuracy": pytest.approx(1 / 3)}


def test_ranks_match_analogy_on_random_vectors_with_ties(xp):
    rng = np.random.default_rng(3)
    V, D = 40, 6
    words = [f"w{i}" for i in range(V)]
    vocab = Vocabulary(words)
    M = rng.standard_normal((V, D)).astype(np.float32)
    M[7] = M[5]  # equal scores: the lower id comes first, as analogy lists them
    M[9] = 0.0  # a zero vector scores 0 everywhere
    ids = rng.integers(0, V, size=(60, 4))
    ids = ids[[len(set(row)) == 4 for row in ids.tolist()]]
    questions = [tuple(words[i] for i in row) for row in ids.tolist()]
    questions += [("w1", "w2", "w3", "w5"), ("w1", "w2", "w3", "w7")]
    ranks = analogy_ranks(questions, vocab, xp.asarray(M), chunk_size=7)
    assert ranks[-1] == ranks[-2] + 1
    for (a, b, c, d), rank in zip(questions, ranks.tolist()):
        listed = [w for w, _ in analogy(a, b, c, vocab, M, top=V)]
        assert rank == listed.index(d) + 1
    assert (analogy_ranks(questions, vocab.word_to_id, M, chunk_size=1000) == ranks).all()


def test_read_analogy_questions(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(": capital-common-countries\nAthens Greece Baghdad Iraq\n\n"
                    ": family\nboy girl brother sister\nking queen man woman\n")
    assert read_analogy_questions(path) == {
        "capital-common-countries": [("Athens", "Greece", "Baghdad", "Iraq")],
        "family": [("boy", "girl", "brother", "sister"), ("king", "queen", "man", "woman")]}
    lowered = read_analogy_questions(path, lowercase=True)
    assert lowered["capital-common-countries"] == [("athens", "greece", "baghdad", "iraq")]


def test_bad_input_is_named(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(": s\na b c\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected .* four words"):
        read_analogy_questions(path)
    vocab = Vocabulary(GENDER_WORDS)
    with pytest.raises(ValueError, match="four words .* index 1"):
        analogy_ranks([("man", "woman", "king", "queen"), ("man", "woman")], vocab, GENDER_VECS)
    with pytest.raises(ValueError, match="chunk_size"):
        analogy_ranks([], vocab, GENDER_VECS, chunk_size=0)
    with pytest.raises(TypeError, match="questions"):
        analogy_accuracy("man woman king queen", vocab, GENDER_VECS)

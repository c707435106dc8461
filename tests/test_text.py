"""Count-based word vectors on the book's toy corpus, with hand-computed
co-occurrence and PPMI values, and naive-loop references for the vectorised code."""

import math

import numpy as np
import pytest

import timelayers as tl
from timelayers.text import (analogy, convert_one_hot, cos_similarity, create_co_matrix,
                             create_contexts_target, most_similar, ppmi, preprocess,
                             truncated_svd)
from timelayers.vocab import UnknownWordError, Vocabulary

TEXT = "You say goodbye and I say hello."
WORDS = ["you", "say", "goodbye", "and", "i", "hello", "."]

# C[i, j]: how often word j is a direct neighbour of word i in TEXT (by hand).
C_WINDOW1 = np.array([
    # you say goodbye and i hello .
    [0, 1, 0, 0, 0, 0, 0],  # you
    [1, 0, 1, 0, 1, 1, 0],  # say
    [0, 1, 0, 1, 0, 0, 0],  # goodbye
    [0, 0, 1, 0, 1, 0, 0],  # and
    [0, 1, 0, 1, 0, 0, 0],  # i
    [0, 1, 0, 0, 0, 0, 1],  # hello
    [0, 0, 0, 0, 0, 1, 0],  # .
])


def naive_co_matrix(corpus, V, w):
    C = np.zeros((V, V), dtype=np.int32)
    for i, wid in enumerate(corpus):
        for d in range(1, w + 1):
            for j in (i - d, i + d):
                if 0 <= j < len(corpus):
                    C[wid, corpus[j]] += 1
    return C


def naive_ppmi(C, eps=1e-8):
    N, S = C.sum(), C.sum(axis=0)
    M = np.zeros(C.shape)
    for i in range(C.shape[0]):
        for j in range(C.shape[1]):
            if S[i] and S[j]:
                M[i, j] = max(0.0, math.log2(C[i, j] * N / (S[i] * S[j]) + eps))
    return M


def test_preprocess():
    corpus, vocab = preprocess(TEXT)
    assert corpus.tolist() == [0, 1, 2, 3, 4, 1, 5, 6]
    assert isinstance(vocab, Vocabulary)
    assert vocab.words == WORDS
    assert vocab.word_to_id["hello"] == 5 and vocab.id_to_word[6] == "."
    corpus2, vocab2 = preprocess("A cat.  The cat sat.\nThe end.")
    assert vocab2.decode(corpus2) == ["a", "cat", ".", "the", "cat", "sat", ".", "the", "end", "."]


def test_vocabulary_json_roundtrip(tmp_path):
    _, vocab = preprocess(TEXT)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.word_to_id == vocab.word_to_id and loaded.id_to_word == vocab.id_to_word


def test_create_contexts_target(xp):
    corpus, _ = preprocess(TEXT)
    contexts, target = create_contexts_target(xp.asarray(corpus), window_size=1)
    assert tl.to_cpu(contexts).tolist() == [[0, 2], [1, 3], [2, 4], [3, 1], [4, 5], [1, 6]]
    assert tl.to_cpu(target).tolist() == [1, 2, 3, 4, 1, 5]
    contexts, target = create_contexts_target(corpus, window_size=2)
    assert contexts.tolist() == [[0, 1, 3, 4], [1, 2, 4, 1], [2, 3, 1, 5], [3, 4, 5, 6]]
    assert target.tolist() == [2, 3, 4, 1]
    with pytest.raises(tl.ShapeError, match="corpus.*= 9 words, got 8"):
        create_contexts_target(corpus, window_size=4)
    with pytest.raises(ValueError, match="window_size"):
        create_contexts_target(corpus, window_size=0)


def test_convert_one_hot(xp):
    ids = xp.asarray(np.array([[0, 2], [1, 3]]))
    oh = convert_one_hot(ids, 4)
    assert oh.shape == (2, 2, 4) and oh.dtype == np.int32
    np.testing.assert_array_equal(tl.to_cpu(oh), np.eye(4, dtype=np.int32)[tl.to_cpu(ids)])
    assert convert_one_hot(np.array([2]), 3).tolist() == [[0, 0, 1]]
    with pytest.raises(tl.ShapeError, match="ids.*\\[0, 3\\).*5"):
        convert_one_hot(np.array([5]), 3)


def test_co_matrix_hand_computed(xp):
    corpus, vocab = preprocess(TEXT)
    C = create_co_matrix(xp.asarray(corpus), len(vocab), window_size=1)
    assert C.dtype == np.int32
    np.testing.assert_array_equal(tl.to_cpu(C), C_WINDOW1)


@pytest.mark.parametrize("w", [1, 2, 3, 10])
def test_co_matrix_matches_naive_loop(rng, w):
    corpus = rng.integers(0, 9, 60)
    C = create_co_matrix(corpus, 11, window_size=w)
    np.testing.assert_array_equal(C, naive_co_matrix(corpus, 11, w))
    np.testing.assert_array_equal(C, C.T)


def test_ppmi_hand_computed(xp):
    M = tl.to_cpu(ppmi(xp.asarray(C_WINDOW1)))
    assert M.dtype == np.float32
    # N = 14 co-occurrences; S = (1, 4, 2, 2, 2, 2, 1)
    assert M[0, 1] == pytest.approx(math.log2(1 * 14 / (1 * 4)), abs=1e-6)  # you-say: 1.807
    assert M[1, 2] == pytest.approx(math.log2(1 * 14 / (4 * 2)), abs=1e-6)  # say-goodbye: 0.807
    assert M[2, 3] == pytest.approx(math.log2(1 * 14 / (2 * 2)), abs=1e-6)  # goodbye-and: 1.807
    assert M[5, 6] == pytest.approx(math.log2(1 * 14 / (2 * 1)), abs=1e-6)  # hello-.: 2.807
    assert M[0, 0] == 0 and M[0, 2] == 0  # never together: log2(eps) clipped to 0
    np.testing.assert_allclose(M, naive_ppmi(C_WINDOW1), atol=1e-6)


def test_ppmi_matches_naive_loop_with_unseen_words(rng):
    C = rng.integers(0, 5, (13, 13))
    C = C + C.T
    C[4, :] = C[:, 4] = 0  # a word that never co-occurs
    with np.errstate(all="raise"):
        M = ppmi(C, chunk_elements=20)  # several blocks of rows
    assert np.isfinite(M).all() and not M[4].any()
    np.testing.assert_allclose(M, naive_ppmi(C), rtol=1e-6, atol=1e-6)


def test_ppmi_shape_error():
    with pytest.raises(tl.ShapeError, match="'C'.*\\(3, 4\\)"):
        ppmi(np.zeros((3, 4)))


def _low_rank(rng, V=700, D=600, r=30):
    s = 2.0 ** -np.arange(r)  # well separated singular values
    U, _ = np.linalg.qr(rng.standard_normal((V, r)))
    W, _ = np.linalg.qr(rng.standard_normal((D, r)))
    return (U * s) @ W.T, U


@pytest.mark.parametrize("method", ["full", "randomized", "auto"])
def test_truncated_svd_leading_subspace(rng, method):
    A, U_true = _low_rank(rng)
    U, s = truncated_svd(A, 5, method=method, return_singular_values=True)
    assert U.shape == (700, 5) and U.dtype == np.float32
    np.testing.assert_allclose(s, 2.0 ** -np.arange(5), rtol=1e-5)
    np.testing.assert_allclose(np.abs(U.T @ U_true[:, :5]), np.eye(5), atol=1e-4)
    # sign convention: largest-magnitude entry of each column is positive
    assert np.all(U[np.abs(U).argmax(axis=0), np.arange(5)] > 0)


def test_truncated_svd_scipy(rng):
    pytest.importorskip("scipy", reason="SciPy is not installed")
    A, U_true = _low_rank(rng)
    U = truncated_svd(A, 5, method="scipy")
    np.testing.assert_allclose(np.abs(U.T @ U_true[:, :5]), np.eye(5), atol=1e-4)


def test_truncated_svd_toy_is_books_U():
    M = ppmi(C_WINDOW1)
    U = truncated_svd(M, 2)
    U_full = np.linalg.svd(M)[0][:, :2]
    np.testing.assert_allclose(np.abs(U), np.abs(U_full), atol=1e-5)
    with pytest.raises(ValueError, match="'k'.*\\[1, 7\\].*8"):
        truncated_svd(M, 8)


def test_cos_similarity():
    assert cos_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert cos_similarity(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == pytest.approx(1.0)
    assert cos_similarity(np.array([3.0, 4.0]), np.array([-3.0, -4.0])) == pytest.approx(-1.0)
    assert cos_similarity(np.zeros(3), np.ones(3)) == 0.0  # no division by zero
    sims = cos_similarity(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]))
    np.testing.assert_allclose(sims, [1.0, 1 / np.sqrt(2), 0.0], atol=1e-7)


def _toy_vectors():
    vocab = Vocabulary(["a", "b", "c", "d", "e"])
    M = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    return vocab, M


def test_most_similar_ranks_and_excludes_query(xp):
    vocab, M = _toy_vectors()
    result = most_similar("a", vocab, xp.asarray(M), top=3)
    assert [w for w, _ in result] == ["b", "d", "c"]
    assert result[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert all(isinstance(s, float) for _, s in result)
    assert len(most_similar("a", vocab, M, top=10)) == 4  # everything but the query
    assert [w for w, _ in most_similar("a", vocab.word_to_id, M, top=1)] == ["b"]


def test_analogy():
    words = ["man", "woman", "king", "queen", "apple"]
    vocab = Vocabulary(words)
    M = np.array([[1.0, 0.0, 0.0],  # man
                  [0.0, 1.0, 0.0],  # woman
                  [1.0, 0.0, 1.0],  # king
                  [0.0, 1.0, 1.0],  # queen
                  [0.3, 0.3, -1.0]])
    result = analogy("man", "king", "woman", vocab, M, top=5)
    assert result[0][0] == "queen"
    assert {w for w, _ in result} == {"queen", "apple"}  # man, king, woman excluded
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)


def test_unknown_words_raise_named_keyerror():
    vocab, M = _toy_vectors()
    with pytest.raises(KeyError) as info:
        most_similar("zebra", vocab, M)
    assert isinstance(info.value, UnknownWordError) and "zebra" in str(info.value)
    with pytest.raises(UnknownWordError, match="'qux'"):
        analogy("a", "qux", "b", vocab, M)
    with pytest.raises(UnknownWordError, match="'zebra'"):
        most_similar("zebra", vocab.word_to_id, M)
    with pytest.raises(tl.ShapeError, match="word_matrix.*\\(5, D\\)"):
        most_similar("a", vocab, M[:3])


def test_toy_pipeline_end_to_end():
    corpus, vocab = preprocess(TEXT)
    vecs = truncated_svd(ppmi(create_co_matrix(corpus, len(vocab))), 2)
    result = most_similar("you", vocab, vecs, top=3)
    assert len(result) == 3 and "you" not in [w for w, _ in result]
    assert {w for w, _ in result} <= set(WORDS)

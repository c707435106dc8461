"""Bad input gives a ShapeError naming the layer, the argument, the expected and the
received value."""

import numpy as np
import pytest

import timelayers as tl


def test_shape_error_is_value_error():
    assert issubclass(tl.ShapeError, ValueError)
    assert issubclass(tl.ShapeError, tl.TimelayersError)


def test_time_affine_wrong_ndim():
    layer = tl.TimeAffine(np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(tl.ShapeError, match=r"TimeAffine\.forward.*'x'.*\(N, T, 3\).*\(2, 3\)"):
        layer.forward(np.zeros((2, 3)))


def test_time_affine_wrong_feature_size():
    layer = tl.TimeAffine(np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(tl.ShapeError, match=r"TimeAffine\.forward.*'x'.*\(2, 5, 3\).*\(2, 5, 7\)"):
        layer.forward(np.zeros((2, 5, 7)))


def test_affine_wrong_feature_size():
    with pytest.raises(tl.ShapeError, match=r"Affine\.forward.*'x'.*\(2, 3\).*\(2, 4\)"):
        tl.Affine(np.zeros((3, 4)), np.zeros(4)).forward(np.zeros((2, 4)))


def test_embedding_ids_out_of_range():
    layer = tl.TimeEmbedding(np.zeros((5, 2)))
    with pytest.raises(tl.ShapeError, match=r"TimeEmbedding\.forward.*'idx'.*\[0, 5\).*got 5"):
        layer.forward(np.array([[0, 5]]))
    with pytest.raises(tl.ShapeError, match=r"got -1"):
        layer.forward(np.array([[0, -1]]))


def test_embedding_ids_not_integer():
    with pytest.raises(tl.ShapeError, match=r"Embedding\.forward.*'idx'.*integer.*float64"):
        tl.Embedding(np.zeros((5, 2))).forward(np.array([0.0, 1.0]))


def test_time_embedding_wrong_ndim():
    with pytest.raises(tl.ShapeError, match=r"TimeEmbedding\.forward.*'xs'.*2 dimensions.*\(3,\)"):
        tl.TimeEmbedding(np.zeros((5, 2))).forward(np.array([0, 1, 2]))


def test_time_softmax_ts_shape_mismatch():
    layer = tl.TimeSoftmaxWithLoss()
    with pytest.raises(tl.ShapeError, match=r"TimeSoftmaxWithLoss\.forward.*'ts'.*\(2, 3\).*\(2, 4\)"):
        layer.forward(np.zeros((2, 3, 5)), np.zeros((2, 4), int))


def test_time_softmax_ts_out_of_range():
    with pytest.raises(tl.ShapeError, match=r"'ts'.*\[0, 5\) or -1.*got 7"):
        tl.TimeSoftmaxWithLoss().forward(np.zeros((1, 2, 5)), np.array([[0, 7]]))


def test_embedding_dot_mismatched_batch():
    layer = tl.EmbeddingDot(np.zeros((5, 2)))
    with pytest.raises(tl.ShapeError, match=r"EmbeddingDot\.forward.*'idx'.*\(3, None\)|\(3,"):
        layer.forward(np.zeros((3, 2)), np.zeros((4, 2), int))


def test_non_array_input():
    with pytest.raises(tl.ShapeError, match=r"'x'.*expected an array.*list"):
        tl.TimeAffine(np.zeros((3, 4)), np.zeros(4)).forward([[1.0]])

"""timelayers.functions, the pure math the layers use: each function against its
plain formula in float64, at values where the plain formula overflows, and
the softmax's backward against central differences."""

import numpy as np
import pytest

from timelayers import functions as F
from timelayers.gradcheck import numerical_gradient, relative_error


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((4, 7)) * 3


def test_sigmoid_is_the_logistic_function_and_writes_into_out(x):
    expected = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(F.sigmoid(x), expected, rtol=1e-13, atol=1e-15)
    y = x.copy()
    assert F.sigmoid(y, out=y) is y
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-15)
    strided = np.zeros((4, 14))[:, ::2]
    F.sigmoid(x, out=strided)
    np.testing.assert_allclose(strided, expected, rtol=1e-13, atol=1e-15)


def test_sigmoid_and_softplus_do_not_overflow():
    big = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = F.sigmoid(big)
        sp = F.softplus(big)
    # the tanh form is exact to absolute rounding: 0 where the logistic is below 1e-16
    np.testing.assert_allclose(s, [0, 1 / (1 + np.exp(50)), 0.5, 1 / (1 + np.exp(-50)), 1],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sp[1:4], np.log1p(np.exp(big[1:4])), rtol=1e-12)
    assert sp[0] == 0.0 and sp[4] == 1000.0


def test_relu(x):
    np.testing.assert_array_equal(F.relu(x), np.where(x > 0, x, 0))


def test_softmax_rows_sum_to_one_and_ignore_a_shift(x):
    y = F.softmax(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-14)
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True), rtol=1e-13)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(F.softmax(x + 1000), y, rtol=1e-12)
    assert F.softmax(x[None]).shape == (1, 4, 7)   # any leading axes


def test_log_softmax_is_the_log_of_softmax(x):
    np.testing.assert_allclose(F.log_softmax(x), np.log(F.softmax(x)), rtol=1e-12, atol=1e-14)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert np.isfinite(F.log_softmax(x * 1000)).all()


def test_softmax_backward_equals_central_differences(x):
    dy = np.random.default_rng(1).standard_normal(x.shape)
    dx = F.softmax_backward(F.softmax(x), dy)
    numeric = numerical_gradient(lambda: float((F.softmax(x) * dy).sum()), x)
    assert relative_error(dx, numeric) < 1e-8
    y = F.softmax(x)
    y_before, dy_before = y.copy(), dy.copy()
    F.softmax_backward(y, dy)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(dy, dy_before)


def test_cross_entropy_with_labels_one_hot_and_one_row(x):
    y = F.softmax(x)
    t = np.array([0, 3, 6, 2])
    expected = -np.mean(np.log(y[np.arange(4), t] + 1e-7))
    assert F.cross_entropy(y, t) == pytest.approx(expected, rel=1e-12)
    assert F.cross_entropy(y, np.eye(7)[t]) == pytest.approx(expected, rel=1e-12)
    assert F.cross_entropy(y[1], np.array(3)) == pytest.approx(-np.log(y[1, 3] + 1e-7))
    assert np.isfinite(F.cross_entropy(np.array([[1.0, 0.0]]), np.array([1])))  # p = 0: eps

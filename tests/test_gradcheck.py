"""timelayers.gradcheck, the tool every backward in the library is checked with:
it must find a wrong backward, not only pass a right one."""

import numpy as np
import pytest

from timelayers import Affine, check_layer, numerical_gradient, relative_error
from timelayers.gradcheck import GradientIdentityError


def test_numerical_gradient_of_a_known_function_restores_x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    grad = numerical_gradient(lambda: float((x ** 3).sum()), x)
    np.testing.assert_allclose(grad, 3 * before ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_refuses_a_strided_view():
    x = np.zeros((3, 4))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        numerical_gradient(lambda: 0.0, x)


def test_relative_error():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)


def _affine(rng):
    return Affine(rng.standard_normal((3, 2)), rng.standard_normal(2)), rng.standard_normal((4, 3))


def test_check_layer_passes_a_right_backward():
    layer, x = _affine(np.random.default_rng(0))
    errors = check_layer(layer, x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-8


def test_check_layer_finds_a_wrong_backward():
    layer, x = _affine(np.random.default_rng(0))
    right = layer.backward

    def wrong(dout):
        dx = right(dout)
        layer.grads[1] *= 2            # the bias gradient doubled
        return dx * 0.5                # and the input gradient halved
    layer.backward = wrong
    errors = check_layer(layer, x)
    assert errors["W"] < 1e-8 and errors["b"] > 0.4 and errors["x"] > 0.4


def test_check_layer_refuses_rebound_grads():
    layer, x = _affine(np.random.default_rng(0))
    right = layer.backward

    def rebinding(dout):
        dx = right(dout)
        layer.grads[0] = layer.grads[0].copy()
        return dx
    layer.backward = rebinding
    with pytest.raises(GradientIdentityError, match="rebound"):
        check_layer(layer, x)

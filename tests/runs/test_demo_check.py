"""The demo's TimeAffine example (``runs.demo``), reproduced through the public API."""

import numpy as np

import timelayers as tl
from timelayers.runs.demo import check_time_affine, example_arrays

# The first rows of `out` for these arrays, as NumPy prints them (9 significant digits).
OUT_PRINTED = np.array([
    [[4.18239806e-01, -1.05658950e+00, 1.27104453e+00, -2.77373175e-01, -6.39279619e-01],
     [4.05240205e-01, -1.02374891e+00, 1.23153831e+00, -2.68751947e-01, -6.19409726e-01],
     [-3.00079563e-01, 7.58084023e-01, -9.11951660e-01, 1.99010281e-01, 4.58671666e-01],
     [7.39982176e-03, -1.86939977e-02, 2.24883017e-02, -4.90750050e-03, -1.13106289e-02],
     [-1.05728055e+00, 2.67098327e+00, -3.21311036e+00, 7.01179703e-01, 1.61605351e+00]],
    [[5.42167280e-01, -1.36966460e+00, 1.64766420e+00, -3.59560850e-01, -8.28702786e-01],
     [4.67638235e-01, -1.18138360e+00, 1.42116798e+00, -3.10133805e-01, -7.14785128e-01],
     [4.49430516e-01, -1.13538587e+00, 1.36583412e+00, -2.98058596e-01, -6.86954626e-01],
     [-9.52890597e-01, 2.40726536e+00, -2.89586587e+00, 6.31949152e-01, 1.45649345e+00],
     [-1.57495818e-01, 3.97878023e-01, -4.78634970e-01, 1.04449922e-01, 2.40732386e-01]],
])
OUT_ROW_2_0 = np.array([9.98671601e-04, -2.52292085e-03, 3.03499584e-03,
                             -6.62310735e-04, -1.52646972e-03])


def test_example_arrays_match_global_seed():
    np.random.seed(1234)
    W = np.random.randn(1, 5)
    x = np.random.randn(4, 5, 1)
    dout = np.random.randn(4, 5, 5)
    W2, b2, x2, dout2 = example_arrays()
    np.testing.assert_array_equal(W, W2)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(dout, dout2)
    assert not b2.any()


def test_out_dx_grads_and_identity(capsys):
    W, b, x, dout = example_arrays()
    layer = tl.TimeAffine(W, b)
    assert layer.params[0] is W and layer.params[1] is b
    ids = [id(g) for g in layer.grads]
    out = layer.forward(x)
    np.testing.assert_allclose(out[:2], OUT_PRINTED, rtol=1e-8)
    np.testing.assert_allclose(out[2, 0], OUT_ROW_2_0, rtol=1e-8)
    assert f"{out[2, 1, 0]:.8e}".startswith("1.911449")
    dx = layer.backward(dout)
    rx, rd = x.reshape(20, 1), dout.reshape(20, 5)
    np.testing.assert_allclose(dx, (rd @ W.T).reshape(4, 5, 1), rtol=1e-12)
    np.testing.assert_allclose(layer.grads[0], rx.T @ rd, rtol=1e-12)
    np.testing.assert_allclose(layer.grads[1], rd.sum(axis=0), rtol=1e-12)
    assert [id(g) for g in layer.grads] == ids
    assert capsys.readouterr().out == ""  # the layer prints nothing


def test_check_time_affine_passes():
    check = check_time_affine()
    assert check.identity_kept
    assert max(check.grad_errors.values()) < 1e-8
    assert check.ok
    np.testing.assert_allclose(check.out[:2], OUT_PRINTED, rtol=1e-8)

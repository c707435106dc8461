import numpy as np
import pytest

from timelayers.datasets import load_spiral


@pytest.mark.parametrize("n_per_class, n_classes", [(100, 3), (7, 5), (1, 1)])
def test_shapes_and_one_hot(n_per_class, n_classes):
    x, t = load_spiral(n_per_class, n_classes, np.random.default_rng(0))
    n = n_per_class * n_classes
    assert x.shape == (n, 2) and x.dtype == np.float32
    assert t.shape == (n, n_classes) and t.dtype == np.int32
    assert set(np.unique(t)) <= {0, 1} and (t.sum(axis=1) == 1).all()
    labels = t.argmax(axis=1)
    assert labels.tolist() == np.repeat(np.arange(n_classes), n_per_class).tolist()  # class by class


def test_radius_grows_linearly_and_the_angle_follows_the_arm():
    x, t = load_spiral(100, 3, np.random.default_rng(1), dtype=np.float64)
    radius = np.hypot(x[:, 0], x[:, 1]).reshape(3, 100)
    np.testing.assert_allclose(radius, np.tile(np.arange(100) / 100, (3, 1)), atol=1e-12)
    r = np.arange(1, 100) / 100
    theta = np.arctan2(x[:, 0], x[:, 1]).reshape(3, 100)[:, 1:]  # angle from (sin, cos)
    noise = np.angle(np.exp(1j * (theta - (4.0 * np.arange(3)[:, None] + 4.0 * r))))
    assert abs(noise.std() - 0.2) < 0.03 and abs(noise.mean()) < 0.05


def test_deterministic_with_a_seeded_rng():
    a = load_spiral(rng=np.random.default_rng(5))
    b = load_spiral(rng=np.random.default_rng(5))
    c = load_spiral(rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(load_spiral()[0], load_spiral()[0])  # default seed


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_classes"):
        load_spiral(10, 0)
    with pytest.raises(ValueError, match="n_per_class"):
        load_spiral(2.5)

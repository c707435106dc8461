"""The book's spiral toy data set: ``n_classes`` interleaved arms in the plane."""

from __future__ import annotations

import numpy as np

__all__ = ["load_spiral"]


def load_spiral(
    n_per_class: int = 100,
    n_classes: int = 3,
    rng: np.random.Generator | int | None = None,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Points on ``n_classes`` spiral arms, one arm per class.

    Point ``i`` of class ``j`` has radius ``r = i / n_per_class`` (0 up to 1) and
    angle ``4 j + 4 r + 0.2 * noise`` with standard normal noise; its
    coordinates are ``r * (sin(angle), cos(angle))``.

    Parameters
    ----------
    n_per_class : int
        Points per class.
    n_classes : int
        Number of classes (arms).
    rng : numpy.random.Generator or int, optional
        Source of the noise; an int is a seed, None means the seed 1984
        (the book's), so the default data set is always the same.
    dtype : numpy dtype
        Dtype of the inputs.

    Returns
    -------
    x : ndarray, shape (n_per_class * n_classes, 2)
        Inputs, class by class.
    t : ndarray of int32, shape (n_per_class * n_classes, n_classes)
        One-hot targets.
    """
    for name, value in (("n_per_class", n_per_class), ("n_classes", n_classes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"load_spiral: {name} must be a positive int, got {value!r}")
    rng = np.random.default_rng(1984 if rng is None else rng)
    radius = np.arange(n_per_class) / n_per_class  # (P,)
    cls = np.arange(n_classes)[:, None]  # (C, 1)
    theta = 4.0 * cls + 4.0 * radius + 0.2 * rng.standard_normal((n_classes, n_per_class))  # (C, P)
    x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=-1)  # (C, P, 2)
    x = x.reshape(-1, 2).astype(dtype, copy=False)  # (C*P, 2)
    labels = np.repeat(np.arange(n_classes), n_per_class)  # (C*P,)
    t = np.eye(n_classes, dtype=np.int32)[labels]  # (C*P, C)
    return x, t

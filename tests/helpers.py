"""Assertions and test doubles used across the tests."""

import os

import numpy as np

from timelayers import check_layer
from timelayers.backend import to_cpu


def randn(xp, rng, *shape, dtype=np.float64):
    return xp.asarray(rng.standard_normal(shape).astype(dtype))


def assert_gradcheck(layer, *inputs, tol=1e-6, **kwargs):
    """Every input and param gradient within ``tol`` of central differences."""
    errors = check_layer(layer, *inputs, **kwargs)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradcheck failed for {type(layer).__name__}: {errors}"
    return errors


def assert_close(a, b, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(to_cpu(a), to_cpu(b), rtol=rtol, atol=atol)


def fail_writes_after(monkeypatch, limit, error):
    """Make the files that ``timelayers.serialization`` opens write their first
    ``limit`` bytes, then raise ``error`` (a disk that fills up part-way)."""
    import timelayers.serialization as ser

    real_fdopen = os.fdopen

    class FailsAfter:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            b = memoryview(b).cast("B")
            if self.n + len(b) > limit:
                self.f.write(b[:limit - self.n])  # a partial write
                raise error
            self.n += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(ser.os, "fdopen", lambda fd, mode: FailsAfter(real_fdopen(fd, mode)))

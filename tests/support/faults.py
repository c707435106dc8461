"""File faults: writes that fail after a number of bytes (a full disk)."""

import os


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

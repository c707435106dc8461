"""``cupy.cuda`` of the stand-in: one device, streams and events that time the CPU."""

from __future__ import annotations

import time

from . import nccl, runtime  # noqa: F401


def _host_read(what):
    from .. import _host_read as read

    read(what)


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def use(self):
        return self

    def synchronize(self):
        _host_read("Device.synchronize()")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0

    def synchronize(self):
        _host_read("Stream.synchronize()")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self, mode=None):
        raise NotImplementedError("cupy stand-in: no stream capture")


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        _host_read("Event.synchronize()")

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    return (end_event.time - start_event.time) * 1e3

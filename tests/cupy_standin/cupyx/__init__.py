"""``cupyx`` of the stand-in: ``allow_synchronize`` and ``DeviceSynchronized``."""

from cupy import DeviceSynchronized  # noqa: F401
from cupy import _allow_synchronize as allow_synchronize  # noqa: F401
from . import profiler, scipy  # noqa: F401

"""``cupy.cuda.runtime`` of the stand-in: one device (``CUPY_STANDIN_DEVICES``
of them), named for what it is."""

import os

is_hip = False


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return int(os.environ.get("CUPY_STANDIN_DEVICES", "1"))


def getDevice():
    return 0


def runtimeGetVersion():
    return 0


def driverGetVersion():
    return 0


def getDeviceProperties(device):
    return {"name": b"CuPy stand-in on the CPU", "totalGlobalMem": 0, "major": 0, "minor": 0}

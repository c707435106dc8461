"""``cupy.cuda.runtime`` of the stand-in: one device, named for what it is."""

is_hip = False


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return 1


def getDevice():
    return 0


def runtimeGetVersion():
    return 0


def driverGetVersion():
    return 0


def getDeviceProperties(device):
    return {"name": b"CuPy stand-in on the CPU", "totalGlobalMem": 0, "major": 0, "minor": 0}

import subprocess
import sys

import numpy as np

import timelayers as tl
from timelayers.backend import get_array_module, is_cupy_array


def test_numpy_by_default_and_no_cupy_import():
    assert get_array_module(np.zeros(2), None, 3.0) is np
    assert get_array_module() is np
    assert not is_cupy_array(np.zeros(1))


def test_import_does_not_import_cupy():
    code = "import sys, timelayers; sys.exit('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_to_cpu_passthrough():
    a = np.arange(3)
    np.testing.assert_array_equal(tl.to_cpu(a), a)
    np.testing.assert_array_equal(tl.to_cpu([1, 2]), [1, 2])


def test_to_gpu_without_cupy_is_one_line(monkeypatch):
    import pytest

    from timelayers.errors import OptionError

    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    with pytest.raises(OptionError) as info:
        tl.to_gpu(np.zeros(2))
    assert "CuPy is not installed" in str(info.value) and "\n" not in str(info.value)

"""Shared fixtures.

``xp`` runs a test on NumPy, and on CuPy too when ``TIMELAYERS_TEST_CUPY=1`` is
set (CuPy and a GPU must then be present; the run fails loudly otherwise).
"""

import os
from pathlib import Path

import numpy as np
import pytest


def _array_modules():
    mods = [pytest.param(np, id="numpy")]
    if os.environ.get("TIMELAYERS_TEST_CUPY") == "1":
        import cupy

        mods.append(pytest.param(cupy, id="cupy"))
    return mods


@pytest.fixture(params=_array_modules())
def xp(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def ptb_dir():
    """The shared Penn Treebank folder (beside the repository), or None."""
    candidates = [os.environ.get("TIMELAYERS_DATA"),
                  Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ptb"]
    for c in candidates:
        if c and (Path(c) / "ptb.train.txt").exists():
            return Path(c)
    return None

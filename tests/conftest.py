"""Shared fixtures (the array modules, a generator, and the small data files of the
command-line and task tests).

``xp`` runs a test on NumPy, and on CuPy too when ``TIMELAYERS_TEST_CUPY=1`` is
set (CuPy and a GPU must then be present; the run fails loudly otherwise).
``TIMELAYERS_TEST_CUPY=standin`` runs the same tests on the CuPy stand-in of
``tests/cupy_standin`` (NumPy underneath, CUDA kernels built as C++): the
library's CuPy code on a machine without a GPU. This process and the Python
processes the tests start import it as ``cupy``.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from timelayers.datasets import make_addition, write_sequence
from support.cli import TEXT, TINY_LM, run

STANDIN = os.environ.get("TIMELAYERS_TEST_CUPY") == "standin"
if STANDIN:
    import sys

    _STANDIN = str(Path(__file__).resolve().parent / "cupy_standin")
    sys.path.insert(0, _STANDIN)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_STANDIN, os.environ.get("PYTHONPATH")) if p)


def pytest_collection_modifyitems(config, items):
    """On the stand-in, only the tests of CuPy arrays: the ``xp=cupy`` cases and
    the tests marked ``cupy`` (the NumPy ones have run without it)."""
    if not STANDIN:
        return
    keep, drop = [], []
    for item in items:
        on_cupy = getattr(getattr(item, "callspec", None), "params", {}).get("xp") is not None \
            and item.callspec.params["xp"] is not np
        (keep if on_cupy or item.get_closest_marker("cupy") else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
    import shutil

    if not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")):
        skip = pytest.mark.skip(reason="the CuPy stand-in builds CUDA kernels with a C++ "
                                       "compiler ($CXX, g++ or c++); none here")
        for item in keep:
            item.add_marker(skip)


def _array_modules():
    mods = [pytest.param(np, id="numpy")]
    if os.environ.get("TIMELAYERS_TEST_CUPY") in ("1", "standin"):
        import cupy

        mods.append(pytest.param(cupy, id="cupy"))
    return mods


@pytest.fixture(params=_array_modules())
def xp(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def corpus_file(tmp_path):
    """The tiny corpus as a text file."""
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def lm_run(tmp_path, corpus_file, capsys):
    """A finished tiny ``rnnlm`` run folder (:data:`support.cli.TINY_LM`)."""
    out_dir = tmp_path / "lm"
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM, "--out", out_dir)
    assert code == 0, err
    return out_dir


@pytest.fixture
def addition_file(tmp_path):
    """600 addition questions in the book's sequence format."""
    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(600, np.random.default_rng(0)))
    return path

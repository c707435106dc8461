"""The command-line tests' data files."""

import numpy as np
import pytest

from timelayers.datasets import make_addition, write_sequence
from support.cli import TEXT


@pytest.fixture
def corpus_file(tmp_path):
    """The tiny corpus as a text file."""
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def addition_file(tmp_path):
    """600 addition questions in the book's sequence format."""
    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(600, np.random.default_rng(0)))
    return path

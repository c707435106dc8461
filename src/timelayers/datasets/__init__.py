"""Data sets of the book: Penn Treebank, the seq2seq toy tasks, the spiral.

Nothing is downloaded at import time; :func:`load_ptb` fetches the Penn
Treebank on first use, through ``pooch`` (see :mod:`timelayers.datasets.ptb`
for where files go and how they are checked).
"""

from timelayers.datasets.ptb import fetch_ptb, load_ptb
from timelayers.datasets.sequence import (
    load_addition,
    load_dates,
    load_sequence,
    make_addition,
    make_dates,
    reverse_questions,
    write_sequence,
)
from timelayers.datasets.spiral import load_spiral

__all__ = [
    "load_ptb",
    "fetch_ptb",
    "load_addition",
    "load_dates",
    "load_sequence",
    "make_addition",
    "make_dates",
    "write_sequence",
    "reverse_questions",
    "load_spiral",
]

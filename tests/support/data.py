"""Where the tests find the PTB files."""

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository's root."""


def find_ptb():
    """The folder holding the Penn Treebank files for the tests that need them:
    ``$TIMELAYERS_DATA`` when it holds ``ptb.train.txt``, else ``../shared/datasets/ptb``
    beside the checkout when it does; None when neither does."""
    for folder in (os.environ.get("TIMELAYERS_DATA"),
                   CHECKOUT.parent / "shared" / "datasets" / "ptb"):
        if folder and (Path(folder) / "ptb.train.txt").is_file():
            return Path(folder)
    return None

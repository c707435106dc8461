"""Shared by the results scripts: their common options, machine description, PTB
location, and writing a result (JSON + learning-curve PNG) under docs/results/."""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def argument_parser(doc: str, epochs: int | None = None) -> argparse.ArgumentParser:
    """``--quick``, ``--seed`` and, with a default number, ``--epochs``; a script
    adds its own options before ``parse_args``."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true")
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    cpu = cpu_model()
    from timelayers.threads import get_num_threads

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "threads": get_num_threads(),
            **{k.lower(): os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
               if k in os.environ}}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def use_shared_ptb() -> None:
    """Point TIMELAYERS_DATA at ../shared/datasets/ptb when it exists (the loader
    downloads and caches the files otherwise)."""
    shared = ROOT.parent / "shared" / "datasets" / "ptb"
    if "TIMELAYERS_DATA" not in os.environ and (shared / "ptb.train.txt").exists():
        os.environ["TIMELAYERS_DATA"] = str(shared)


def ptb_splits(quick_train_tokens=None):
    """``(train, valid, test, vocab)`` of the Penn Treebank (after
    :func:`use_shared_ptb`); with ``quick_train_tokens``, the first that many
    tokens of train (and one more, for the targets) and 7,000 of valid and test,
    for checking a script in minutes."""
    import timelayers as tl

    use_shared_ptb()
    train, vocab = tl.datasets.load_ptb("train")
    valid, _ = tl.datasets.load_ptb("valid")
    test, _ = tl.datasets.load_ptb("test")
    if quick_train_tokens:
        train, valid, test = train[:quick_train_tokens + 1], valid[:7001], test[:7001]
    return train, valid, test, vocab


def save_result(name: str, result: dict, history=None, quick=False) -> Path:
    """Write docs/results/NAME.json (and NAME.png from ``history``); quick runs go
    to docs/results/quick/ so they never overwrite a full result."""
    folder = RESULTS / "quick" if quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    result = dict(result, machine=machine(), command="python " + " ".join(sys.argv))
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    if history is not None:
        try:
            from timelayers.plot import plot_history

            plot_history(history, folder / f"{name}.png", title=name)
        except ImportError:
            pass
    return path

"""The README (and docs/README.ja.md) run top to bottom: every `timelayers` line of
their ```sh blocks and every ```python block, in order, in one temporary folder,
as small runs (TIMELAYERS_MAX_ITERS=2, a line's own --max-iters cut to 2, and
--epochs 1 on a `train` line that gives no --epochs). Lines whose comment starts with "needs" (a GPU, the book's files,
MPI, the onnx extra) are skipped, and Python blocks whose first line is such a
comment; without the Penn Treebank files, so are the runs on PTB and the lines
that use their folders."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from support.data import find_ptb

ROOT = Path(__file__).resolve().parents[1]
PTB_RECIPES = {"rnnlm", "better-rnnlm", "cbow", "skipgram", "transformer-lm"}


def blocks(path):
    """(language, text) of every fenced block of ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def split_comment(line):
    """``(words, comment)``: the shell words of ``line`` and its trailing ``# comment``."""
    parts = re.split(r"\s#\s*", line, maxsplit=1)
    return shlex.split(parts[0]), (parts[1].strip() if len(parts) > 1 else "")


def steps(path):
    """What to run from ``path``: ("sh", argv, line) and ("python", code, first line)."""
    out = []
    for lang, text in blocks(path):
        if lang == "sh":
            for line in text.splitlines():
                words, comment = split_comment(line)
                if words[:1] == ["timelayers"] and not comment.startswith("needs"):
                    out.append(("sh", words, line))
        elif lang == "python":
            first = text.strip().splitlines()[0]
            if not first.startswith("# needs"):
                out.append(("python", text, first))
    return out


def small(argv):
    """A `train` line as a small run: --epochs 1 unless it gives --epochs or --resume,
    and its own --max-iters (or --checkpoint-every) cut to 2 (1)."""
    argv = list(argv)
    for flag, most in (("--max-iters", 2), ("--checkpoint-every", 1)):
        if flag in argv:
            i = argv.index(flag) + 1
            argv[i] = str(min(int(argv[i]), most))
    if argv[1:2] == ["train"] and "--epochs" not in argv and "--resume" not in argv:
        argv += ["--epochs", "1"]
    return argv


def run_document(path, tmp_path):
    """Run ``path``'s steps in ``tmp_path``; returns (steps run, steps skipped because
    the Penn Treebank files are not here)."""
    ptb = find_ptb()
    env = {**os.environ, "TIMELAYERS_MAX_ITERS": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("TIMELAYERS_DEVICE", None)
    if ptb is not None:
        env["TIMELAYERS_DATA"] = str(ptb)
    unavailable = set()  # run folders whose training was skipped
    ran = skipped = 0
    for kind, what, line in steps(path):
        if kind == "sh":
            argv = what
            if argv[1:2] == ["train"] and ptb is None and argv[2] in PTB_RECIPES \
                    and "--data" not in argv:
                if "--out" in argv:
                    unavailable.add(argv[argv.index("--out") + 1])
                skipped += 1
                continue
            if any(word in unavailable for word in argv):
                skipped += 1
                continue
            command = [sys.executable, "-m", "timelayers", *small(argv)[1:]]
        else:
            if ptb is None and "load_ptb" in what:
                skipped += 1
                continue
            command = [sys.executable, "-c", what]
        proc = subprocess.run(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=300)
        assert proc.returncode == 0, (f"{path.name}: {line!r} failed with {proc.returncode}:\n"
                                      f"{proc.stderr[-2000:]}")
        ran += 1
    assert ran + skipped == len(steps(path))
    return ran, skipped


def test_the_readme_runs_top_to_bottom(tmp_path):
    ran, skipped = run_document(ROOT / "README.md", tmp_path)
    assert ran >= 7 and (skipped == 0 or find_ptb() is None)


def test_the_japanese_guide_runs_top_to_bottom(tmp_path):
    path = ROOT / "docs" / "README.ja.md"
    if not path.exists():
        pytest.skip("docs/README.ja.md is not written yet")
    ran, skipped = run_document(path, tmp_path)
    assert ran >= 5 and (skipped == 0 or find_ptb() is None)


def test_the_lines_that_need_something_are_marked():
    skipped = [line for lang, text in blocks(ROOT / "README.md") if lang == "sh"
               for line in text.splitlines() if "needs" in line and line.startswith("timelayers")]
    assert any("--device gpu" in line for line in skipped)
    assert any("ch06/Rnnlm.pkl" in line for line in skipped)

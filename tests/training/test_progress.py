"""Progress is shown by default: the book's lines on stderr in a script whose
stderr is a pipe, through logging when logging is set up to show them, a tqdm bar
on a terminal; nothing with progress=False or 0; the root logger never touched."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timelayers.optim import SGD
from timelayers.training import RnnlmTrainer, Trainer
from timelayers.training import progress as progress_module
from timelayers.training.progress import LogLines, ProgressBar, progress_callback
from support.data import find_ptb
from support.tiny_models import TinyLM

ROOT = Path(__file__).resolve().parents[2]


def copy_data(rng, n=24, T=3, V=8):
    x = rng.integers(0, V, (n, T))
    return x, x.copy()


def test_lines_on_stderr_without_logging_set_up(rng, capsys):
    x, t = copy_data(rng)
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("timelayers").handlers[:])
    Trainer(TinyLM(), SGD(), rng=0).fit(x, t, max_epoch=2, batch_size=8, eval_interval=2)
    assert (list(root.handlers), root.level,
            logging.getLogger("timelayers").handlers[:]) == before  # logging left as it was
    out = capsys.readouterr()
    assert out.out == ""
    assert re.search(r"^\| epoch 1 \| iter 2 / 3 \| time \d+\[s\] \| loss \d", out.err, re.M)
    assert re.search(r"^epoch 2/2: loss ", out.err, re.M)


@pytest.mark.parametrize("off", [False, 0, None])
def test_progress_off_is_silent(rng, capsys, off):
    x, t = copy_data(rng)
    Trainer(TinyLM(), SGD(), progress=off).fit(x, t, max_epoch=1, batch_size=8, eval_interval=1)
    assert capsys.readouterr() == ("", "")


def test_the_display_chosen(monkeypatch):
    assert isinstance(progress_callback(True), LogLines)  # pytest's stderr is no terminal
    assert isinstance(progress_callback(1), LogLines)
    assert isinstance(progress_callback("tqdm"), ProgressBar)
    monkeypatch.setattr(progress_module, "_in_notebook_with_widgets", lambda: True)
    bar = progress_callback(True)
    assert isinstance(bar, ProgressBar) and bar.notebook


def test_a_notebook_without_widgets_gets_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    assert progress_module._in_notebook_with_widgets() is False
    assert isinstance(progress_callback(True), LogLines)


def test_rnnlm_trainer_lines(rng, capsys):
    from timelayers.models import Rnnlm

    corpus = rng.integers(0, 20, 400)
    model = Rnnlm(vocab_size=20, wordvec_size=4, hidden_size=4, rng=0)
    RnnlmTrainer(model, SGD(lr=1.0), max_grad=0.25).fit(
        corpus[:-1], corpus[1:], max_epoch=1, batch_size=2, time_size=5, eval_interval=10)
    err = capsys.readouterr().err
    assert "| epoch 1 | iter 10 / 39 |" in err and "perplexity" in err


def readme_training_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Training in Python", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(find_ptb() is None, reason="the Penn Treebank files are not here")
def test_the_readme_training_snippet_shows_progress_on_a_pipe(tmp_path):
    env = {**os.environ, "TIMELAYERS_DATA": str(find_ptb()), "TIMELAYERS_MAX_ITERS": "3"}
    proc = subprocess.run([sys.executable, "-c", readme_training_snippet()], cwd=tmp_path,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if re.match(r"epoch \d/4:", line)] == [
        "epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"], proc.stderr
    assert float(proc.stdout.split()[-1]) > 1  # the perplexity it prints

"""`timelayers train --cell gru | gru-reset-after`: each GRU form trains, evaluates,
generates and resumes as a run folder, and the folder keeps its form."""

import json

import numpy as np
import pytest

from timelayers.cli import main
from timelayers.models import Model
from support.cli import run

TINY = ["--hidden", 6, "--wordvec", 6, "--batch-size", 2, "--time-size", 5]


@pytest.mark.parametrize("model", ["rnnlm", "better-rnnlm"])
@pytest.mark.parametrize("cell,reset_after", [("gru", False), ("gru-reset-after", True)])
def test_train_eval_generate_resume_with_each_gru_form(tmp_path, corpus_file, capsys, model,
                                                       cell, reset_after):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", model, "--data", corpus_file, "--cell", cell, *TINY,
                         "--epochs", 1, "--out", out_dir)
    assert code == 0, err
    assert json.loads((out_dir / "run.json").read_text())["options"]["cell"] == cell
    saved = Model.load(out_dir / "model.safetensors")
    assert saved.config.cell == cell
    layers = getattr(saved, "rnns", None) or [saved.rnn]
    assert [layer.reset_after for layer in layers] == [reset_after] * len(layers)
    assert all(("bh" in layer.param_names) == reset_after for layer in layers)

    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0, err
    assert 1.0 < float(out.split()[1]) < 100
    code, out, err = run(capsys, "generate", out_dir, "--start", "the", "--length", 5, "--seed", 1)
    assert code == 0 and out.split()[0] == "the", err

    code, out, err = run(capsys, "train", model, "--resume", "--epochs", 2, "--out", out_dir)
    assert code == 0, err
    assert json.loads((out_dir / "history.json").read_text())["epoch"] == [1, 2]
    resumed = Model.load(out_dir / "model.safetensors")
    assert resumed.config.cell == cell
    assert any(not np.array_equal(a, b) for a, b in zip(saved.params, resumed.params))


def test_resume_refuses_a_change_of_gru_form(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--cell", "gru", *TINY,
                       "--epochs", 1, "--no-eval", "--out", out_dir)
    assert code == 0, err
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2,
                       "--cell", "gru-reset-after", "--out", out_dir)
    assert code == 2 and "cell" in err and "start a new run" in err


def test_cell_choices_are_listed_and_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "rnnlm", "--cell", "gru2"])
    assert exc.value.code == 2
    assert "gru-reset-after" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "gru-reset-after" in capsys.readouterr().out

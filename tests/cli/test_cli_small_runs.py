"""Small runs and longer runs on the command line: --max-iters, --checkpoint-every,
Ctrl-C writing a checkpoint that --resume continues to the bit, the per-model
--help, --device cuda."""

import json
import signal

import numpy as np
import pytest

from timelayers.cli import build_parser, main
from timelayers.models import Model
from timelayers.serialization import load_tensors
from timelayers.training import Trainer
from support.cli import run

ARGS = ["--hidden", "8", "--wordvec", "8", "--batch-size", "2", "--time-size", "5"]


def history(folder):
    return json.loads((folder / "history.json").read_text())


def test_max_iters_cuts_the_epochs_and_is_recorded(tmp_path, corpus_file, capsys):
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *ARGS, "--epochs", 2,
                         "--max-iters", 3, "--out", tmp_path / "a")
    assert code == 0, err
    assert history(tmp_path / "a")["iteration"] == [3, 6]
    assert json.loads((tmp_path / "a" / "run.json").read_text())["options"]["max_iters"] == 3
    assert "epoch 1/2: loss" in err  # progress on stderr


def test_max_iters_from_the_environment(tmp_path, corpus_file, capsys, monkeypatch):
    monkeypatch.setenv("TIMELAYERS_MAX_ITERS", "2")
    assert run(capsys, "train", "cbow", "--data", corpus_file, "--hidden", 8, "--window", 2,
               "--batch-size", 16, "--epochs", 1, "--out", tmp_path / "w")[0] == 0
    assert history(tmp_path / "w")["iteration"] == [2]


def interrupt_after(monkeypatch, calls):
    """Send SIGINT (a Ctrl-C) during the ``calls``-th training step."""
    step = Trainer.train_step
    count = [0]

    def train_step(self, *args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            signal.raise_signal(signal.SIGINT)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path, corpus_file, capsys,
                                                        monkeypatch):
    common = ["--data", corpus_file, *ARGS, "--epochs", 2]
    assert run(capsys, "train", "rnnlm", *common, "--out", tmp_path / "a")[0] == 0
    with monkeypatch.context() as m:
        interrupt_after(m, 74)  # epoch 2 (an epoch is 70 iterations), between checkpoints
        code, out, err = run(capsys, "train", "rnnlm", *common, "--checkpoint-every", 7,
                             "--out", tmp_path / "b")
    assert code == 130
    assert ("interrupted (checkpoint" in err and "written at epoch 2, iteration 4 of 70" in err
            and "--resume" in err), err
    assert not (tmp_path / "b" / "model.safetensors").exists()
    code, out, err = run(capsys, "train", "rnnlm", "--resume", "--out", tmp_path / "b")
    assert code == 0, err
    a, b = history(tmp_path / "a"), history(tmp_path / "b")
    for key in ("loss", "val_perplexity", "interval_loss", "iteration"):
        assert a[key] == b[key], key
    ma, mb = (Model.load(tmp_path / x / "model.safetensors") for x in "ab")
    assert all(np.array_equal(p, q) for p, q in zip(ma.params, mb.params))


def test_checkpoint_every_writes_inside_the_epoch(tmp_path, corpus_file, capsys, monkeypatch):
    with monkeypatch.context() as m:
        interrupt_after(m, 16)
        code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *ARGS,
                           "--checkpoint-every", 5, "--out", tmp_path / "c")
    assert code == 130
    tensors, raw = load_tensors(tmp_path / "c" / "checkpoint.safetensors")
    training = json.loads(raw["timelayers"])["training"]
    assert training["epoch_progress"]["iterations"] == 16  # Ctrl-C: after the running one
    assert any(k.startswith("trainer_state.in_epoch.") for k in tensors)


def test_train_help_is_the_models(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "rnnlm", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "usage: timelayers train rnnlm" in out
    assert "(default: 20.0)" in out and "(default: lstm)" in out and "--max-iters" in out
    assert "--reverse" not in out and "--d-model" not in out and "--window" not in out
    with pytest.raises(SystemExit):
        main(["train", "peeky", "--help"])
    out = capsys.readouterr().out
    assert "--reverse" in out and "(default: on)" in out and "--cell" not in out
    assert "--time-size" not in out and "(default: 128)" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "MODEL" in out and "--cell" in out and "--reverse" in out


def test_device_cuda_is_gpu(monkeypatch):
    args = build_parser().parse_args(["train", "rnnlm", "--device", "cuda"])
    assert args.device == "gpu"
    args = build_parser().parse_args(["eval", "x", "--device", "cuda"])
    assert args.device == "gpu"


def test_device_cuda_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIMELAYERS_DEVICE", "cuda")
    code, _, err = run(capsys, "similar", tmp_path / "none", "cat")
    assert "TIMELAYERS_DEVICE" not in err  # accepted; the missing folder is the error


def test_data_writes_the_books_files(tmp_path, capsys):
    from timelayers.datasets import load_sequence, make_addition, make_dates

    for name, make, width in (("addition", make_addition, 12), ("dates", make_dates, 40)):
        out = tmp_path / f"{name}.txt"
        code, printed, err = run(capsys, "data", name, out, "--examples", 50)
        assert code == 0, err
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines == make(50, np.random.default_rng(1984)) and {len(x) for x in lines} == {width}
        (x, t), _, vocab = load_sequence(out)
        assert t[0, 0] == vocab.word_to_id["_"] and f"wrote {out}: 50 " in printed
    code, _, err = run(capsys, "data", "dates", tmp_path / "dates.txt")
    assert code == 2 and "exists; give --force" in err
    assert run(capsys, "data", "dates", tmp_path / "dates.txt", "--examples", 5, "--force")[0] == 0

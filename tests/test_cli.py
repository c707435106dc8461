"""The `timelayers` command, driven as a user would: tiny train runs on real files,
eval, generate, resume, word-vector queries, and the error cases."""

import json
import subprocess
import sys

import numpy as np
import pytest

from timelayers.cli import main
from timelayers.datasets import make_addition, write_sequence

TEXT = "\n".join(["the cat sat on the mat", "the dog sat on the log",
                  "a cat and a dog", "the mat and the log"] * 30) + "\n"


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def addition_file(tmp_path):
    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(600, np.random.default_rng(0)))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_eval_generate_resume_rnnlm(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "lm"
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 8, "--wordvec", 8, "--batch-size", 2, "--time-size", 5,
                         "--out", out_dir)
    assert code == 0, err
    assert "perplexity" in out
    for name in ["run.json", "model.safetensors", "checkpoint.safetensors", "history.json",
                 "metrics.json", "learning_curve.png"]:
        assert (out_dir / name).exists(), name
    history = json.loads((out_dir / "history.json").read_text())
    assert history["epoch"] == [1]

    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0, err
    ppl = float(out.split()[1])
    assert 1.0 < ppl < 100

    code, out, err = run(capsys, "eval", out_dir, "--data", corpus_file)
    assert code == 0 and out.startswith("perplexity"), err

    code, out, err = run(capsys, "generate", out_dir, "--start", "the", "--length", 12, "--seed", 1)
    assert code == 0, err
    # the start word and 12 generated tokens, each <eos> printed as a line break
    assert out.split()[0] == "the" and len(out.split()) + out.count("\n") - 1 == 13, out
    code, out2, _ = run(capsys, "generate", out_dir, "--start", "the", "--length", 12, "--seed", 1)
    assert out2 == out  # reproducible from the seed

    code, out, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", out_dir)
    assert code == 0, err
    history = json.loads((out_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2]


def test_resume_equals_uninterrupted_run(tmp_path, corpus_file, capsys):
    args = ["--data", corpus_file, "--hidden", 8, "--wordvec", 8, "--batch-size", 2,
            "--time-size", 5, "--no-eval"]
    assert run(capsys, "train", "rnnlm", *args, "--epochs", 2, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, "train", "rnnlm", *args, "--epochs", 1, "--out", tmp_path / "b")[0] == 0
    assert run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", tmp_path / "b")[0] == 0
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert ha["loss"] == hb["loss"]


def test_train_seq2seq_on_a_sequence_file(tmp_path, addition_file, capsys):
    out_dir = tmp_path / "s2s"
    code, out, err = run(capsys, "train", "peeky", "--data", addition_file, "--epochs", 1,
                         "--hidden", 16, "--batch-size", 32, "--out", out_dir)
    assert code == 0, err
    assert "accuracy" in out
    code, out, err = run(capsys, "generate", out_dir, "16+75", "2+3", "--beam", 2)
    assert code == 0, err
    lines = out.strip().split("\n")
    assert [line.split("\t")[0] for line in lines] == ["16+75", "2+3"]
    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0 and out.startswith("accuracy"), err
    code, _, err = run(capsys, "generate", out_dir, "1234567890+1")
    assert code == 2 and "longer than" in err


def test_train_cbow_similar_analogy(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "cbow"
    code, out, err = run(capsys, "train", "cbow", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 8, "--window", 2, "--batch-size", 16, "--out", out_dir)
    assert code == 0, err
    code, out, err = run(capsys, "similar", out_dir, "cat", "--top", 3)
    assert code == 0, err
    assert len(out.strip().split("\n")) == 3 and "cat\t" not in out
    code, out, err = run(capsys, "analogy", out_dir, "cat", "dog", "mat")
    assert code == 0, err
    code, out, err = run(capsys, "similar", out_dir, "unicorn")
    assert code == 2 and "unicorn" in err and "Traceback" not in err
    code, out, err = run(capsys, "generate", out_dir)
    assert code == 2 and "similar" in err


@pytest.mark.parametrize("argv,message", [
    (["eval", "no/such/run"], "does not exist"),
    (["train", "rnnlm", "--data", "no/such/file.txt"], "does not exist"),
    (["train", "cbow", "--time-size", "5", "--data", "x"], "does not apply"),
])
def test_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().split("\n")) == 1


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "lm"
    assert run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1, "--hidden", 4,
               "--wordvec", 4, "--batch-size", 2, "--time-size", 5, "--no-eval",
               "--out", out_dir)[0] == 0
    model = out_dir / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-100])
    code, out, err = run(capsys, "eval", out_dir)
    assert code == 2 and "model.safetensors" in err and len(err.strip().split("\n")) == 1


def test_subprocess_help_and_bad_arguments():
    for cmd in ["train", "eval", "generate", "similar", "analogy", "import-book-weights", "demo"]:
        res = subprocess.run([sys.executable, "-m", "timelayers", cmd, "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "usage" in res.stdout, cmd
    res = subprocess.run([sys.executable, "-m", "timelayers", "train", "transformer"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_demo_trains_to_a_run_folder_small(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--examples", 2000, "--epochs", 1, "--hidden", 16,
                         "--target", 0.0, "--out", out_dir)
    assert code == 0, err
    assert "seed check: OK" in out and "test accuracy" in out
    for name in ["model.safetensors", "history.json", "learning_curve.png", "attention.png"]:
        assert (out_dir / name).exists()


def test_data_too_small_for_the_batches_is_a_one_line_error(tmp_path, corpus_file, capsys):
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 4, "--wordvec", 4, "--batch-size", 500, "--time-size", 5,
                         "--out", tmp_path / "lm")
    assert code == 2 and "tiny.txt" in err and "2501" in err
    assert len(err.strip().split("\n")) == 1


def test_a_bug_shows_its_traceback(monkeypatch, tmp_path, corpus_file):
    from timelayers import recipes

    def broken(*args, **kwargs):
        raise KeyError("an internal bug")

    monkeypatch.setattr(recipes, "train", broken)
    with pytest.raises(KeyError, match="an internal bug"):
        main(["train", "rnnlm", "--data", str(corpus_file), "--out", str(tmp_path / "lm")])


def test_version_comes_from_one_source(capsys):
    import importlib.metadata

    import timelayers

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"timelayers {timelayers.__version__}"
    assert importlib.metadata.version("timelayers") == timelayers.__version__


def _has_gpu():
    from timelayers.backend import cupy_available

    return cupy_available()


@pytest.mark.skipif(_has_gpu(), reason="checks the error of a machine without CuPy or a GPU")
def test_device_gpu_without_cupy_is_a_one_line_error(tmp_path, corpus_file, capsys, monkeypatch):
    out_dir = tmp_path / "lm"
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 4, "--wordvec", 4, "--batch-size", 2, "--time-size", 5,
                         "--out", out_dir, "--device", "gpu")
    assert code == 2 and "CuPy" in err and len(err.strip().split("\n")) == 1
    assert not out_dir.exists()  # checked before anything is written
    assert run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1, "--hidden", 4,
               "--wordvec", 4, "--batch-size", 2, "--time-size", 5, "--no-eval",
               "--out", out_dir, "--device", "cpu")[0] == 0
    monkeypatch.setenv("TIMELAYERS_DEVICE", "gpu")
    for argv in (["eval", out_dir], ["generate", out_dir, "--start", "the"],
                 ["similar", out_dir, "the"], ["analogy", out_dir, "a", "b", "c"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and "CuPy" in err and len(err.strip().split("\n")) == 1, argv
    code, out, err = run(capsys, "eval", out_dir, "--device", "cpu")  # the flag wins
    assert code == 0 and out.startswith("perplexity"), err


def test_device_must_be_cpu_or_gpu(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TIMELAYERS_DEVICE", "tpu")
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path)])
    assert exc.value.code == 2
    assert "TIMELAYERS_DEVICE" in capsys.readouterr().err

"""The `timelayers` command, driven as a user would: tiny train runs on real files,
eval, generate, resume, word-vector queries, and the error cases."""

import json
import subprocess
import sys

import numpy as np
import pytest

from timelayers.cli import main
from support.devices import needs_cupy
from support.cli import TINY_LM, run


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
    assert "TimeAffine check: OK" in out and "test accuracy" in out
    for name in ["model.safetensors", "history.json", "learning_curve.png", "attention.png"]:
        assert (out_dir / name).exists()


def test_data_too_small_for_the_batches_is_a_one_line_error(tmp_path, corpus_file, capsys):
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 4, "--wordvec", 4, "--batch-size", 500, "--time-size", 5,
                         "--out", tmp_path / "lm")
    assert code == 2 and "tiny.txt" in err and "2501" in err
    assert len(err.strip().split("\n")) == 1


def test_a_bug_shows_its_traceback(monkeypatch, tmp_path, corpus_file):
    from timelayers.runs import recipes

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


# -- run folders: never two runs mixed, the saved vocabulary and data, options checked --------
# (lm_run: a tiny finished rnnlm run, from tests/conftest.py)


def test_training_into_a_run_needs_resume_or_force(lm_run, corpus_file, capsys):
    before = {p.name: p.read_bytes() for p in lm_run.iterdir()}
    (lm_run / "notes.txt").write_text("mine")
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                         "--hidden", 6, "--out", lm_run)
    assert code == 2 and "already holds a run" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in lm_run.iterdir() if p.name != "notes.txt"} == before
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                         "--hidden", 6, "--out", lm_run, "--force")
    assert code == 0, err
    assert json.loads((lm_run / "run.json").read_text())["options"]["hidden_size"] == 6
    assert (lm_run / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_force_keeps_the_old_run_when_the_new_one_cannot_start(lm_run, corpus_file, capsys):
    before = (lm_run / "model.safetensors").read_bytes()
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                       "--batch-size", 500, "--out", lm_run, "--force")
    assert code == 2 and "fewer than" in err
    assert (lm_run / "model.safetensors").read_bytes() == before


def test_a_new_run_stopped_half_way_is_never_paired_with_the_old_model(lm_run, corpus_file,
                                                                        capsys):
    from timelayers.runs import recipes

    def stop(trainer, event, info):
        if event == "iteration_end":
            raise KeyboardInterrupt  # a kill in the first epoch

    with pytest.raises(KeyboardInterrupt):
        recipes.train("rnnlm", lm_run, data=corpus_file, force=True, progress=False,
                      callbacks=[stop], overrides=dict(epochs=1, hidden_size=6, wordvec_size=4,
                                                       batch_size=2, time_size=5))
    assert json.loads((lm_run / "run.json").read_text())["options"]["hidden_size"] == 6
    code, _, err = run(capsys, "eval", lm_run)
    assert code == 2 and "did training finish" in err


def test_eval_and_resume_refuse_a_changed_data_file(lm_run, corpus_file, capsys):
    corpus_file.write_text(corpus_file.read_text() + "a unicorn\n")
    code, _, err = run(capsys, "eval", lm_run)
    assert code == 2 and "has changed" in err and "tiny.txt" in err and "--data" in err
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", lm_run)
    assert code == 2 and "has changed" in err
    code, _, err = run(capsys, "eval", lm_run, "--data", corpus_file)
    assert code == 2 and "1 words (1 distinct: 'unicorn')" in err and "vocabulary of" in err
    assert len(err.strip().split("\n")) == 1


def test_eval_on_new_data_uses_the_saved_vocabulary(lm_run, tmp_path, corpus_file, capsys):
    own = float(run(capsys, "eval", lm_run)[1].split()[1])
    other = tmp_path / "other.txt"  # words first met in another order: other ids if rebuilt
    other.write_text("log dog mat cat on sat and a the\n" + corpus_file.read_text())
    code, out, err = run(capsys, "eval", lm_run, "--data", other)
    assert code == 0, err
    assert abs(float(out.split()[1]) - own) < 0.2 * own


def test_resume_applies_lr_and_epochs_and_refuses_other_changes(lm_run, capsys):
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--hidden", 16,
                       "--out", lm_run)
    assert code == 2 and "hidden_size=16" in err and "start a new run" in err
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--lr", 5,
                       "--out", lm_run)
    assert code == 0, err
    info = json.loads((lm_run / "run.json").read_text())
    assert info["options"]["lr"] == 5 and info["options"]["epochs"] == 2
    assert info["resumed"] == [{"after_epoch": 1, "changed": {"epochs": [1, 2], "lr": [20.0, 5]}}]
    assert json.loads((lm_run / "history.json").read_text())["lr"] == [20.0, 5]


@pytest.mark.parametrize("argv,flag", [
    (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--max-grad", "-0.25"], "--max-grad"), (["--max-grad", "0"], "--max-grad"),
    (["--hidden", "0"], "--hidden"), (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"), (["--time-size", "0"], "--time-size"),
    (["--dropout", "1"], "--dropout"), (["--seed", "-1"], "--seed"),
])
def test_train_options_out_of_range_are_refused(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "better-rnnlm", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {flag}: expected a" in err


@pytest.mark.parametrize("argv", [["generate", "RUN", "--beam", "0"],
                                  ["generate", "RUN", "--length", "-5"],
                                  ["generate", "RUN", "--temperature", "inf"],
                                  ["similar", "RUN", "cat", "--top", "0"]])
def test_use_options_out_of_range_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "expected a" in capsys.readouterr().err


def test_python_api_checks_options_too(tmp_path, corpus_file):
    from timelayers.runs import recipes
    from timelayers.errors import OptionError

    for bad in (dict(lr=-1.0), dict(max_grad=0.0), dict(hidden_size=0), dict(epochs=1.5)):
        with pytest.raises(OptionError):
            recipes.train("rnnlm", tmp_path / "x", data=corpus_file, overrides=bad)
    assert not (tmp_path / "x").exists()


def test_unknown_words_name_the_word_and_the_vocabulary(lm_run, tmp_path, corpus_file, capsys):
    code, _, err = run(capsys, "generate", lm_run, "--start", "xyzzy")
    assert code == 2 and "word 'xyzzy' is not in the run's vocabulary of 10 words" in err
    out_dir = tmp_path / "cbow"
    assert run(capsys, "train", "cbow", "--data", corpus_file, "--epochs", 1, "--hidden", 4,
               "--window", 1, "--batch-size", 16, "--out", out_dir)[0] == 0
    code, _, err = run(capsys, "analogy", out_dir, "cat", "dog", "qqqq")
    assert code == 2 and "word 'qqqq' is not in the run's vocabulary of 10 words" in err


@pytest.mark.parametrize("edit,message", [
    (lambda info: [info], "expected a JSON object, got a list"),
    (lambda info: {**info, "options": {**info["options"], "time_size": "5"}}, "'time_size'"),
    (lambda info: {**info, "seed": -3}, "'seed'"),
    (lambda info: {k: v for k, v in info.items() if k != "options"}, "'options' is missing"),
    (lambda info: {**info, "recipe": "transformer"}, "'transformer'"),
    (lambda info: {**info, "recipe": "cbow"}, "recipe 'cbow' has no option(s)"),
    (lambda info: {**info, "recipe": "better-rnnlm"}, "needs a BetterRnnlm"),
])
def test_a_bad_run_json_is_a_one_line_error(lm_run, capsys, edit, message):
    path = lm_run / "run.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    for argv in (["eval", lm_run], ["generate", lm_run]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().split("\n")) == 1, err


@needs_cupy
def test_device_gpu_runs_load_on_the_cpu(tmp_path, corpus_file, addition_file, capsys):
    lm = tmp_path / "lm"
    assert run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM, "--out", lm,
               "--device", "gpu")[0] == 0
    gpu = run(capsys, "eval", lm, "--device", "gpu")[1]
    cpu = run(capsys, "eval", lm, "--device", "cpu")[1]
    assert abs(float(gpu.split()[1]) - float(cpu.split()[1])) < 1e-3 * float(cpu.split()[1])
    code, out, err = run(capsys, "generate", lm, "--start", "the", "--length", 5, "--device", "gpu")
    assert code == 0 and out.split()[0] == "the", err
    assert run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", lm,
               "--device", "gpu")[0] == 0
    s2s = tmp_path / "s2s"
    assert run(capsys, "train", "attention", "--data", addition_file, "--epochs", 1,
               "--hidden", 16, "--batch-size", 32, "--out", s2s, "--device", "gpu")[0] == 0
    code, out, err = run(capsys, "generate", s2s, "16+75", "--beam", 2, "--device", "gpu")
    assert code == 0 and out.startswith("16+75\t"), err
    cbow = tmp_path / "cbow"
    assert run(capsys, "train", "cbow", "--data", corpus_file, "--epochs", 1, "--hidden", 4,
               "--window", 1, "--batch-size", 16, "--out", cbow, "--device", "gpu")[0] == 0
    code, out, err = run(capsys, "similar", cbow, "cat", "--device", "gpu")
    assert code == 0 and len(out.strip().split("\n")) == 5, err


# -- every bad argument: one line naming it, exit status 2, checked before anything runs -----
def test_parse_errors_are_one_line_without_the_usage_block(capsys):
    for argv in (["train", "rnnlm", "--epochs", "0"], ["train", "rnnlm", "--cell", "gru2"],
                 ["generate"], ["nonsense"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and len(err.strip().split("\n")) == 1, err
        assert err.startswith("timelayers") and "error:" in err and "usage" not in err
    main_err = subprocess.run([sys.executable, "-m", "timelayers", "train", "rnnlm", "--lr", "nan"],
                              capture_output=True, text=True)
    assert main_err.returncode == 2 and main_err.stderr.count("\n") == 1
    assert "argument --lr: expected a non-negative finite number, got 'nan'" in main_err.stderr


@pytest.mark.parametrize("argv,message", [
    (["train", "rnnlm", "--data", "{dir}"], "--data: data file '{dir}' is a folder, not a file"),
    (["eval", "{lm}", "--data", "{dir}"], "--data: data file '{dir}' is a folder, not a file"),
    (["train", "rnnlm", "--data", "{corpus}", "--out", "{corpus}"],
     "--out: run folder '{corpus}' is a file, not a folder"),
    (["train", "rnnlm", "--data", "{corpus}", "--out", ""], "--out: run folder expected the path"),
    (["train", "rnnlm", "--resume", "--out", "{corpus}"], "is a file, not a folder"),
    (["eval", "{corpus}"], "run folder '{corpus}' is a file, not a folder"),
    (["demo", "--out", "{corpus}"], "--out: run folder '{corpus}' is a file, not a folder"),
    (["import-book-weights", "rnnlm", "{corpus}", "{dir}"],
     "OUT: checkpoint file '{dir}' is a folder, not a file"),
    (["import-book-weights", "rnnlm", "{corpus}", "{corpus}", "--run-folder"],
     "OUT: run folder '{corpus}' is a file, not a folder"),
])
def test_paths_of_the_wrong_kind_are_named(lm_run, corpus_file, capsys, argv, message):
    names = {"{dir}": str(corpus_file.parent), "{lm}": str(lm_run), "{corpus}": str(corpus_file)}
    for key, value in names.items():
        argv = [a.replace(key, value) for a in argv]
        message = message.replace(key, value)
    before = sorted(p.name for p in corpus_file.parent.iterdir())
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().split("\n")) == 1, err
    assert out == "" and sorted(p.name for p in corpus_file.parent.iterdir()) == before


@pytest.mark.parametrize("model,data", [("peeky", "addition_file"), ("cbow", "corpus_file"),
                                        ("better-rnnlm", "corpus_file")])
def test_no_eval_where_validation_is_not_optional_is_refused(tmp_path, request, capsys, model,
                                                             data):
    # word vectors never validate, and the learning rates of peeky and better-rnnlm follow
    # the validation measure (better-rnnlm failed with a KeyError after the first epoch)
    code, _, err = run(capsys, "train", model, "--data", request.getfixturevalue(data),
                       "--no-eval", "--epochs", 1, "--out", tmp_path / "run")
    assert code == 2 and f"--no-eval does not apply to {model}" in err
    assert not (tmp_path / "run").exists()


def test_seq2seq_without_validation_trains_on_every_training_line(tmp_path, addition_file,
                                                                 capsys):
    # as the book's ch07/ch08 scripts do: the 5% a seq2seq run holds out for validation
    # is trained on instead, and there is no val_accuracy
    from timelayers.runs import recipes

    recipe = recipes.RECIPES["seq2seq"]
    options = {**recipe.model_args, **recipe.train_args}
    held = recipes.load_data(recipe, addition_file, options, seed=0)
    every = recipes.load_data(recipe, addition_file, dict(options, eval_valid=False), seed=0)
    assert len(held.train[0]) == 513 and len(held.valid[0]) == 27  # 540 training lines
    assert len(every.train[0]) == 540 and len(every.valid[0]) == 0
    assert np.array_equal(every.train[0][:513], held.train[0])
    assert np.array_equal(every.train[0][513:], held.valid[0])
    assert np.array_equal(every.test[0], held.test[0])

    out_dir = tmp_path / "s2s"
    code, out, err = run(capsys, "train", "seq2seq", "--data", addition_file, "--epochs", 1,
                         "--hidden", 8, "--batch-size", 32, "--no-eval", "--out", out_dir)
    assert code == 0, err
    history = json.loads((out_dir / "history.json").read_text())
    assert history["iteration"] == [540 // 32] and "val_accuracy" not in history
    assert json.loads((out_dir / "run.json").read_text())["options"]["eval_valid"] is False
    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0 and out.startswith("accuracy"), err
    from timelayers.errors import OptionError

    with pytest.raises(OptionError, match="eval_valid"):  # it stops on the validation accuracy
        recipes.train("seq2seq", tmp_path / "t", data=addition_file, target_accuracy=0.5,
                      overrides=dict(eval_valid=False, epochs=1))
    assert not (tmp_path / "t").exists()


def test_python_api_refuses_eval_valid_where_it_means_nothing(tmp_path, corpus_file):
    from timelayers.runs import recipes
    from timelayers.errors import OptionError

    with pytest.raises(OptionError, match="eval_valid"):
        recipes.train("better-rnnlm", tmp_path / "x", data=corpus_file,
                      overrides=dict(eval_valid=False, epochs=1))
    assert not (tmp_path / "x").exists()


def test_generate_options_of_the_other_kind_of_run_are_refused(lm_run, tmp_path, addition_file,
                                                               capsys):
    s2s = tmp_path / "s2s"
    assert run(capsys, "train", "seq2seq", "--data", addition_file, "--epochs", 1, "--hidden", 4,
               "--batch-size", 32, "--out", s2s)[0] == 0
    for argv, message in [(["generate", lm_run, "--beam", 3], "--beam does not apply to rnnlm run"),
                          (["generate", s2s, "1+2", "--temperature", 0.5],
                           "--temperature does not apply to seq2seq run"),
                          (["generate", s2s, "1+2", "--seed", 1], "--seed does not apply"),
                          (["generate", s2s, "1+2", "--start", "the"], "--start does not apply")]:
        code, out, err = run(capsys, *argv)
        assert code == 2 and message in err and out == "", err
    code, out, err = run(capsys, "generate", s2s, "1+2", "--beam", 2)
    assert code == 0 and out.startswith("1+2\t"), err


def test_demo_training_options_with_check_only_are_refused(capsys):
    code, out, err = run(capsys, "demo", "--check-only", "--epochs", 5)
    assert code == 2 and "--epochs does not apply to --check-only" in err
    assert "TimeAffine check" not in out


def test_force_keeps_the_old_run_when_the_model_cannot_be_built(lm_run, corpus_file, capsys):
    before = {p.name: p.read_bytes() for p in lm_run.iterdir()}
    code, _, err = run(capsys, "train", "transformer-lm", "--data", corpus_file, "--d-model", 10,
                       "--heads", 4, "--time-size", 5, "--batch-size", 2, "--out", lm_run,
                       "--force")
    assert code == 2 and "num_heads" in err
    assert {p.name: p.read_bytes() for p in lm_run.iterdir()} == before


def test_word_vectors_check_the_test_split_before_training(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "cbow"  # 702 training words fit window 100, the 78 test words do not
    code, out, err = run(capsys, "train", "cbow", "--data", corpus_file, "--epochs", 1,
                         "--hidden", 4, "--window", 100, "--batch-size", 16, "--out", out_dir)
    assert code == 2 and "the test split has 78 words, fewer than the 201" in err
    assert len(err.strip().split("\n")) == 1 and not out_dir.exists()


def test_resuming_a_finished_run_without_more_epochs_is_refused(lm_run, capsys, recwarn):
    code, out, err = run(capsys, "train", "rnnlm", "--resume", "--out", lm_run)
    assert code == 2 and "already trained 1 epochs" in err and "give more epochs" in err
    # a run stopped after its last checkpoint, before its metrics, resumes to finish them
    (lm_run / "metrics.json").unlink()
    code, out, err = run(capsys, "train", "rnnlm", "--resume", "--out", lm_run)
    assert code == 0 and out.startswith("perplexity") and err == "", err
    assert (lm_run / "metrics.json").exists()
    assert not [w for w in recwarn if "nothing to train" in str(w.message)]


def test_running_out_of_memory_is_a_one_line_error(monkeypatch, tmp_path, corpus_file, capsys):
    from timelayers.runs import recipes

    def huge(*args, **kwargs):
        raise MemoryError("Unable to allocate 284. PiB for an array with shape (100, 10**15)")

    monkeypatch.setattr(recipes, "train", huge)
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, "--out", tmp_path / "lm")
    assert code == 2 and "out of memory: Unable to allocate 284. PiB" in err
    assert len(err.strip().split("\n")) == 1


def test_a_bad_device_variable_is_named(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TIMELAYERS_DEVICE", "GPU")
    with pytest.raises(SystemExit) as exc:
        main(["similar", str(tmp_path), "cat"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().split("\n")) == 1
    assert "$TIMELAYERS_DEVICE expected cpu, gpu or cuda (or unset: cpu), got 'GPU'" in err


def test_analogy_method_flag(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "cbow"
    assert run(capsys, "train", "cbow", "--data", corpus_file, "--epochs", 1, "--hidden", 8,
               "--window", 2, "--batch-size", 16, "--out", out_dir)[0] == 0
    from timelayers.runs import recipes
    from timelayers.text import analogy

    model = recipes.load_run(out_dir).model
    for method in ("3cosadd", "3cosmul", "book"):
        code, out, err = run(capsys, "analogy", out_dir, "cat", "dog", "mat", "--method", method,
                             "--top", 3)
        assert code == 0, err
        want = analogy("cat", "dog", "mat", model.vocab, model.word_vecs, top=3, method=method)
        assert out == "".join(f"{w}\t{s:.4f}\n" for w, s in want)
    with pytest.raises(SystemExit) as info:
        run(capsys, "analogy", out_dir, "cat", "dog", "mat", "--method", "cos")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--method" in err and len(err.strip().split("\n")) == 1

"""Recipes through their public API: task objects, the data seed, run folders."""

import json

import numpy as np
import pytest

from timelayers import OptionError
from timelayers.runs import recipes


def test_every_recipe_has_a_task_object_with_a_trainer():
    for recipe in recipes.RECIPES.values():
        assert recipe.task is recipes.TASKS[recipe.task.name]
        assert callable(recipe.task.trainer_class().fit)


def test_generated_data_does_not_depend_on_the_run_seed():
    recipe = recipes.RECIPES["seq2seq"]
    a = recipes.load_data(recipe, None, {"examples": 200}, seed=5)
    b = recipes.load_data(recipe, None, {"examples": 200}, seed=7)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    np.testing.assert_array_equal(a.test[1], b.test[1])


def test_a_sequence_file_is_shuffled_with_the_run_seed(tmp_path):
    from timelayers.datasets import make_addition, write_sequence

    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(200, np.random.default_rng(0)))
    recipe = recipes.RECIPES["seq2seq"]
    a = recipes.load_data(recipe, path, {}, seed=5)
    b = recipes.load_data(recipe, path, {}, seed=7)
    assert not np.array_equal(a.train[0], b.train[0])


def test_language_model_fit_inputs_are_the_shifted_corpus(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("a b c d\n" * 20)
    recipe = recipes.RECIPES["rnnlm"]
    data = recipes.load_data(recipe, path, {}, seed=0)
    (x, t), extra = recipe.task.fit_inputs({"time_size": 5}, data)
    np.testing.assert_array_equal(x[1:], t[:-1])
    assert extra == {"time_size": 5}


def test_a_text_corpus_may_start_with_a_byte_order_mark(tmp_path):
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_text("the cat sat\n", encoding="utf-8")
    marked.write_text("the cat sat\n", encoding="utf-8-sig")
    a, vocab_a = recipes.read_text_corpus(plain)
    b, vocab_b = recipes.read_text_corpus(marked)
    np.testing.assert_array_equal(a, b)
    assert vocab_a == vocab_b


def test_a_corpus_that_is_not_utf8_is_a_data_error_naming_the_file(tmp_path):
    from timelayers.errors import DataError

    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt"):
        recipes.read_text_corpus(path)


def test_a_seq2seq_run_validates_on_held_out_training_lines():
    recipe = recipes.RECIPES["peeky"]
    data = recipes.load_data(recipe, None, {"examples": 400, "reverse": True}, seed=0)
    whole = len(data.train[0]) + len(data.valid[0])
    assert len(data.valid[0]) == whole // 20 and len(data.test[0]) == 40
    questions = lambda split: {tuple(q) for q in split[0]}  # noqa: E731
    assert not questions(data.valid) & questions(data.test)
    assert not questions(data.valid) & questions(data.train)


def test_peeky_halves_its_rate_when_the_validation_accuracy_stalls(tmp_path):
    from timelayers.datasets import make_addition, write_sequence

    path = tmp_path / "addition.txt"
    write_sequence(path, make_addition(400, np.random.default_rng(0)))
    run = recipes.train("peeky", tmp_path / "run", data=path,
                        overrides={"epochs": 3, "hidden_size": 8, "lr": 1e-9}, seed=0)
    # a rate too small to learn: the accuracy after epoch 2 does not beat epoch 1's,
    # so epoch 3 runs at half the rate (each epoch's entry is the rate it ran at)
    assert run.history["val_accuracy"][1] <= run.history["val_accuracy"][0]
    assert run.history["lr"] == [1e-9, 1e-9, 5e-10]
    assert "val_accuracy" in run.history


@pytest.mark.parametrize("recipe", ["seq2seq", "attention", "peeky"])
def test_a_seq2seq_recipe_keeps_its_schedule_unless_given_a_warmup(tmp_path, recipe):
    from timelayers.datasets import make_addition, make_dates, write_sequence

    make = make_dates if recipe == "attention" else make_addition
    path = tmp_path / "data.txt"
    write_sequence(path, make(300, np.random.default_rng(0)))
    small = {"epochs": 3, "hidden_size": 8, "wordvec_size": 4, "batch_size": 32}
    constant = recipes.train(recipe, tmp_path / "constant", data=path, overrides=small,
                             seed=0, progress=False)
    if recipe != "peeky":                          # peeky: its plateau schedule (above)
        assert constant.history["lr"] == [0.001] * 3
    assert json.loads((tmp_path / "constant" / "run.json").read_text())["options"]["warmup"] \
        is None
    decayed = recipes.train(recipe, tmp_path / "decayed", data=path,
                            overrides={**small, "warmup": 0}, seed=0, progress=False)
    lr = decayed.history["lr"]  # each epoch's first iteration's rate, along half a cosine
    assert lr[0] == pytest.approx(0.001, rel=1e-2) and lr[0] > lr[1] > lr[2] > 0
    assert lr[2] < lr[0] / 4                      # into the last third of the curve


def test_better_rnnlm_takes_no_warmup(tmp_path):
    with pytest.raises(OptionError, match="option 'warmup' does not apply to better-rnnlm"):
        recipes.train("better-rnnlm", tmp_path / "run", overrides={"warmup": 0})


@pytest.mark.parametrize("kwargs, message", [
    (dict(overrides={"hidden_size": 8}), "option 'hidden_size' does not apply to transformer-lm"),
    (dict(resume=True, data="x.txt"), "argument 'resume' continues with the run's own data; "
                                      "drop argument 'data'"),
    (dict(resume=True, force=True), "argument 'force' replaces it: give one"),
])
def test_a_training_request_is_checked_once_for_every_caller(tmp_path, kwargs, message):
    """The rules the command line's flags obey, in the Python API's words (the command
    line passes its flags as names: tests/cli)."""
    with pytest.raises(OptionError, match=message):
        recipes.train("transformer-lm", tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()

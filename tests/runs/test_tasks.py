"""What each recipe's task knows (timelayers.runs.tasks): its splits, what the
trainer is fed, and the data it refuses, on small files. (The recipes that use
them are tested in test_recipes.py and through the command line in tests/cli/.)"""

import numpy as np
import pytest

from timelayers import DataError
from timelayers.runs import recipes
from timelayers.runs.tasks import TASKS, VALIDATION_SHARE_INVERSE, read_text_corpus


def test_a_text_corpus_is_split_90_10_by_position(corpus_file):
    ids, vocab = read_text_corpus(corpus_file)
    data = TASKS["lm"].load(recipes.get_recipe("rnnlm"), corpus_file, {}, seed=0)
    cut = int(len(ids) * 0.9)
    np.testing.assert_array_equal(data.train, ids[:cut])
    np.testing.assert_array_equal(data.test, ids[cut:])
    assert data.vocab == vocab and "<eos>" in vocab


def test_the_language_model_task_feeds_the_next_word(corpus_file):
    task = TASKS["lm"]
    data = task.load(recipes.get_recipe("rnnlm"), corpus_file, {}, seed=0)
    options = {"batch_size": 4, "time_size": 5}
    (x, t), extra = task.fit_inputs(options, data)
    np.testing.assert_array_equal(x[1:], t[:-1])
    assert extra == {"time_size": 5}
    assert task.iterations_per_epoch(options, data) == (len(data.train) - 1) // 20
    with pytest.raises(DataError, match=r"tiny.txt: the training split has \d+ tokens, fewer than the 2001"):
        task.check_sizes({"batch_size": 4, "time_size": 500}, data, str(corpus_file))


def test_the_word_vector_task_feeds_contexts_and_targets(corpus_file):
    task = TASKS["word2vec"]
    data = task.load(recipes.get_recipe("cbow"), corpus_file, {}, seed=0)
    (contexts, target), _ = task.fit_inputs({"window_size": 2}, data)
    assert contexts.shape == (len(data.train) - 4, 4) and target.shape == (len(data.train) - 4,)
    np.testing.assert_array_equal(target, data.train[2:-2])
    np.testing.assert_array_equal(contexts[:, 0], data.train[:-4])
    with pytest.raises(DataError, match="fewer than the 2001 that window_size 1000 needs"):
        task.check_sizes({"window_size": 1000, "batch_size": 1}, data, "tiny")


def test_the_seq2seq_task_holds_out_validation_and_reverses(addition_file):
    task, recipe = TASKS["seq2seq"], recipes.get_recipe("peeky")
    plain = task.load(recipe, addition_file, {}, seed=3)
    n_train = len(plain.train[0]) + len(plain.valid[0])
    assert len(plain.valid[0]) == n_train // VALIDATION_SHARE_INVERSE
    reversed_ = task.load(recipe, addition_file, {"reverse": True}, seed=3)
    np.testing.assert_array_equal(reversed_.train[0], plain.train[0][:, ::-1])
    np.testing.assert_array_equal(reversed_.train[1], plain.train[1])
    everything = task.load(recipe, addition_file, {"eval_valid": False}, seed=3)
    assert len(everything.train[0]) == n_train and len(everything.valid[0]) == 0
    assert task.validation({"eval_valid": False}, everything) is None
    x, t = plain.test
    assert task.run_info(plain) == {"shape": [x.shape[1], t.shape[1] - 1]}
    with pytest.raises(DataError, match="longer than the model's max_len 3"):
        task.check_sizes({"max_len": 3, "batch_size": 1}, plain, "addition.txt")


def test_a_run_s_vocabulary_must_match_its_data(addition_file):
    task, recipe = TASKS["seq2seq"], recipes.get_recipe("peeky")
    data = task.load(recipe, addition_file, {}, seed=0)
    other = task.load(recipe, None, {"examples": 200}, seed=0)   # the generated addition data
    assert other.vocab == task.load(recipe, None, {"examples": 200}, seed=0,
                                    vocab=other.vocab).vocab
    if data.vocab != other.vocab:
        with pytest.raises(DataError, match="does not match the run's vocabulary"):
            task.load(recipe, None, {"examples": 200}, seed=0, vocab=data.vocab)

"""The tasks a recipe trains for: what each knows about its data, its trainer's
inputs and its measures.

:class:`LanguageModelTask` (next word, perplexity), :class:`WordVectorTask`
(word2vec with negative sampling, test loss) and :class:`Seq2seqTask` (question ->
answer, exact-match accuracy). :mod:`timelayers.runs.recipes` pairs each recipe with one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, excerpt
from ..datasets import load_addition, load_dates, load_ptb, load_sequence, reverse_questions
from ..datasets.textfile import read_utf8
from ..metrics import perplexity, sequence_accuracy
from ..text import create_contexts_target
from ..training import RnnlmTrainer, Trainer
from ..vocab import Vocabulary

__all__ = ["TaskData", "Task", "LanguageModelTask", "WordVectorTask", "Seq2seqTask", "TASKS",
           "GENERATED_DATA_SEED", "read_text_corpus"]


GENERATED_DATA_SEED = 1984
"""Seed of the data a recipe generates itself (addition, dates): the same for every
run, whatever the run's seed, so that runs with different seeds share one test set.
A data file given by the user is shuffled with the run's seed instead."""


@dataclass
class TaskData:
    """Data of one task. LM and word2vec: ``train``/``valid``/``test`` are 1-D id
    arrays; seq2seq: ``(x, t)`` pairs of ``(N, Tq)`` / ``(N, 1 + Ta)`` id arrays
    (questions already reversed when the run uses the reversed-input trick)."""

    train: object
    valid: object
    test: object
    vocab: object


class Task:
    """What a recipe's task knows: how to load its data, what the trainer is fed,
    what is measured after each epoch and on the test split."""

    name = ""
    monitor = ("val_perplexity", "min")
    """The validation measure a plateau schedule watches, and its better direction."""

    def load(self, recipe, source, options, seed, vocab=None) -> TaskData:
        """The data of ``recipe``: its default when ``source`` is None, else the file
        ``source``; ``seed`` is the run's seed; ``vocab`` (a trained run's) encodes it."""
        raise NotImplementedError

    def model_kwargs(self, data: TaskData) -> dict:
        """Constructor arguments the model takes from the data."""
        return {}

    def trainer_class(self):
        return Trainer

    def fit_inputs(self, options, data: TaskData):
        """``((x, t), extra)``: the trainer's inputs and its extra ``fit`` arguments."""
        return data.train, {}

    def check_sizes(self, options, data: TaskData, where, training=True) -> None:
        """Raise :class:`DataError` naming ``where`` (the data's source) when the data
        is too small for the options: the training split (when ``training``) for one
        batch, the test split for one evaluation."""
        if training:
            (x, _), _ = self.fit_inputs(options, data)
            if len(x) < options["batch_size"]:
                raise DataError(f"{where}: {len(x)} training examples are fewer than "
                                f"batch_size {options['batch_size']}")

    def iterations_per_epoch(self, options, data: TaskData) -> int:
        """How many training steps an epoch makes (what a per-iteration schedule counts)."""
        (x, _), _ = self.fit_inputs(options, data)
        return len(x) // options["batch_size"]

    def validation(self, options, data: TaskData):
        """The ``eval_fn`` run after each epoch (model -> dict of metrics), or None."""
        return None

    def run_info(self, data: TaskData) -> dict:
        """What ``run.json`` records about the data besides its source."""
        return {}

    def test_metrics(self, model, options, data: TaskData) -> dict:
        raise NotImplementedError


class _CorpusTask(Task):
    """Tasks over one stream of word ids: PTB, or a text file split 90/10 by position."""

    def load(self, recipe, source, options, seed, vocab=None) -> TaskData:
        if source is None:
            train, ptb_vocab = load_ptb("train")
            valid, _ = load_ptb("valid")
            test, _ = load_ptb("test")
            return TaskData(train, valid, test, _same_vocabulary(vocab, ptb_vocab, "PTB"))
        ids, vocab = read_text_corpus(source, vocab, grow=vocab is None)
        cut = max(1, int(len(ids) * 0.9))
        return TaskData(ids[:cut], ids[cut:], ids[cut:], vocab)


_EVAL_BATCH = 10  # streams of the validation and test perplexity


class LanguageModelTask(_CorpusTask):
    """Next-word prediction with truncated BPTT; measured by perplexity."""

    name = "lm"

    def trainer_class(self):
        return RnnlmTrainer

    def check_sizes(self, options, data, where, training=True):
        time_size = options["time_size"]
        splits = [("test", data.test, _EVAL_BATCH)]
        if training:
            splits.insert(0, ("training", data.train, options["batch_size"]))
            if options.get("eval_valid", True):
                splits.insert(1, ("validation", data.valid, _EVAL_BATCH))
        for split, ids, streams in splits:
            if len(ids) < streams * time_size + 1:
                raise DataError(f"{where}: the {split} split has {len(ids)} tokens, fewer than the "
                                f"{streams * time_size + 1} that {streams} streams x time_size "
                                f"{time_size} need")

    def fit_inputs(self, options, data):
        return (data.train[:-1], data.train[1:]), dict(time_size=options["time_size"])

    def iterations_per_epoch(self, options, data):
        return (len(data.train) - 1) // (options["batch_size"] * options["time_size"])

    def validation(self, options, data):
        if not options.get("eval_valid", True):
            return None

        return lambda model: {"val_perplexity": perplexity(model, data.valid,
                                                           batch_size=_EVAL_BATCH,
                                                           time_size=options["time_size"])}

    def test_metrics(self, model, options, data):
        return {"perplexity": perplexity(model, data.test, batch_size=_EVAL_BATCH,
                                         time_size=options["time_size"])}


class WordVectorTask(_CorpusTask):
    """word2vec with negative sampling; measured by the loss on the test split
    (negative samples drawn with a fixed seed)."""

    name = "word2vec"

    def model_kwargs(self, data):
        return {"corpus": data.train}

    def fit_inputs(self, options, data):
        return create_contexts_target(data.train, options["window_size"]), {}

    def check_sizes(self, options, data, where, training=True):
        window = options["window_size"]
        splits = [("training", data.train)] if training else []
        for split, ids in splits + [("test", data.test)]:  # the test loss too, before training
            if len(ids) < 2 * window + 1:
                raise DataError(f"{where}: the {split} split has {len(ids)} words, fewer than the "
                                f"{2 * window + 1} that window_size {window} needs "
                                f"(2 * window_size + 1)")
        super().check_sizes(options, data, where, training)

    def test_metrics(self, model, options, data):
        contexts, target = create_contexts_target(data.test, options["window_size"])
        model.ns_loss.sampler.rng = np.random.default_rng(0)
        losses = [model.forward(contexts[i:i + 1000], target[i:i + 1000])
                  for i in range(0, len(target), 1000)]
        return {"loss": float(np.mean([float(loss) for loss in losses]))}


VALIDATION_SHARE_INVERSE = 20
"""A seq2seq run validates on the last 1/20 of its training lines (the learning-rate
schedule and the per-epoch ``val_accuracy`` never see the test split); with
``eval_valid`` False it keeps them for training."""


class Seq2seqTask(Task):
    """Question -> answer sequences (generated addition or dates, or a file in the
    book's format split 90/10 after a seeded shuffle); measured by exact-match
    accuracy. The last 5% of the training lines are held out for validation, unless
    ``eval_valid`` is False: then every training line is trained on, as in the book,
    and there is no per-epoch ``val_accuracy``."""

    name = "seq2seq"
    monitor = ("val_accuracy", "max")

    def load(self, recipe, source, options, seed, vocab=None) -> TaskData:
        if source is None:
            generate = load_addition if recipe.data == "addition" else load_dates
            (x_tr, t_tr), (x_te, t_te), made = generate(n=options.get("examples", 50000),
                                                        seed=GENERATED_DATA_SEED)
            vocab = _same_vocabulary(vocab, made, f"the generated {recipe.data} data")
        else:
            (x_tr, t_tr), (x_te, t_te), vocab = load_sequence(source, seed=seed, vocab=vocab)
        if options.get("reverse"):
            x_tr, x_te = reverse_questions(x_tr), reverse_questions(x_te)
        if not options.get("eval_valid", True):  # no validation: no hold-out either
            return TaskData((x_tr, t_tr), (x_tr[:0], t_tr[:0]), (x_te, t_te), vocab)
        held_out = len(x_tr) // VALIDATION_SHARE_INVERSE
        if held_out == 0:  # fewer than 20 training lines: validate on the test split
            return TaskData((x_tr, t_tr), (x_te, t_te), (x_te, t_te), vocab)
        cut = len(x_tr) - held_out
        return TaskData((x_tr[:cut], t_tr[:cut]), (x_tr[cut:], t_tr[cut:]), (x_te, t_te), vocab)

    def run_info(self, data):
        """The question width and the answer length, for :func:`answer`."""
        x, t = data.test
        return {"shape": [int(x.shape[1]), int(t.shape[1] - 1)]}

    def check_sizes(self, options, data, where, training=True):
        if len(data.test[0]) < 1:
            raise DataError(f"{where}: the test split holds no questions (give at least 10 lines)")
        x, t = data.test
        longest = max(x.shape[1], t.shape[1] - 1)
        if "max_len" in options and longest > options["max_len"]:
            raise DataError(f"{where}: questions of {x.shape[1]} and answers of {t.shape[1] - 1} "
                            f"characters are longer than the model's max_len "
                            f"{options['max_len']}: give max_len >= {longest}")
        super().check_sizes(options, data, where, training)

    def validation(self, options, data):
        if not options.get("eval_valid", True):
            return None
        x, t = data.valid
        return lambda model: {"val_accuracy": sequence_accuracy(model, x, t)}

    def test_metrics(self, model, options, data):
        x, t = data.test
        return {"accuracy": sequence_accuracy(model, x, t)}


def _same_vocabulary(saved, made, what):
    """``made``, the vocabulary a data source builds itself; raise :class:`DataError`
    when a run's ``saved`` one (if given) differs from it."""
    if saved is not None and saved != made:
        raise DataError(f"{what} does not match the run's vocabulary ({len(made)} symbols "
                        f"now, {len(saved)} saved with the model)")
    return made


TASKS = {task.name: task for task in [LanguageModelTask(), WordVectorTask(), Seq2seqTask()]}


def read_text_corpus(path, vocab=None, *, grow=True):
    """Word ids of a text file, each newline a ``<eos>`` token (the PTB convention).

    Words missing from a given ``vocab`` are added when ``grow``; else they map to
    ``<unk>`` when it has one, or raise :class:`DataError` counting them and naming
    the first few.
    """
    try:
        text = read_utf8(path)  # a byte-order mark dropped; not UTF-8: DataError
    except FileNotFoundError:
        raise DataError(f"data file {str(path)!r} does not exist") from None
    words = text.replace("\n", " <eos> ").split()
    if not words:
        raise DataError(f"data file {str(path)!r} holds no words")
    if vocab is None:
        vocab = Vocabulary()
    if grow:
        for w in words:
            if w not in vocab:
                vocab.add(w)
    elif "<unk>" in vocab:
        words = [w if w in vocab else "<unk>" for w in words]
    else:
        unknown = [w for w in words if w not in vocab]
        if unknown:
            distinct = list(dict.fromkeys(unknown))
            raise DataError(f"data file {str(path)!r}: {len(unknown)} words ({len(distinct)} "
                            f"distinct: {', '.join(map(excerpt, distinct[:5]))}"
                            f"{', ...' if len(distinct) > 5 else ''}) are not in the run's "
                            f"vocabulary of {len(vocab)} words")
    ids = np.fromiter((vocab.word_to_id[w] for w in words), dtype=np.int32, count=len(words))
    return ids, vocab

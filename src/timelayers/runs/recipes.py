"""The book's training recipes as reusable jobs, and the run folders they write.

A *recipe* names a model, its task (``"lm"``, ``"word2vec"``, ``"seq2seq"``), its
default data and the book's hyperparameters (the two Transformer recipes, beyond the
book, train with AdamW and a warm-up + cosine schedule counted in iterations).
:func:`train` runs one into a *run folder*::

    run.json                 recipe, options, data source and its SHA-256, seed, resumes
    model.safetensors        the trained model (with its vocabulary)
    checkpoint.safetensors   the training checkpoint, written after every epoch
    history.json             losses, metrics, learning rate, seconds per epoch
    metrics.json             the final test metric
    learning_curve.png       (when matplotlib is installed)
    attention.png            attention models: the map of one test example

:func:`load_run`, :func:`evaluate`, :func:`generate_text`, :func:`answer`,
:func:`similar` and :func:`analogy` use a finished run, with the vocabulary saved
in its model; they, and a resumed training, refuse a data file whose SHA-256 is not
the one the run was trained on. A new run never mixes with an old one in the same
folder (:mod:`timelayers.runs.folder`). The command line (:mod:`timelayers.cli`) is
a thin layer over this module.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from ..backend import CUPY_INSTALL_HINT, cupy_available, get_array_module, import_cupy, to_cpu, to_gpu
from ..errors import DataError, OptionError, excerpt
from .._checks import check_options, check_value
from .folder import (RUN_JSON_LIMIT, RunFolderLock, check_same_run, new_run_id, read_run_json,
                     saved_nothing, sha256_of, start_new_run, write_json)
from ..serialization import read_input
from ..schedules import ReduceOnPlateau, WarmupCosine, step_each_iteration
from ..training.trainer import iterations_cap
from .tasks import (GENERATED_DATA_SEED, TASKS, LanguageModelTask, Seq2seqTask, Task, TaskData,
                    WordVectorTask, read_text_corpus)
from ..vocab import UnknownWordError
from .. import models, optim
from ..decoding import beam_search, generate_ids, greedy_decode
from ..distributed import check_same_on_every_rank, parallelize, use_local_gpu
from ..models import Model
from ..models.base import config_dict
from ..plot import plot_attention, plot_history
from ..text import analogy as _analogy, most_similar

__all__ = ["Recipe", "RECIPES", "COMMON_OPTIONS", "RESUME_CHANGES", "Task", "TASKS",
           "LanguageModelTask", "WordVectorTask", "Seq2seqTask", "GENERATED_DATA_SEED",
           "TaskData", "RunResult", "Run", "DEVICES", "check_device", "train", "load_run",
           "load_data", "build_model", "build_schedule", "evaluate", "generate_text", "answer",
           "similar", "analogy", "read_text_corpus", "unknown_options", "recipe_options"]


@dataclass(frozen=True)
class Recipe:
    """A model with the book's hyperparameters for its task (a :class:`Task`)."""

    name: str
    task: Task
    model: str
    data: str
    model_args: dict = field(default_factory=dict)
    train_args: dict = field(default_factory=dict)
    model_arg_names: dict = field(default_factory=dict)
    """Options the model's constructor takes under another name, ``{option:
    argument}`` (``time_size`` may be in ``train_args`` and still go to the model:
    TransformerLM reads windows of ``time_size`` as its ``max_len``)."""


_LM_TRAIN = dict(epochs=4, batch_size=20, time_size=35, optimizer="SGD", lr=20.0, max_grad=0.25)
_S2S_TRAIN = dict(epochs=25, batch_size=128, optimizer="Adam", lr=0.001, max_grad=5.0,
                  reverse=False, examples=50000)
_W2V_TRAIN = dict(epochs=10, batch_size=100, optimizer="Adam", lr=0.001, max_grad=None)
# Transformers: AdamW, a linear warm-up over `warmup` iterations, then a cosine to 0 at the
# last iteration of the last epoch (see build_schedule). seq2seq and attention keep the book's
# constant rate, peeky its plateau schedule, unless given a warmup (None: not given):
# `--warmup 0` decays the rate from the start.
_TRANSFORMER_TRAIN = dict(optimizer="AdamW", weight_decay=0.01, max_grad=1.0)
_LM, _W2V, _S2S = TASKS["lm"], TASKS["word2vec"], TASKS["seq2seq"]

RECIPES = {r.name: r for r in [
    Recipe("rnnlm", _LM, "Rnnlm", "ptb", dict(wordvec_size=100, hidden_size=100, cell="lstm"),
           dict(_LM_TRAIN)),
    Recipe("better-rnnlm", _LM, "BetterRnnlm", "ptb",
           dict(wordvec_size=650, hidden_size=650, dropout_ratio=0.5, cell="lstm"),
           dict(_LM_TRAIN, epochs=40, plateau_factor=4.0)),
    Recipe("cbow", _W2V, "CBOW", "ptb", dict(hidden_size=100, window_size=5, sample_size=5),
           dict(_W2V_TRAIN)),
    Recipe("skipgram", _W2V, "SkipGram", "ptb",
           dict(hidden_size=100, window_size=5, sample_size=5), dict(_W2V_TRAIN)),
    Recipe("seq2seq", _S2S, "Seq2seq", "addition", dict(wordvec_size=16, hidden_size=128),
           dict(_S2S_TRAIN, warmup=None)),
    Recipe("peeky", _S2S, "PeekySeq2seq", "addition", dict(wordvec_size=16, hidden_size=128),
           dict(_S2S_TRAIN, reverse=True, plateau_factor=2.0, warmup=None)),
    Recipe("attention", _S2S, "AttentionSeq2seq", "dates",
           dict(wordvec_size=16, hidden_size=256, score="dot"),
           dict(_S2S_TRAIN, epochs=10, reverse=True, warmup=None)),
    # beyond the book
    Recipe("transformer-lm", _LM, "TransformerLM", "ptb",
           dict(d_model=256, num_heads=4, num_layers=2, ff_size=1024, dropout_ratio=0.2,
                positional="sinusoidal", activation="gelu_tanh"),
           dict(_LM_TRAIN, **_TRANSFORMER_TRAIN, epochs=8, batch_size=32, time_size=64,
                lr=0.001, warmup=200),
           model_arg_names={"dropout_ratio": "dropout", "time_size": "max_len"}),
    Recipe("transformer-seq2seq", _S2S, "TransformerSeq2seq", "dates",
           dict(d_model=64, num_heads=4, encoder_layers=2, decoder_layers=2, ff_size=256,
                max_len=64, dropout_ratio=0.1, positional="sinusoidal",
                activation="gelu_tanh"),
           dict(_S2S_TRAIN, **_TRANSFORMER_TRAIN, epochs=4, lr=0.002, warmup=100),
           model_arg_names={"dropout_ratio": "dropout"}),
]}


COMMON_OPTIONS = {"eval_valid": True, "max_iters": None}
"""Options of every recipe besides its own arguments, with their defaults
(``eval_valid``: measure the validation split after each epoch; ``max_iters``: end
every epoch after that many iterations, None: whole epochs)."""


def unknown_options(recipe: Recipe, options) -> list:
    """The names in ``options`` that ``recipe`` does not take, sorted."""
    return sorted(set(options) - set(recipe.model_args) - set(recipe.train_args)
                  - set(COMMON_OPTIONS))


def recipe_options(recipe: Recipe) -> set:
    """The options :func:`train` may be given for ``recipe``: its model's and trainer's,
    ``max_iters``, and ``eval_valid`` where turning the validation off means something: a language
    model or a seq2seq run whose learning rate does not follow it (a seq2seq run without
    it trains on the lines it would hold out, as the book does; word vectors have no
    validation; a plateau schedule always uses it)."""
    names = set(recipe.model_args) | set(recipe.train_args) | {"max_iters"}
    if (isinstance(recipe.task, (LanguageModelTask, Seq2seqTask))
            and "plateau_factor" not in names):
        names.add("eval_valid")
    return names


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise OptionError(f"argument 'model' expected one of {', '.join(RECIPES)}, got {name!r}")
    return RECIPES[name]


# -- data, models and trainers ----------------------------------------------------------
def load_data(recipe: Recipe, data=None, options=None, seed=0, vocab=None) -> TaskData:
    """Load the data of ``recipe``: its default (PTB, or addition/dates generated with
    :data:`GENERATED_DATA_SEED`) when ``data`` is None, else the file ``data`` (a text
    corpus for LM and word2vec, split 90/10 by position; a sequence file for seq2seq,
    split 90/10 after a shuffle seeded with the run's ``seed``). ``vocab``, a trained
    run's, encodes a file, and must equal the vocabulary the default data builds
    (else :class:`DataError`). With ``options["max_iters"]`` (a quick try), the
    validation and test splits are cut to about that many evaluation batches."""
    data = recipe.task.load(recipe, data, options or {}, seed, vocab)
    cap = (options or {}).get("max_iters")
    return data if cap is None else _small_evaluation(data, options, cap)


def _small_evaluation(data: TaskData, options, cap) -> TaskData:
    """``data`` with its validation and test splits cut to about ``cap`` evaluation
    batches (a run with ``max_iters`` is a quick try: its measures read that much):
    a corpus to ``cap * 10 * time_size + 1`` ids (``cap * 1000`` for word vectors),
    question-answer pairs to ``cap * 128`` rows."""
    def cut(split):
        if split is None:
            return None
        if isinstance(split, tuple):
            return tuple(a[:cap * 128] for a in split)
        return split[:cap * 10 * options["time_size"] + 1 if "time_size" in options
                     else cap * 1000]

    return TaskData(data.train, cut(data.valid), cut(data.test), data.vocab)


def _model_kwargs(recipe, options):
    names = recipe.model_arg_names
    return {names.get(k, k): options[k] for k in [*recipe.model_args, *names] if k in options}


def build_model(recipe: Recipe, options: dict, data: TaskData, rng):
    cls = getattr(models, recipe.model)
    try:
        model = cls(len(data.vocab), **_model_kwargs(recipe, options),
                    **recipe.task.model_kwargs(data), rng=rng)
    except ValueError as exc:  # sizes that do not fit together (d_model and num_heads)
        raise OptionError(f"recipe {recipe.name!r}: {exc}") from None
    model.vocab = data.vocab
    return model


_OPTIMIZER_OPTIONS = ("weight_decay",)
"""Options that go to the optimizer's constructor besides ``lr``, when a recipe has them."""


def _optimizer(options):
    cls = getattr(optim, options["optimizer"])
    return cls(lr=options["lr"], **{k: options[k] for k in _OPTIMIZER_OPTIONS if k in options})


def _iterations_per_epoch(recipe, options, data) -> int:
    """The iterations of one of the run's epochs: its task's, cut at ``max_iters``."""
    iterations = recipe.task.iterations_per_epoch(options, data)
    cap = options.get("max_iters")
    return iterations if cap is None else min(iterations, cap)


def build_schedule(options, optimizer, iterations_per_epoch, task):
    """The recipe's learning-rate schedule, or None: with ``warmup`` (not None), a
    WarmupCosine counted in iterations, peaking at ``lr`` after ``warmup`` of them and
    reaching 0 at the end of epoch ``epochs`` (stepped by :func:`step_each_iteration`,
    which :func:`train` always adds); else with ``plateau_factor``, the book's
    ReduceOnPlateau on the task's validation measure (``task.monitor``)."""
    if options.get("warmup") is not None:
        return WarmupCosine(optimizer, options["warmup"],
                            max(options["epochs"] * iterations_per_epoch, options["warmup"], 1),
                            per="iteration")
    if options.get("plateau_factor"):
        monitor, mode = task.monitor
        return ReduceOnPlateau(optimizer, factor=options["plateau_factor"], monitor=monitor,
                               mode=mode)
    return None


def _retarget_schedule(trainer, options, changes, iterations_per_epoch):
    """Apply a resume's new ``epochs`` or ``lr`` (``changes``) to the trainer: a
    WarmupCosine keeps its step count and gets the new end (``epochs``) and peak
    (``lr``), the rate following its curve from there; any other schedule keeps the
    new ``lr`` as the current rate."""
    schedule = trainer.schedule
    if isinstance(schedule, WarmupCosine):
        if "epochs" in changes:
            schedule.total_steps = max(options["epochs"] * iterations_per_epoch,
                                       schedule.warmup_steps, 1)
        if "lr" in changes:
            schedule.peak_lr = float(options["lr"])
        trainer.optimizer.lr = schedule.lr_at(schedule.steps + 1)
    elif "lr" in changes:
        trainer.optimizer.lr = options["lr"]


def _recipe_lr(trainer):
    """The ``lr`` option a checkpoint stands for: a WarmupCosine's peak, else the
    optimizer's current rate (a ReduceOnPlateau moves it)."""
    if isinstance(trainer.schedule, WarmupCosine):
        return trainer.schedule.peak_lr
    return trainer.optimizer.lr


class _StopAtAccuracy:
    """Callback: stop after the epoch whose ``val_accuracy`` reaches ``target``."""

    def __init__(self, target):
        self.target = target

    def __call__(self, trainer, event, info):
        acc = trainer.history.get("val_accuracy") or []
        if event == "epoch_end" and acc and acc[-1] is not None and acc[-1] >= self.target:
            trainer.stop_training = True


DEVICES = ("cpu", "gpu")


def check_device(device) -> None:
    """Raise :class:`OptionError` unless ``device`` is ``"cpu"``, or ``"gpu"`` with CuPy
    installed and a GPU visible."""
    if device not in DEVICES:
        raise OptionError(f"argument 'device' expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "gpu":
        if not cupy_available():
            try:
                import_cupy()
            except OptionError:
                raise OptionError(f"device 'gpu' needs CuPy, which is not installed "
                                  f"({CUPY_INSTALL_HINT})") from None
            raise OptionError("device 'gpu': CuPy is installed but sees no GPU") from None


def _on_device(data: TaskData, device) -> TaskData:
    """``data`` with its id arrays on ``device`` (the trainers and metrics follow
    their inputs' array module)."""
    if device == "cpu":
        return data

    def move(split):
        return tuple(to_gpu(a) for a in split) if isinstance(split, tuple) else to_gpu(split)

    return TaskData(move(data.train), move(data.valid), move(data.test), data.vocab)


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: object
    history: dict
    metrics: dict
    stopped_early: bool = False


RESUME_CHANGES = ("epochs", "lr")
"""The options a resumed run may change (recorded in its ``run.json``); changing
any other would not continue the same run."""


def train(recipe_name: str, out_dir, *, data=None, overrides=None, seed=None, resume=False,
          force=False, progress=True, target_accuracy=None, callbacks=(),
          device="cpu", comm=None, checkpoint_every=None, names=None) -> RunResult:
    """Train ``recipe_name`` into the run folder ``out_dir``.

    Parameters
    ----------
    recipe_name : one of :data:`RECIPES`
    out_dir : path of the run folder (created)
    data : path, optional
        A data file instead of the recipe's default data.
    overrides : dict, optional
        Hyperparameters replacing the recipe's (``epochs``, ``batch_size``, ``lr``,
        ``hidden_size``, ``wordvec_size``, ``time_size``, ``reverse``, ...), checked
        against :data:`timelayers._checks.NAME_KINDS`; ``max_iters`` ends every epoch
        after that many iterations (a new run without it takes
        ``$TIMELAYERS_MAX_ITERS`` when set); it is recorded in ``run.json``.
    seed : int, optional
        Seeds initialisation, shuffling, dropout and sampling (default 0).
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors`` with the run's saved
        options, vocabulary and data (which must be unchanged: its SHA-256 is
        checked). ``overrides`` may change :data:`RESUME_CHANGES` only (recorded
        under ``"resumed"`` in ``run.json``); any other option must equal the run's.
    force : bool
        Replace a run already in ``out_dir`` (by default that is refused).
    progress : bool or {"tqdm", "log"}
    target_accuracy : float, optional
        Seq2seq: stop after the first epoch whose validation accuracy reaches it.
    device : {"cpu", "gpu"}
        Where the model and the data live while training; the run folder is the
        same either way (saved from NumPy copies, loadable on a CPU).
    comm : mpi4py communicator, optional
        Train data-parallel over its processes (:mod:`timelayers.distributed`; every
        process calls ``train`` alike). Only rank 0 writes the run folder and shows
        progress; the others return a result without metrics. ``run.json`` records
        the number of processes, and a resume must use as many.
    checkpoint_every : int, optional
        Also write the checkpoint every this many iterations inside an epoch;
        ``resume`` continues from it to the bit. Ctrl-C writes one too, at the end
        of the running iteration.

    Raises
    ------
    OptionError
        Among others, when another process is training into ``out_dir``: a run
        folder has one writer at a time (:class:`~timelayers.runs.folder.RunFolderLock`,
        held from before the folder changes to the end).
    """
    lock = RunFolderLock(out_dir)  # acquired by rank 0 in _start / _resume
    try:
        return _train(lock, recipe_name, out_dir, data=data, overrides=overrides, seed=seed,
                      resume=resume, force=force, progress=progress,
                      target_accuracy=target_accuracy, callbacks=callbacks, device=device,
                      comm=comm, checkpoint_every=checkpoint_every, names=names)
    finally:
        lock.release()


def check_train_request(recipe, overrides, *, data=None, resume=False, force=False,
                        names=None) -> None:
    """The rules of a request to train ``recipe``, in one place for every caller:
    each option must be one of the recipe's, and a resumed run keeps its own data
    and folder. ``names`` maps an option (and ``"data"``, ``"resume"``,
    ``"force"``) to the caller's word for it, for the message (the command line
    passes its flags); by default "option 'key'" and "argument 'data'"."""
    def name(key):
        default = f"argument {key!r}" if key in ("data", "resume", "force") else f"option {key!r}"
        return (names or {}).get(key, default)

    known = recipe_options(recipe)
    for key in overrides:
        if key not in known:
            raise OptionError(f"{name(key)} does not apply to {recipe.name}")
    if resume and data is not None:
        raise OptionError(f"{name('resume')} continues with the run's own data; "
                          f"drop {name('data')}")
    if resume and force:
        raise OptionError(f"{name('resume')} continues the run in its folder, {name('force')} "
                          f"replaces it: give one")


def _train(lock, recipe_name, out_dir, *, data, overrides, seed, resume, force, progress,
           target_accuracy, callbacks, device, comm, checkpoint_every=None,
           names=None) -> RunResult:
    """:func:`train`'s work, with the folder's ``lock`` to acquire before it changes."""
    check_device(device)
    rank, processes = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    progress = progress if rank == 0 else False
    out = Path(out_dir)
    recipe = get_recipe(recipe_name)
    overrides = dict(overrides or {})
    check_options(overrides, f"recipe {recipe_name!r}")
    check_train_request(recipe, overrides, data=data, resume=resume, force=force, names=names)
    if seed is not None:
        check_value("non-negative int", seed, "argument 'seed'")
    if checkpoint_every is not None:
        check_value("positive int", checkpoint_every, "argument 'checkpoint_every'")
    if not resume and "max_iters" not in overrides:
        cap = iterations_cap(None, f"recipe {recipe_name!r}")
        if cap is not None:
            overrides["max_iters"] = cap
    if processes > 1:  # every process runs the same command on the same data, or none runs
        check_same_on_every_rank(comm, {
            "recipe": recipe_name, "run folder": str(out), "resume": bool(resume),
            "force": bool(force), "seed": seed, "device": device,
            **{f"option {key}": value for key, value in sorted(overrides.items())},
            "data file SHA-256": sha256_of(data) if data is not None else None})
    callbacks = [step_each_iteration, *callbacks]
    if target_accuracy is not None:
        if overrides.get("eval_valid") is False:
            raise OptionError("target_accuracy stops on the validation accuracy, which "
                              "eval_valid=False turns off")
        callbacks.append(_StopAtAccuracy(target_accuracy))
    if resume:
        trainer, options, data, seed, task_data = _resume(recipe, out, overrides, seed,
                                                          progress, callbacks, rank, processes,
                                                          lock)
    else:
        trainer, options, data, seed, task_data = _start(recipe, out, overrides, data, seed,
                                                         force, progress, callbacks, rank,
                                                         processes, lock)
    if processes > 1 and device == "gpu":
        use_local_gpu(comm)
    model = _to_device(trainer.model, device)
    task_data = _on_device(task_data, device)
    if processes > 1:
        parallelize(trainer, comm, seed)
    (x, t), extra = recipe.task.fit_inputs(options, task_data)
    with warnings.catch_warnings():
        if trainer.epoch == options["epochs"]:  # a resume that only writes the model and metrics
            warnings.filterwarnings("ignore", message=".*nothing to train")
        trainer.fit(x, t, max_epoch=options["epochs"], batch_size=options["batch_size"],
                    eval_fn=recipe.task.validation(options, task_data),
                    checkpoint=out / "checkpoint.safetensors" if rank == 0 else None,
                    max_iters=options.get("max_iters"), checkpoint_every=checkpoint_every,
                    **extra)
    stopped = trainer.epoch < options["epochs"]
    if rank != 0:
        return RunResult(out, model, trainer.history, {}, stopped)
    model.save(out / "model.safetensors")
    trainer.save_history(out / "history.json")
    metrics = evaluate(Run(out, recipe, options, model, data, seed, device=device),
                       task_data=task_data)
    metrics["epochs"] = trainer.epoch
    write_json(out / "metrics.json", metrics)
    _plots(out, recipe, options, model, trainer.history, task_data)
    return RunResult(out, model, trainer.history, metrics, stopped)


def _start(recipe, out, overrides, data, seed, force, progress, callbacks, rank=0, processes=1,
           lock=None):
    """A new run: data loaded and checked, the model and trainer built, then the
    folder made ready (see :func:`timelayers.runs.folder.start_new_run`) and ``run.json``
    written (the folder by rank 0 only): an error before that leaves the folder, and
    a run it holds, as they were. Returns ``(trainer, options, data source,
    seed, task data)``."""
    seed = 0 if seed is None else seed
    options = {**recipe.model_args, **recipe.train_args, **COMMON_OPTIONS, **overrides}
    source = str(Path(data).resolve()) if data is not None else None
    digest = sha256_of(source) if source is not None else None
    task_data = load_data(recipe, source, options, seed)
    recipe.task.check_sizes(options, task_data, _data_name(recipe, source))
    model = build_model(recipe, options, task_data, np.random.default_rng(seed))
    model.run_id = new_run_id()  # saved with its checkpoints and model
    optimizer = _optimizer(options)
    schedule = build_schedule(options, optimizer,
                              _iterations_per_epoch(recipe, options, task_data), recipe.task)
    trainer = recipe.task.trainer_class()(model, optimizer, max_grad=options["max_grad"],
                                          rng=np.random.default_rng(seed + 1),
                                          schedule=schedule, callbacks=callbacks,
                                          progress=progress)
    info = {"recipe": recipe.name, "task": recipe.task.name, "data": source,
            "data_sha256": digest, "options": options, "seed": seed, "version": __version__,
            "run_id": model.run_id, **recipe.task.run_info(task_data)}
    if processes > 1:
        info["processes"] = processes
    if rank == 0:  # only now: a run that cannot start (sizes, model) leaves the folder as it was
        if lock is not None:
            lock.acquire()
        start_new_run(out, force=force)
        write_json(out / "run.json", info)
    return trainer, options, source, seed, task_data


def _resume(recipe, out, overrides, seed, progress, callbacks, rank=0, processes=1, lock=None):
    """The run in ``out`` continued from its checkpoint with its saved options,
    vocabulary and (unchanged) data; :data:`RESUME_CHANGES` applied and recorded
    (by rank 0, holding ``lock`` from before anything is read).
    Returns ``(trainer, options, data source, seed, task data)``."""
    if rank == 0 and lock is not None and out.is_dir():  # no folder: read_run_json says so
        lock.acquire()
    info = read_run_json(out)
    if info["recipe"] != recipe.name:
        raise OptionError(f"run {str(out)!r} trained {info['recipe']!r}, not {recipe.name!r}")
    trained_by = info.get("processes", 1)
    if trained_by != processes:
        raise OptionError(f"run {str(out)!r} was trained by {trained_by} process(es) and this is "
                          f"{processes}: resume it with as many (mpiexec -n {trained_by}), or "
                          f"start a new run (the batches' split and the random draws depend on "
                          f"the number)")
    if seed is not None and seed != info["seed"]:
        raise OptionError(f"run {str(out)!r} was trained with seed {info['seed']}; a resumed run "
                          f"keeps its seed (got {seed})")
    options = {**COMMON_OPTIONS, **info["options"]}
    refused = {k: v for k, v in overrides.items()
               if k not in RESUME_CHANGES and options.get(k) != v}
    if refused:
        key, value = next(iter(refused.items()))
        raise OptionError(f"run {str(out)!r} cannot resume with {key}={value!r} (it was trained "
                          f"with {options.get(key)!r}); only {', '.join(RESUME_CHANGES)} can "
                          f"change when resuming: start a new run for the others")
    ckpt = out / "checkpoint.safetensors"
    if not ckpt.exists():
        raise FileNotFoundError(f"run {str(out)!r} has no checkpoint.safetensors to resume from"
                                + (": it stopped before its first checkpoint; train it again "
                                   "without --resume" if saved_nothing(out) else ""))
    _check_data_unchanged(info["data"], info.get("data_sha256"), out)
    trainer = recipe.task.trainer_class().resume(ckpt, progress=progress, callbacks=callbacks)
    check_same_run(info, trainer.model, out, ckpt)
    check_options_fit_model(recipe, options, trainer.model, f"{str(out / 'run.json')!r}",
                            f"{str(ckpt)!r}")
    task_data = load_data(recipe, info["data"], options, info["seed"],
                          vocab=getattr(trainer.model, "vocab", None))
    now = {**options, "lr": _recipe_lr(trainer)}
    changes = {k: [now[k], v] for k, v in overrides.items() if k in RESUME_CHANGES and now[k] != v}
    options.update({k: new for k, (_, new) in changes.items()})
    recipe.task.check_sizes(options, task_data, _data_name(recipe, info["data"]))
    if options["epochs"] < trainer.epoch or (options["epochs"] == trainer.epoch
                                             and _finished_epochs(out) == trainer.epoch):
        raise OptionError(f"run {str(out)!r} has already trained {trainer.epoch} epochs; "
                          f"epochs={options['epochs']} would train none (give more epochs)")
    _retarget_schedule(trainer, options, changes,
                       _iterations_per_epoch(recipe, options, task_data))
    if changes and rank == 0:
        info["options"] = options
        info.setdefault("resumed", []).append({"after_epoch": trainer.epoch, "changed": changes})
        write_json(out / "run.json", info)
    return trainer, options, info["data"], info["seed"], task_data


def _finished_epochs(out):
    """The epochs of the finished run in ``out`` (its ``metrics.json``), or None: a
    run stopped after its last checkpoint resumes to write its model and metrics."""
    try:
        epochs = json.loads(read_input(out / "metrics.json", "metrics.json", RUN_JSON_LIMIT)
                            .decode("utf-8")).get("epochs")
    except (OSError, ValueError, AttributeError):
        return None
    return epochs


def _check_data_unchanged(source, recorded, run_dir, hint="") -> None:
    """Raise :class:`DataError` when the run's data file ``source`` is gone, its
    SHA-256 is not the ``recorded`` one, or none is recorded: a path in a
    ``run.json`` is read only with its hash (``hint`` ends the message)."""
    if source is None:  # the recipe's own data
        return
    if recorded is None:
        raise DataError(f"{str(Path(run_dir) / 'run.json')!r} names data file {source!r} "
                        f"without its SHA-256 (data_sha256), so the file is not read{hint}")
    if not Path(source).is_file():
        raise DataError(f"run {str(run_dir)!r} was trained on data file {source!r}, which no "
                        f"longer exists{hint}")
    now = sha256_of(source)
    if now != recorded:
        raise DataError(f"data file {source!r} has changed since run {str(run_dir)!r} was "
                        f"trained on it (SHA-256 {recorded[:12]}... then, {now[:12]}... now); "
                        f"its word ids would not match the model's{hint}")


def _to_device(model, device):
    return model.to_gpu() if device == "gpu" else model


def _data_name(recipe, data):
    """How messages name a run's data."""
    return f"data file {str(data)!r}" if data is not None else f"the {recipe.data} data"


_ATTENTION_MAPS = {
    "AttentionSeq2seq": ({}, "where each answer character looked"),
    "TransformerSeq2seq": (dict(layer=-1, head=0),
                           "cross-attention of head 0 in the last decoder block"),
}
"""Models whose run folder gets ``attention.png``: the ``attention_map`` arguments
that choose the map, and what the plot's title says it is."""


def _plots(out, recipe, options, model, history, data):
    try:
        plot_history(history, out / "learning_curve.png", title=recipe.name)
        if recipe.model in _ATTENTION_MAPS:
            which, what = _ATTENTION_MAPS[recipe.model]
            x, t = data.test
            ids, weights = model.attention_map(x[:1], int(t[0, 0]), t.shape[1] - 1, **which)
            ids, question, weights = to_cpu(ids), to_cpu(x[0]), to_cpu(weights[0])  # (Tq,), (Ta, Tq)
            if options.get("reverse"):  # show the question in reading order
                question, weights = question[::-1], weights[:, ::-1]
            plot_attention(weights, data.vocab.decode(question), data.vocab.decode(ids[0]),
                           out / "attention.png", title=f"{recipe.name}: {what}")
    except ImportError:  # matplotlib is optional
        pass


# -- using a finished run -----------------------------------------------------------------
@dataclass
class Run:
    """A run folder loaded back: its recipe, options, model and data source."""

    run_dir: Path
    recipe: Recipe
    options: dict
    model: object
    data: object
    seed: int
    shape: tuple = None
    device: str = "cpu"
    data_sha256: str = None


def load_run(run_dir, device="cpu") -> Run:
    """Load ``run_dir/model.safetensors`` and ``run.json``; the model is put on
    ``device`` (``"cpu"`` or ``"gpu"``)."""
    check_device(device)

    info = read_run_json(run_dir)
    where = f"{str(Path(run_dir) / 'run.json')!r}"
    if info["recipe"] not in RECIPES:
        raise DataError(f"{where} names recipe {info['recipe']!r}, expected one of "
                        f"{', '.join(RECIPES)}")
    recipe = RECIPES[info["recipe"]]
    if unknown_options(recipe, info["options"]):
        raise DataError(f"{where}: recipe {recipe.name!r} has no option(s) "
                        f"{unknown_options(recipe, info['options'])}")
    path = Path(run_dir) / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"run {str(run_dir)!r} has no model.safetensors (did training finish?)")
    model = Model.load(path)
    check_same_run(info, model, run_dir, path)
    if type(model).__name__ != recipe.model or getattr(model, "vocab", None) is None:
        raise DataError(f"{str(path)!r} holds a {type(model).__name__}"
                        f"{'' if getattr(model, 'vocab', None) is not None else ' without a vocabulary'}"
                        f"; recipe {recipe.name!r} of {where} needs a {recipe.model} with its "
                        f"vocabulary")
    check_options_fit_model(recipe, info["options"], model, where, f"{str(path)!r}")
    model = _to_device(model, device)
    return Run(Path(run_dir), recipe, info["options"], model, info["data"], info["seed"],
               tuple(info["shape"]) if info.get("shape") else None, device,
               info.get("data_sha256"))


def check_options_fit_model(recipe: Recipe, options: dict, model, where: str,
                            model_file: str) -> None:
    """Raise :class:`DataError` when an option of ``run.json`` (``where``) that
    builds the model (``hidden_size``, ``cell``, ...) differs from the config of
    the model read from ``model_file``: the two files are not of one run."""
    config = config_dict(model)
    for key, value in _model_kwargs(recipe, options).items():
        if key in config and config[key] != value:
            raise DataError(f"{where} says {key}={value!r}, but {model_file} holds a "
                            f"{type(model).__name__} with {key}={config[key]!r}: the files "
                            f"are not of one run")


def evaluate(run: Run, data=None, task_data=None) -> dict:
    """The test metric of a run: ``{"perplexity": ...}`` for language models,
    ``{"accuracy": ...}`` for seq2seq, ``{"loss": ...}`` (negative sampling, fixed
    seed) for word2vec; on the run's own test split or on the file ``data``."""
    if task_data is None:
        if data is None:
            _check_data_unchanged(run.data, run.data_sha256, run.run_dir,
                                  hint="; to evaluate on it as it is now, give it as new data "
                                       "(eval --data FILE)")
            data = run.data
        task_data = load_data(run.recipe, data, run.options, run.seed, vocab=run.model.vocab)
        run.recipe.task.check_sizes(run.options, task_data, _data_name(run.recipe, data),
                                    training=False)
    return run.recipe.task.test_metrics(run.model, run.options, _on_device(task_data, run.device))


GENERATE_LIMITS = {"length": 100_000, "beam": 1_000}
"""The longest text :func:`generate_text` samples (words) and the widest beam
:func:`answer` searches: past them, the time or the memory are beyond reason."""


def _check_limit(name, value) -> None:
    limit = GENERATE_LIMITS[name]
    if value > limit:
        raise OptionError(f"argument {name!r} expected at most {limit:,} (the limit of "
                          f"timelayers.runs.recipes.GENERATE_LIMITS), got {value:,}")


def generate_text(run: Run, start: str = "you", length: int = 100, *, temperature=1.0, top_k=None,
                  seed=None, skip=("N", "<unk>", "$")) -> str:
    """Sample text from a language-model run, starting after the word ``start``
    (``length`` at most :data:`GENERATE_LIMITS` words)."""
    if not isinstance(run.recipe.task, LanguageModelTask):
        raise OptionError(f"run {str(run.run_dir)!r} is a {run.recipe.task.name} run, not a "
                         f"language model")
    _check_limit("length", length)
    vocab = run.model.vocab
    _check_words(run, start)
    start_id = vocab.word_to_id[start]
    skip_ids = [vocab.word_to_id[w] for w in skip if w in vocab]
    run.model.reset_state()
    ids = generate_ids(run.model, start_id, length, temperature=temperature, top_k=top_k,
                       skip_ids=skip_ids, rng=seed)
    return " ".join([start] + vocab.decode(ids)).replace(" <eos>", ".\n")


def answer(run: Run, questions, beam=1) -> list:
    """Answers of a seq2seq run to question strings (greedy, or beam search when
    ``beam > 1``, at most :data:`GENERATE_LIMITS` wide)."""
    if not isinstance(run.recipe.task, Seq2seqTask):
        raise OptionError(f"run {str(run.run_dir)!r} is a {run.recipe.task.name} run, not seq2seq")
    _check_limit("beam", beam)
    model, vocab = run.model, run.model.vocab
    shape = run.shape
    if shape is None:
        _check_data_unchanged(run.data, run.data_sha256, run.run_dir)
        shape = run.recipe.task.run_info(load_data(run.recipe, run.data, run.options,
                                                   run.seed))["shape"]
    width, length = shape
    rows = []
    for q in questions:
        if len(q) > width:
            raise DataError(f"question {excerpt(q)} is longer than the model's {width} "
                            f"characters")
        missing = sorted(set(q.ljust(width)) - set(vocab.word_to_id))
        if missing:
            raise DataError(f"question {q!r} has characters the model does not know: {missing}")
        rows.append(vocab.encode(list(q.ljust(width))))
    x = np.stack(rows)
    if run.options.get("reverse"):
        x = x[:, ::-1].copy()
    x = get_array_module(*model.params).asarray(x)
    start_id = vocab.word_to_id["_"]
    ids = (greedy_decode(model, x, start_id, length) if beam <= 1
           else beam_search(model, x, start_id, length, beam_size=beam))
    return ["".join(vocab.decode(row)).strip() for row in to_cpu(ids)]


class _NotInRunVocabulary(UnknownWordError):
    def __str__(self) -> str:
        return f"word {self.word!r} is not in the run's vocabulary of {self.size} words"


def _check_words(run, *words) -> None:
    """Raise :class:`~timelayers.vocab.UnknownWordError` naming the first of ``words``
    that the run's vocabulary lacks, and the vocabulary's size."""
    vocab = run.model.vocab
    for word in words:
        if word not in vocab:
            raise _NotInRunVocabulary(word, len(vocab))


def _word_vectors(run):
    if not isinstance(run.recipe.task, WordVectorTask):
        raise OptionError(f"run {str(run.run_dir)!r} is a {run.recipe.task.name} run, not word "
                         f"vectors")
    return to_cpu(run.model.word_vecs)


def similar(run: Run, word: str, top=5):
    """Nearest words to ``word`` by cosine similarity of the run's word vectors."""
    vectors = _word_vectors(run)
    _check_words(run, word)
    return most_similar(word, run.model.vocab, vectors, top=top)


def analogy(run: Run, a: str, b: str, c: str, top=5, method="3cosadd"):
    """Answers to ``a : b = c : ?`` from the run's word vectors, scored by ``method``
    (:data:`timelayers.text.ANALOGY_METHODS`; ``"book"`` gives the book's answers)."""
    vectors = _word_vectors(run)
    _check_words(run, a, b, c)
    return _analogy(a, b, c, run.model.vocab, vectors, top=top, method=method)


"""The ``timelayers`` command. The only module of the library that prints.

    timelayers demo                         the main job on built-in data
    timelayers train MODEL [--data FILE]    rnnlm, better-rnnlm, cbow, skipgram, seq2seq, peeky,
                                            attention; beyond the book: transformer-lm,
                                            transformer-seq2seq
    timelayers data addition|dates OUT      the book's addition.txt / date.txt, generated
    timelayers eval RUN_DIR [--data FILE]
    timelayers generate RUN_DIR [QUESTION ...]
    timelayers similar RUN_DIR WORD
    timelayers analogy RUN_DIR A B C
    timelayers import-book-weights MODEL FILE.pkl OUT.safetensors | OUT_DIR --run-folder
    timelayers export RUN_DIR OUT --format onnx|torch [--force]
    mpiexec -n K timelayers train MODEL ... data-parallel over K processes

train, eval, generate, similar and analogy take ``--device cpu|gpu`` (default: the
``TIMELAYERS_DEVICE`` environment variable, else cpu).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ._checks import KINDS, NAME_KINDS
from .layers.cells import CELLS
from ._version import __version__
from .errors import TimelayersError
from .export import export_run
from .book import weights as book_weights
from .book.weights import BOOK_MODELS
from .datasets import load_ptb, make_addition, make_dates, write_sequence
from .datasets.ptb import data_dir_from_environment
from .threads import num_threads_from_environment
from .training.trainer import iterations_cap
from .distributed import ReportedByRank0, abort_on_error, mpi_world
from .runs import recipes
from .runs.demo import check_time_affine
from .runs.recipes import RECIPES
from .runs.tasks import GENERATED_DATA_SEED, LanguageModelTask, Seq2seqTask
from .text import ANALOGY_METHODS


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2 (as are the library's
    own errors, :class:`~timelayers.errors.TimelayersError`, those of files,
    :class:`OSError`, and sizes too large for the memory, :class:`MemoryError`; any
    other exception is a bug and shows its traceback)."""


_USER_ERRORS = (CliError, TimelayersError, OSError, MemoryError)


def _message(exc) -> str:
    return f"out of memory: {exc}" if isinstance(exc, MemoryError) else str(exc)


def _check_path(path, what: str, *, folder: bool, must_exist: bool = True) -> None:
    """Raise :class:`CliError` unless ``path`` names a folder (``folder``) or a file,
    existing when ``must_exist`` (else absent or of that kind: a place to write);
    ``what`` starts the message (``"--data: data file"``)."""
    kind, other = ("folder", "file") if folder else ("file", "folder")
    if not str(path):
        raise CliError(f"{what} expected the path of a {kind}, got ''")
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        raise CliError(f"{what} {str(path)!r} is a {other}, not a {kind}")
    if must_exist and not p.exists():
        raise CliError(f"{what} {str(path)!r} does not exist")


def _given_or_default(args, defaults: dict, applies: bool, why: str) -> None:
    """Give each option of ``defaults`` (parsed with default None) its default, and
    raise :class:`CliError` naming the first one given when they do not apply
    (``why``: to what they do apply)."""
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        elif not applies:
            raise CliError(f"--{name.replace('_', '-')} does not apply {why}")


# -- demo ------------------------------------------------------------------------------
def _affine_check() -> None:
    check = check_time_affine()
    print("TimeAffine check (np.random.seed(1234), D=1, H=5, N=4, T=5)")
    print("out: the layer's output for x (N, T, D) = (4, 5, 1), W (1, 5), b = 0; "
          "shape (N, T, H) = (4, 5, 5)")
    print("out=", check.out)
    print()
    print("dx: backward of dout (4, 5, 5), the gradient of x; shape (N, T, D) = "
          "(4, 5, 1)")
    print("dx=", check.dx)
    print()
    for name, err in check.grad_errors.items():
        print(f"gradcheck {name:>2}: relative error {err:.2e}")
    print(f"grads kept their identity through backward: {check.identity_kept}")
    if not check.ok:
        raise CliError("the TimeAffine check failed")
    print("TimeAffine check: OK")


_DEMO_DEFAULTS = dict(out="runs/demo", epochs=3, hidden=128, examples=50000, lr=0.003,
                     target=0.99, seed=0)


def _cmd_demo(args) -> int:
    _given_or_default(args, _DEMO_DEFAULTS, not args.check_only,
                      "to --check-only (it trains nothing)")
    if not args.check_only:
        _check_path(args.out, "--out: run folder", folder=True, must_exist=False)
    _affine_check()
    if args.check_only:
        return 0

    print()
    print(f"Training AttentionSeq2seq on {args.examples} generated dates "
          f"(stops at {args.target:.0%} validation accuracy, at most {args.epochs} epochs)...")
    t0 = time.perf_counter()
    result = recipes.train("attention", args.out, seed=args.seed, progress=True,
                           target_accuracy=args.target, force=True,
                           overrides=dict(epochs=args.epochs, hidden_size=args.hidden,
                                          examples=args.examples, lr=args.lr))
    seconds = time.perf_counter() - t0
    acc = result.metrics["accuracy"]
    print(f"test accuracy {acc:.2%} after {result.metrics['epochs']} epoch(s), {seconds:.0f} s")
    run = recipes.load_run(args.out)
    questions = ["September 27, 1994", "JUN 17, 2013", "tuesday, september 25, 1984", "2/10/93",
                 "August 19, 2003"]
    for q, a in zip(questions, recipes.answer(run, questions)):
        print(f"  {q:<30} -> {a}")
    print(f"run folder: {args.out}")
    for name in sorted(p.name for p in Path(args.out).iterdir()):
        print(f"  {name}")
    if acc < args.target:
        raise CliError(f"test accuracy {acc:.2%} is below the demo's target {args.target:.0%}")
    return 0


# -- train / eval / generate --------------------------------------------------------------
_OVERRIDES = {"epochs": "epochs", "batch_size": "batch_size", "hidden": "hidden_size",
              "wordvec": "wordvec_size", "lr": "lr", "time_size": "time_size",
              "max_grad": "max_grad", "window": "window_size", "dropout": "dropout_ratio",
              "d_model": "d_model", "heads": "num_heads", "layers": "num_layers",
              "encoder_layers": "encoder_layers", "decoder_layers": "decoder_layers",
              "ff_size": "ff_size", "max_len": "max_len", "warmup": "warmup",
              "weight_decay": "weight_decay"}


def _cmd_train(args) -> int:
    """Train in this process, or data-parallel in every process that ``mpiexec``
    started (:mod:`timelayers.distributed`): an error in one stops all of them."""
    comm = mpi_world()
    with abort_on_error(comm, report=lambda exc: _report_on_rank(args, exc, comm)):
        return _train(args, comm)


def _report_on_rank(args, exc, comm) -> int:
    """Print what made a process of a data-parallel run fail; returns the exit status."""
    where = f"process {comm.Get_rank()} of {comm.Get_size()}"
    if isinstance(exc, ReportedByRank0):  # rank 0 prints the one line
        return 2
    if isinstance(exc, KeyboardInterrupt):
        print(f"timelayers {args.command} ({where}): interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, _USER_ERRORS):
        print(f"timelayers {args.command} ({where}): error: {_message(exc)}", file=sys.stderr)
        return 2
    print(f"timelayers {args.command} ({where}):", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return 1


def _train(args, comm) -> int:
    given = [(f"--{flag.replace('_', '-')}", key, getattr(args, flag))
             for flag, key in _OVERRIDES.items()]
    given += [("--reverse/--no-reverse", "reverse", args.reverse), ("--cell", "cell", args.cell),
              ("--no-eval", "eval_valid", False if args.no_eval else None),
              ("--max-iters", "max_iters", args.max_iters)]
    overrides = {key: value for _, key, value in given if value is not None}
    names = {key: flag for flag, key, _ in given}
    names.update(data="--data", resume="--resume", force="--force")
    # the recipe's rules before the files' (train checks them too, for its other callers)
    recipes.check_train_request(recipes.get_recipe(args.model), overrides, data=args.data,
                                resume=args.resume, force=args.force, names=names)
    if args.data is not None:
        _check_path(args.data, "--data: data file", folder=False)
    out = args.out if args.out is not None else f"runs/{args.model}"
    _check_path(out, "--out: run folder", folder=True, must_exist=args.resume)
    result = recipes.train(args.model, out, data=args.data, overrides=overrides, seed=args.seed,
                           resume=args.resume, force=args.force, progress=True,
                           device=args.device, comm=comm, checkpoint_every=args.checkpoint_every,
                           names=names)
    if comm is not None and comm.Get_rank() != 0:
        return 0
    for key, value in result.metrics.items():
        print(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
    print(f"run folder: {out}")
    return 0


def _load_run(args):
    _check_path(args.run_dir, "run folder", folder=True)
    return recipes.load_run(args.run_dir, device=args.device)


def _cmd_eval(args) -> int:
    if args.data is not None:
        _check_path(args.data, "--data: data file", folder=False)
    run = _load_run(args)
    for key, value in recipes.evaluate(run, data=args.data).items():
        print(f"{key} {value:.4f}")
    return 0


_GENERATE_SEQ2SEQ = dict(beam=1)
_GENERATE_LM = dict(start="you", length=100, temperature=1.0, top_k=None, seed=None)
"""The options of ``generate`` for each kind of run, with their defaults."""


def _cmd_generate(args) -> int:
    run = _load_run(args)
    seq2seq = isinstance(run.recipe.task, Seq2seqTask)
    language_model = isinstance(run.recipe.task, LanguageModelTask)
    which = f"to {run.recipe.name} run {args.run_dir!r}"
    _given_or_default(args, _GENERATE_SEQ2SEQ, seq2seq, f"{which} (only to seq2seq runs)")
    _given_or_default(args, _GENERATE_LM, language_model, f"{which} (only to language models)")
    if seq2seq:
        if not args.inputs:
            raise CliError("give the questions to answer, e.g. timelayers generate RUN '16+75'")
        for q, a in zip(args.inputs, recipes.answer(run, args.inputs, beam=args.beam)):
            print(f"{q}\t{a}")
        return 0
    if not isinstance(run.recipe.task, LanguageModelTask):
        raise CliError(f"run {args.run_dir!r} holds word vectors; use `similar` or `analogy`")
    if args.inputs:
        raise CliError("a language model takes --start WORD, not positional inputs")
    print(recipes.generate_text(run, args.start, args.length, temperature=args.temperature,
                                top_k=args.top_k, seed=args.seed))
    return 0


def _cmd_similar(args) -> int:
    return _print_ranked(recipes.similar(_load_run(args), args.word, top=args.top))


def _cmd_analogy(args) -> int:
    run = _load_run(args)
    return _print_ranked(recipes.analogy(run, args.a, args.b, args.c, top=args.top,
                                         method=args.method))


def _print_ranked(pairs) -> int:
    for word, score in pairs:
        print(f"{word}\t{score:.4f}")
    return 0


_DATA_SETS = {"addition": (make_addition, "addition problems, as the book's addition.txt"),
              "dates": (make_dates, "dates, as the book's date.txt")}


def _cmd_data(args) -> int:
    _check_path(args.out, "OUT: data file", folder=False, must_exist=False)
    if Path(args.out).exists() and not args.force:
        raise CliError(f"OUT: {args.out!r} exists; give --force to replace it")
    make, what = _DATA_SETS[args.name]
    lines = make(args.examples, np.random.default_rng(args.seed))
    write_sequence(args.out, lines)
    print(f"wrote {args.out}: {len(lines)} {what} (seed {args.seed})")
    return 0


def _cmd_export(args) -> int:
    _check_path(args.run, "RUN_DIR: run folder", folder=True)
    for path in export_run(args.run, args.out, args.format, force=args.force):
        print(f"wrote {path}")
    return 0


def _cmd_import(args) -> int:
    source = book_weights.BOOK_MODELS[args.model].vocabulary
    if args.ptb_vocab and source != "ptb":
        raise CliError(f"--ptb-vocab applies to rnnlm and better-rnnlm; {args.model} takes "
                       f"{_VOCABULARY_SOURCES[source]}")
    if args.data is not None and source != "data":
        raise CliError(f"--data applies to seq2seq, peeky and attention; {args.model} takes "
                       f"{_VOCABULARY_SOURCES[source]}")
    if args.data is not None:
        _check_path(args.data, "--data: data file", folder=False)
    if args.run_folder:
        _check_path(args.out, "OUT: run folder", folder=True, must_exist=False)
    else:
        _check_path(args.out, "OUT: checkpoint file", folder=False, must_exist=False)
    if args.run_folder:
        model = book_weights.import_book_run(args.model, args.pkl, args.out, data=args.data,
                                             reverse=args.reverse, force=args.force)
        what = "run folder"
    else:
        for flag, given in (("--force", args.force), ("--reverse/--no-reverse",
                                                      args.reverse is not None)):
            if given:
                raise CliError(f"{flag} is an option of a run folder: add --run-folder")
        vocab = None
        if args.ptb_vocab:
            _, vocab = load_ptb("train")
        elif args.data is not None:
            vocab = book_weights.book_data_vocabulary(args.data)
        model = book_weights.import_book_weights(args.model, args.pkl, args.out, vocab=vocab)
        what = "checkpoint"
    sizes = ", ".join(f"{k}={v}" for k, v in vars(model.config).items()
                      if not isinstance(v, list))  # word vectors' counts: one per word
    print(f"wrote {what} {args.out}: {type(model).__name__}({sizes})")
    return 0


_VOCABULARY_SOURCES = {"ptb": "the PTB vocabulary (--ptb-vocab)",
                       "pickle": "the vocabulary in its file",
                       "data": "the vocabulary of its data file (--data FILE)"}


# -- parser --------------------------------------------------------------------------------
def _typed(kind: str, parse=int):
    """An argparse type: ``parse`` the text, then check it is a ``kind`` (one of
    :data:`timelayers._checks.KINDS`)."""

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not KINDS[kind](value):
            raise argparse.ArgumentTypeError(f"expected a {kind}, got {text!r}")
        return value

    return convert


def _option_type(key: str):
    """The argparse type of the flag that sets the recipe option ``key``."""
    kind = NAME_KINDS[key]
    return _typed(kind, int if kind.endswith("int") else float)


_DEVICE_ENV = "TIMELAYERS_DEVICE"


def _device(text: str) -> str:
    if text == "cuda":  # PyTorch's word for it
        return "gpu"
    if text not in ("cpu", "gpu"):
        raise argparse.ArgumentTypeError(f"expected cpu, gpu or cuda (= gpu), got {text!r}")
    return text


def _add_device(p) -> None:
    # default None: main() takes $TIMELAYERS_DEVICE, else cpu (an error names the variable)
    p.add_argument("--device", type=_device,
                   help=f"cpu or gpu (cuda is taken as gpu; needs CuPy and a GPU; default: "
                        f"${_DEVICE_ENV} or cpu); run folders are the same on both")


def _read_environment(parser, args) -> None:
    """Check the library's environment variables once, before any command runs
    (``$TIMELAYERS_NUM_THREADS``, ``$TIMELAYERS_DEVICE``, ``$TIMELAYERS_DATA``,
    ``$TIMELAYERS_MAX_ITERS``): a bad value ends the command with one line naming
    the variable and what it accepts. ``--device`` not given takes the device's."""
    try:
        num_threads_from_environment()
        data_dir_from_environment()
        iterations_cap(None, "")
        device = os.environ.get(_DEVICE_ENV) or "cpu"
        device = "gpu" if device == "cuda" else device
        if device not in ("cpu", "gpu"):
            raise CliError(f"${_DEVICE_ENV} expected cpu, gpu or cuda (or unset: cpu), "
                           f"got {device[:40]!r}")
    except (CliError, TimelayersError) as exc:
        parser.exit(2, f"timelayers {args.command}: error: {exc}\n")
    if "device" in vars(args) and args.device is None:
        args.device = device


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as the commands' own (exit
    status 2), without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_TRAIN_DESCRIPTION = ("Train MODEL with the book's hyperparameters (change them with the flags) "
                      "into a run folder. Started by `mpiexec -n K`, it trains data-parallel "
                      "over the K processes (pip install -e '.[mpi]'), each taking 1/K of every "
                      "batch. `timelayers train MODEL --help` lists MODEL's own flags and "
                      "defaults.")

_TRAIN_FLAGS = [
    ("epochs", None), ("batch_size", None), ("hidden", "hidden size"),
    ("wordvec", "word vector size"),
    ("lr", "learning rate (transformers: its peak after the warm-up)"),
    ("time_size", "truncated BPTT length (language models; transformer-lm: the window it reads)"),
    ("max_grad", "gradient clipping norm"),
    ("window", "context window (word vectors)"),
    ("dropout", "dropout ratio (better-rnnlm, transformers)"),
    ("d_model", "model size (transformers)"),
    ("heads", "attention heads (transformers)"),
    ("layers", "blocks (transformer-lm)"),
    ("encoder_layers", "encoder blocks (transformer-seq2seq)"),
    ("decoder_layers", "decoder blocks (transformer-seq2seq)"),
    ("ff_size", "feed-forward size (transformers)"),
    ("max_len", "longest question or answer (transformer-seq2seq; transformer-lm reads windows "
                "of --time-size)"),
    ("warmup", "iterations of learning-rate warm-up before the cosine decay to 0 (transformers; "
               "seq2seq, peeky and attention: a cosine decay instead of the book's constant "
               "rate or peeky's plateau schedule, --warmup 0 from the start)"),
    ("weight_decay", "AdamW's decoupled weight decay (transformers)")]
"""The flags that set a recipe's hyper-parameters (see :data:`_OVERRIDES`), with their help."""


class _TrainHelp(argparse.Action):
    """``--help`` of ``train``: after MODEL, that model's flags only, with its
    defaults (the book's hyper-parameters); before it, every flag."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show this help (after MODEL: that model's flags and defaults)")

    def __call__(self, parser, namespace, values, option_string=None):
        model = getattr(namespace, "model", None)
        if model in RECIPES:
            parser = _Parser(prog=f"timelayers train {model}", add_help=False,
                             description=f"Train {model} ({RECIPES[model].model}) with the "
                                         f"book's hyperparameters, the defaults below, into a "
                                         f"run folder.")
            _add_train_arguments(parser, RECIPES[model])
        parser.print_help()
        parser.exit()


def _add_train_arguments(p, recipe=None) -> None:
    """The arguments of ``train``: for ``recipe``, only the flags that apply to it,
    each with the recipe's default; without one, every flag (and MODEL)."""
    known = None if recipe is None else recipes.recipe_options(recipe)
    defaults = {} if recipe is None else {**recipe.model_args, **recipe.train_args}

    def applies(key):
        return known is None or key in known

    def with_default(text, key):
        if key not in defaults:
            return text
        value = defaults[key]
        shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
        return f"{text or key.replace('_', ' ')} (default: {shown})"

    p.add_argument("-h", "--help", action=_TrainHelp)
    if recipe is None:
        p.add_argument("model", choices=list(RECIPES), metavar="MODEL",
                       help="one of: " + ", ".join(RECIPES))
    p.add_argument("--data", help="data file: a text corpus (language models, word vectors) or a "
                                  "file in the book's sequence format (seq2seq); default: PTB or "
                                  "generated data")
    p.add_argument("--out", help=f"run folder (default: runs/{recipe.name if recipe else 'MODEL'})")
    for flag, help_text in _TRAIN_FLAGS:
        key = _OVERRIDES[flag]
        if applies(key):
            p.add_argument(f"--{flag.replace('_', '-')}", type=_option_type(key),
                           help=with_default(help_text, key))
    if applies("cell"):
        p.add_argument("--cell", choices=[name for name in CELLS if name != "rnn"],  # rnn: SimpleRnnlm
                       help=with_default("recurrent cell (language models): gru is the book's "
                                         "GRU (reset gate before the hidden product), "
                                         "gru-reset-after the cuDNN/PyTorch form", "cell"))
    if applies("reverse"):
        p.add_argument("--reverse", dest="reverse", action="store_true", default=None,
                       help=with_default("reverse the questions (seq2seq)", "reverse"))
        p.add_argument("--no-reverse", dest="reverse", action="store_false")
    if applies("eval_valid"):
        p.add_argument("--no-eval", action="store_true",
                       help="skip the validation after each epoch (language models but "
                            "better-rnnlm, seq2seq recipes but peeky: their learning rates "
                            "follow it); a seq2seq run then also trains on the 5%% of its "
                            "training lines it would hold out, as the book does")
    p.add_argument("--max-iters", type=_option_type("max_iters"), metavar="N",
                   help="end every epoch after N iterations, to try a recipe quickly (recorded "
                        "in the run; default: $TIMELAYERS_MAX_ITERS, else whole epochs)")
    p.add_argument("--checkpoint-every", type=_option_type("checkpoint_every"), metavar="N",
                   help="also write the checkpoint every N iterations inside an epoch (--resume "
                        "continues from it; Ctrl-C writes one too)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (only --epochs and --lr "
                        "may change)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out")
    p.add_argument("--seed", type=_typed("non-negative int"), help="default: 0")
    _add_device(p)
    if recipe is not None:
        p.set_defaults(model=recipe.name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="timelayers",
        description="Train and use sequence models built from hand-written NumPy layers.")
    parser.add_argument("--version", action="version", version=f"timelayers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="check TimeAffine on a worked example, then train attention "
                                    "seq2seq on generated dates",
                       description="Check TimeAffine on a worked example (forward, backward, "
                                   "finite differences), then train "
                                   "AttentionSeq2seq on generated dates (no network) into a run "
                                   "folder with a checkpoint, history, learning curve and "
                                   "attention map.")
    p.add_argument("--check-only", action="store_true", help="only the TimeAffine check")
    p.add_argument("--seed-check-only", action="store_true", dest="check_only",
                   help=argparse.SUPPRESS)                # the flag's earlier name
    # the training options' defaults are in _DEMO_DEFAULTS (None here: given or not)
    p.add_argument("--out", help="run folder, replaced if it holds a run (default: runs/demo)")
    p.add_argument("--epochs", type=_option_type("epochs"),
                   help="at most this many epochs (default: 3)")
    p.add_argument("--hidden", type=_option_type("hidden_size"), help="LSTM size (default: 128)")
    p.add_argument("--examples", type=_option_type("examples"),
                   help="generated dates (default: 50000)")
    p.add_argument("--lr", type=_option_type("lr"),
                   help="Adam learning rate (default: 0.003; the book's 0.001 needs more epochs)")
    p.add_argument("--target", type=_typed("number in [0, 1]", float),
                   help="stop at this validation accuracy (the test accuracy must reach it too; "
                        "default: 0.99)")
    p.add_argument("--seed", type=_typed("non-negative int"), help="default: 0")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train a model with the book's recipe",
                       description=_TRAIN_DESCRIPTION, add_help=False)
    _add_train_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("data", help="write the book's addition or date data set",
                       description="Write a generated data set in the book's sequence format "
                                   "(one question, '_', the answer a line, fixed widths), the "
                                   "lines the seq2seq recipes generate by default, to a file "
                                   "that train --data, eval --data and import-book-weights "
                                   "--data read.")
    p.add_argument("name", choices=list(_DATA_SETS), metavar="NAME",
                   help="addition (the book's addition.txt) or dates (its date.txt)")
    p.add_argument("out", metavar="OUT", help="the file to write")
    p.add_argument("--examples", type=_option_type("examples"), default=50000,
                   help="lines (default: 50000, as the book's files)")
    p.add_argument("--seed", type=_typed("non-negative int"), default=GENERATED_DATA_SEED,
                   help=f"default: {GENERATED_DATA_SEED}, the recipes' own")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("eval", help="test metric of a run",
                       description="Print the perplexity (language models), accuracy (seq2seq) "
                                   "or loss (word vectors) on the test split of the run's data or "
                                   "of --data FILE.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", help="another file of the same format")
    _add_device(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("generate", help="sample text, or answer questions",
                       description="Language models: sample text after --start. Seq2seq: answer "
                                   "the questions given as arguments.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("inputs", nargs="*", metavar="QUESTION")
    # defaults in _GENERATE_SEQ2SEQ and _GENERATE_LM (None here: given or not)
    p.add_argument("--beam", type=_typed("positive int"),
                   help="beam width (seq2seq; default 1: greedy)")
    p.add_argument("--start", help="first word (language models; default: you)")
    p.add_argument("--length", type=_typed("positive int"),
                   help="words to sample (language models; default: 100)")
    p.add_argument("--temperature", type=_typed("non-negative finite number", float),
                   help="(language models; default: 1.0, 0: always the likeliest word)")
    p.add_argument("--top-k", type=_typed("positive int"),
                   help="sample among the k likeliest words (language models; default: all)")
    p.add_argument("--seed", type=_typed("non-negative int"),
                   help="seed of the sampling (language models; default: a fresh one)")
    _add_device(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("similar", help="nearest words", description="Nearest words by cosine.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("word", metavar="WORD")
    p.add_argument("--top", type=_typed("positive int"), default=5)
    _add_device(p)
    p.set_defaults(func=_cmd_similar)

    p = sub.add_parser("analogy", help="A : B = C : ?",
                       description="Solve A : B = C : ? (e.g. king man queen -> woman) with the "
                                   "run's word vectors.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("c", metavar="C")
    p.add_argument("--top", type=_typed("positive int"), default=5)
    p.add_argument("--method", choices=list(ANALOGY_METHODS), default="3cosadd",
                   help="3cosadd (default: cosine with unit(B) - unit(A) + unit(C)), 3cosmul "
                        "(Levy and Goldberg 2014) or book (the book's util.analogy: the raw "
                        "B - A + C normalised, dotted with the raw vectors; the book's answers)")
    _add_device(p)
    p.set_defaults(func=_cmd_analogy)

    p = sub.add_parser("import-book-weights", help="convert the book's pickled weights safely",
                       description="Read the book's pickled weights with a restricted unpickler "
                                   "(only lists, tuples, dicts and NumPy arrays) and write a "
                                   "timelayers checkpoint, or with --run-folder a run folder that "
                                   "eval, generate, similar and analogy use as a run trained here. "
                                   "The vocabulary: PTB's for rnnlm and better-rnnlm "
                                   "(--ptb-vocab; a run folder always has it), the file's own for "
                                   "cbow and skipgram (only W_in is in the file: the imported "
                                   "output weights are zero, so eval's loss means nothing, "
                                   "similar and analogy are the book's), and the characters of "
                                   "the data file the model was trained on for seq2seq, peeky and "
                                   "attention (--data, e.g. the book's date.txt), numbered in "
                                   "order of first appearance as the book does.")
    p.add_argument("model", choices=list(BOOK_MODELS), metavar="MODEL",
                   help="one of: " + ", ".join(BOOK_MODELS))
    p.add_argument("pkl", metavar="FILE.pkl")
    p.add_argument("out", metavar="OUT",
                   help="the checkpoint to write (OUT.safetensors), or with --run-folder the run "
                        "folder")
    p.add_argument("--run-folder", action="store_true",
                   help="write OUT as a run folder (model.safetensors and run.json); a folder "
                        "that holds a run is refused without --force")
    p.add_argument("--force", action="store_true", help="replace a run already in OUT")
    p.add_argument("--ptb-vocab", action="store_true",
                   help="store the PTB vocabulary with it (rnnlm, better-rnnlm)")
    p.add_argument("--data", metavar="FILE",
                   help="seq2seq, peeky, attention: the data file in the book's format that the "
                        "model was trained on (its vocabulary; a run folder evaluates on it); "
                        "required with --run-folder")
    p.add_argument("--reverse", dest="reverse", action="store_true", default=None,
                   help="with --run-folder: the questions are read reversed (default: as the "
                        "recipe, reversed for peeky and attention, as the book trains them)")
    p.add_argument("--no-reverse", dest="reverse", action="store_false")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export", help="write a run's model as ONNX or a PyTorch state_dict",
                       description="Export a run's model: --format onnx writes an ONNX file "
                                   "(opset 17; the seq2seq models: a folder with encoder.onnx "
                                   "and decoder.onnx), its vocabulary and recipe in the "
                                   "metadata; --format torch writes torch.save of the nn.Module's "
                                   "state_dict with the model's config and vocabulary.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("out", metavar="OUT", help="the file (or folder) to write")
    p.add_argument("--format", default="onnx", metavar="FORMAT", help="onnx (default) or torch")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv=None) -> int:
    np.set_printoptions(linewidth=75)
    parser = build_parser()
    args = parser.parse_args(argv)
    _read_environment(parser, args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("timelayers")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        said = f" ({exc}; `timelayers train MODEL --resume --out RUN_DIR` continues)" \
            if str(exc).startswith("checkpoint") else ""
        print(f"timelayers {args.command}: interrupted{said}", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:  # a bug's exception keeps its traceback
        print(f"timelayers {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())

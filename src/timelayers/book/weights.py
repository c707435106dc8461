"""Import the book's pretrained weights into timelayers models, checkpoints and
run folders.

The files are read by :func:`~timelayers.book.pickle.load_book_pickle` (a
restricted unpickler). :data:`BOOK_MODELS` says, for each model the book saves,
which of our models it becomes, the shapes of the book's arrays, how they map to
our params, and where its vocabulary comes from:

- ``rnnlm``, ``better-rnnlm``: a list of arrays in the book's ``params`` order,
  which is ours (the LSTM's gate columns are f, g, i, o in both). BetterRnnlm's
  tied output weight is saved as its own array: it is checked, not loaded. The
  vocabulary is PTB's.
- ``seq2seq``, ``attention``: ten arrays, encoder (embedding W, LSTM Wx, Wh, b),
  decoder (the same, then affine W, b), in our order; attention's affine reads
  ``[context, LSTM output]`` in both.
- ``peeky``: as seq2seq, but the book's decoder concatenates the encoder's state
  *before* its input (``[h, embedding]`` into the LSTM, ``[h, LSTM output]`` into
  the affine) and ours after it, so the first ``H`` rows of those two weights move
  to the end.
- The seq2seq family's vocabulary comes from the data file the model was trained
  on (the book's ``question_answer`` lines), its characters numbered in order of
  first appearance, each line's question then its answer -- the book's numbering
  and :func:`~timelayers.datasets.load_sequence`'s.
- ``cbow``, ``skipgram``: the book's dict holds only the input-side weights
  ``W_in`` (``word_vecs``) and the vocabulary. The import is our CBOW / SkipGram
  with ``W_in = word_vecs``, the output weights zero and a uniform negative
  sampler (the file has no word counts): ``similar`` and ``analogy`` use ``W_in``
  alone and give the book's answers; its loss is meaningless (every score is 0).

Every array's shape is checked against the model the first arrays describe before
anything is built (so a small file cannot declare a large model), and every value
for NaN and infinities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .pickle import UnsafePickleError, load_book_pickle
from ..errors import CheckpointError, OptionError
from .. import models
from .._version import __version__
from ..datasets import load_ptb, load_sequence
from ..models.base import config_dict
from ..models.file_checks import check_vocab_fits
from ..runs.folder import RunFolderLock, new_run_id, sha256_of, start_new_run, write_json
from ..runs.recipes import COMMON_OPTIONS, RECIPES, load_data
from ..vocab import Vocabulary

__all__ = ["UnsafePickleError", "load_book_pickle", "BookLayout", "BOOK_MODELS",
           "model_from_book_params", "book_data_vocabulary", "read_book_model",
           "import_book_weights", "import_book_run"]


@dataclass(frozen=True)
class BookLayout:
    """How one of the book's saved models maps to ours.

    ``model``: our class; ``vocabulary``: ``"ptb"``, ``"pickle"`` (the file's own)
    or ``"data"`` (a data file in the book's sequence format); ``sizes``: the
    book's arrays -> (our model's config, the shape each array must have);
    ``to_ours``: (arrays, config) -> the arrays in our models' layout; ``note``:
    what an imported run records about the conversion."""

    model: str
    vocabulary: str
    sizes: Callable = None
    to_ours: Callable = None
    note: str = ""


def _rnnlm_sizes(arrays):
    """Embedding W (V, D), LSTM Wx (D, 4H), Wh (H, 4H), b (4H,), affine W (H, V), b (V,)."""
    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    config = {"vocab_size": V, "wordvec_size": D, "hidden_size": H}
    return config, [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (H, V), (V,)]


def _better_rnnlm_sizes(arrays):
    """Embedding W (V, D), two or more LSTMs' Wx, Wh, b, the tied affine W (H, V), b (V,)."""
    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    num_layers = (len(arrays) - 3) // 3
    shapes = [(V, D)]
    for i in range(num_layers):
        shapes += [(D if i == 0 else H, 4 * H), (H, 4 * H), (4 * H,)]
    config = {"vocab_size": V, "wordvec_size": D, "hidden_size": H, "num_layers": num_layers}
    return config, shapes + [(H, V), (V,)]


def _seq2seq_sizes(decoder_input: str, affine_input: str):
    """Sizes of a seq2seq model whose decoder LSTM reads ``D`` or ``H+D`` inputs
    and whose affine reads ``H`` or ``2H``."""

    def sizes(arrays):
        V, D = arrays[0].shape
        H = arrays[2].shape[0]
        lstm_in = {"D": D, "H+D": H + D}[decoder_input]
        affine_in = {"H": H, "2H": 2 * H}[affine_input]
        lstm = [(4 * H,)]
        shapes = [(V, D), (D, 4 * H), (H, 4 * H), *lstm,
                  (V, D), (lstm_in, 4 * H), (H, 4 * H), *lstm, (affine_in, V), (V,)]
        return {"vocab_size": V, "wordvec_size": D, "hidden_size": H}, shapes

    return sizes


_PEEKY_DECODER_LSTM_WX, _PEEKY_DECODER_AFFINE_W = 5, 8


def _peeky_to_ours(arrays, config):
    """Move the encoder state's ``H`` rows from the front of the decoder LSTM's Wx
    and the affine W (the book's ``[h, x]``) to their end (our ``[x, h]``)."""
    H = config["hidden_size"]
    ours = list(arrays)
    for i in (_PEEKY_DECODER_LSTM_WX, _PEEKY_DECODER_AFFINE_W):
        ours[i] = np.concatenate([arrays[i][H:], arrays[i][:H]])
    return ours


_WORD_VECTOR_NOTE = ("the book's file holds only W_in (word_vecs): the output weights are zero "
                     "and the negative sampler uniform, so the loss is (1 + sample_size) * ln 2 "
                     "whatever the words; similar and analogy use W_in")

BOOK_MODELS = {
    "rnnlm": BookLayout("Rnnlm", "ptb", _rnnlm_sizes),
    "better-rnnlm": BookLayout("BetterRnnlm", "ptb", _better_rnnlm_sizes),
    "cbow": BookLayout("CBOW", "pickle", note=_WORD_VECTOR_NOTE),
    "skipgram": BookLayout("SkipGram", "pickle", note=_WORD_VECTOR_NOTE),
    "seq2seq": BookLayout("Seq2seq", "data", _seq2seq_sizes("D", "H")),
    "peeky": BookLayout("PeekySeq2seq", "data", _seq2seq_sizes("H+D", "2H"), _peeky_to_ours,
                        note="the decoder's [h, embedding] and [h, LSTM output] rows moved to "
                             "[embedding, h] and [LSTM output, h]"),
    "attention": BookLayout("AttentionSeq2seq", "data", _seq2seq_sizes("D", "2H")),
}
"""The book's saved models by the name ``timelayers import-book-weights`` takes."""


def _layout(kind: str) -> BookLayout:
    if kind not in BOOK_MODELS:
        raise OptionError(f"argument 'model' expected one of {', '.join(BOOK_MODELS)}, got "
                          f"{kind!r}")
    return BOOK_MODELS[kind]


def model_from_book_params(kind: str, params, source: str = "the weights"):
    """Build the model ``kind`` (a key of :data:`BOOK_MODELS`) from what
    :func:`load_book_pickle` read, ``params``: a list of arrays, or for
    ``cbow``/``skipgram`` the word-vector dict (the model then carries the dict's
    vocabulary). The weights are cast to float32.

    Raises
    ------
    CheckpointError
        When ``params`` do not fit the model (count, shapes, sizes below 1, NaN or
        infinite values, a tied weight that is not the transpose of its source, a
        vocabulary that does not match the word vectors); the message starts with
        ``source``.
    """
    layout = _layout(kind)
    if layout.vocabulary == "pickle":
        if not isinstance(params, dict):
            raise CheckpointError(f"{source} holds a list of arrays, not the book's word-vector "
                                  f"dict of {kind}")
        return _word_vector_model(kind, layout, params, source)
    if isinstance(params, dict):
        raise CheckpointError(f"{source} holds the book's word vectors, not the {kind}'s "
                              f"list of arrays")
    return _params_model(kind, layout, params, source)


def _params_model(kind, layout, arrays, source):
    try:
        return _built(kind, layout, arrays, source)
    except CheckpointError as exc:
        fits = _kinds_that_fit(arrays, but=kind)
        if not fits:
            raise
        raise CheckpointError(f"{exc}; the file looks like the book's {' or '.join(fits)}: "
                              f"import it as {fits[0]}") from None


def _kinds_that_fit(arrays, but) -> list:
    """The kinds of :data:`BOOK_MODELS` other than ``but`` whose arrays' count and
    shapes (and, for better-rnnlm, the tied output weight) ``arrays`` have."""
    fits = []
    for name, layout in BOOK_MODELS.items():
        if name == but or layout.vocabulary == "pickle":
            continue
        try:
            config, shapes = layout.sizes(arrays)
        except (IndexError, ValueError):
            continue
        if (len(shapes) != len(arrays) or min(config.values()) < 1
                or any(tuple(a.shape) != shape for a, shape in zip(arrays, shapes))):
            continue
        if name == "better-rnnlm" and not np.array_equal(arrays[-2], arrays[0].T):
            continue
        fits.append(name)
    return fits


def _built(kind, layout, arrays, source):
    """The model ``kind`` from ``arrays`` (see :func:`model_from_book_params`)."""
    try:
        config, shapes = layout.sizes(arrays)
    except (IndexError, ValueError) as exc:
        raise CheckpointError(f"{source}: the arrays do not look like the book's {kind}: "
                              f"{exc}") from None
    if len(shapes) != len(arrays):
        raise CheckpointError(f"{source}: the book's {kind} has {len(shapes)} arrays, the file "
                              f"has {len(arrays)}")
    for i, (shape, a) in enumerate(zip(shapes, arrays)):
        if tuple(a.shape) != shape:
            raise CheckpointError(f"{source}: array {i} has shape {tuple(a.shape)}, the book's "
                                  f"{kind} with {config} has {shape}")
    small = {k: v for k, v in config.items() if v < 1}
    if small:
        raise CheckpointError(f"{source}: the arrays give the book's {kind} sizes {small}; "
                              f"every size must be at least 1")
    try:
        model = getattr(models, layout.model)(**config)
    except ValueError as exc:
        raise CheckpointError(f"{source}: the arrays do not look like the book's {kind}: "
                              f"{exc}") from None
    named = [name for name, _, _ in model.named_param_slots()]
    for name, a in zip(named, arrays):
        if not np.isfinite(a).all():
            raise CheckpointError(f"{source}: array for {name!r} has NaN or infinite values")
    ours = layout.to_ours(arrays, config) if layout.to_ours else arrays
    values = dict(zip(named, ours))
    model.load_state_dict({name: values[name].astype(np.float32) for name in model.param_names})
    for tied, source_name, transpose in getattr(model, "_ties", []):
        want = values[source_name].T if transpose else values[source_name]
        if not np.array_equal(values[tied], want):
            raise CheckpointError(f"{source}: array for {tied!r} is not tied to "
                                  f"{source_name!r} as expected")
    return model


def _word_vector_model(kind, layout, params, source):
    word_vecs = params["word_vecs"]
    if word_vecs.ndim != 2 or min(word_vecs.shape) < 1:
        raise CheckpointError(f"{source}: 'word_vecs' has shape {word_vecs.shape}, expected "
                              f"(vocabulary size, hidden size), both at least 1")
    if not np.isfinite(word_vecs).all():
        raise CheckpointError(f"{source}: 'word_vecs' has NaN or infinite values")
    V, H = word_vecs.shape
    vocab = _pickle_vocabulary(params, V, source)
    defaults = RECIPES[kind].model_args
    model = getattr(models, layout.model)(V, H, defaults["window_size"],
                                          counts=np.ones(V, dtype=np.int64),
                                          sample_size=defaults["sample_size"], rng=0)
    w_in, w_out = model.param_names
    model.load_state_dict({w_in: word_vecs.astype(np.float32),
                           w_out: np.zeros((V, H), dtype=np.float32)})
    model.vocab = vocab
    return model


def _pickle_vocabulary(params, V, source):
    """The word-vector dict's vocabulary, checked: one word per row, ids 0..V-1,
    ``word_to_id`` and ``id_to_word`` inverse to each other."""
    word_to_id, id_to_word = params["word_to_id"], params["id_to_word"]
    if not len(word_to_id) == len(id_to_word) == V:
        raise CheckpointError(f"{source}: 'word_vecs' has {V} rows, 'word_to_id' "
                              f"{len(word_to_id)} words and 'id_to_word' {len(id_to_word)}; "
                              f"expected one word per row")
    missing = next((i for i in range(V) if i not in id_to_word), None)
    if missing is not None:
        raise CheckpointError(f"{source}: 'id_to_word' has no word for id {missing} (expected "
                              f"ids 0 to {V - 1})")
    for i in range(V):
        word = id_to_word[i]
        if word_to_id.get(word) != i:
            raise CheckpointError(f"{source}: 'id_to_word' maps {i} to {word!r}, but "
                                  f"'word_to_id' maps {word!r} to {word_to_id.get(word)}")
    return Vocabulary(id_to_word[i] for i in range(V))


def book_data_vocabulary(path):
    """The character vocabulary of a data file in the book's sequence format
    (``question_answer`` lines), numbered as the book numbers it: in order of
    first appearance, each line's question, then its answer (``_`` first).

    Raises
    ------
    DataError
        If the file is missing or not in that format (naming the file and line).
    """
    return load_sequence(path, seed=None)[2]


def read_book_model(kind: str, pkl_path, vocab=None):
    """The model ``kind`` built from the book's file ``pkl_path``, with ``vocab``
    (which must have one word per row of its embedding) or, for word vectors, the
    file's own vocabulary."""
    layout = _layout(kind)
    where = f"weights file {str(pkl_path)!r}"
    if vocab is not None and layout.vocabulary == "pickle":
        raise OptionError(f"the book's {kind} file carries its own vocabulary; give none")
    model = model_from_book_params(kind, load_book_pickle(pkl_path), source=where)
    if vocab is not None:
        _attach_vocabulary(model, vocab, where)
    return model


def _attach_vocabulary(model, vocab, where):
    check_vocab_fits(vocab, config_dict(model), where, type(model).__name__)
    model.vocab = vocab


def import_book_weights(kind: str, pkl_path, out_path, vocab=None):
    """Read the book's pickled weights for ``kind`` and write a timelayers checkpoint.

    Parameters
    ----------
    kind : a key of :data:`BOOK_MODELS`
    pkl_path, out_path : paths
    vocab : Vocabulary, optional
        Stored with the model (PTB's for the language models, a data file's
        :func:`book_data_vocabulary` for seq2seq); it must have one word per row
        of the embedding. Word vectors carry their own.

    Returns
    -------
    the loaded model
    """
    model = read_book_model(kind, pkl_path, vocab)
    model.save(out_path)
    return model


def import_book_run(kind: str, pkl_path, run_dir, *, data=None, reverse=None, force=False):
    """Read the book's pickled weights for ``kind`` into a run folder that
    :func:`~timelayers.runs.recipes.load_run` (and ``timelayers eval``, ``generate``,
    ``similar``, ``analogy``) uses as one trained here.

    The run is recipe ``kind``'s with the file's sizes; its data is PTB for the
    language models and word vectors (the vocabulary: PTB's, or the file's own),
    and the file ``data`` for the seq2seq models, whose characters give the
    vocabulary (:func:`book_data_vocabulary`; ``reverse`` overrides the recipe's
    reversed questions: the book's attention and Peeky models read them reversed).
    ``run.json`` records the book's file and its SHA-256 under ``"imported"``.

    Everything is read and checked first; then the folder is started as a new run
    (refused if it holds one, unless ``force``), ``model.safetensors`` written and
    ``run.json`` last, each atomically, so the folder reads as a run only once
    it is whole.

    Raises
    ------
    OptionError
        ``data`` missing for a seq2seq model or given for another; ``reverse`` for
        a model without reversed questions.
    CheckpointError, DataError, FileExistsError
    """
    layout = _layout(kind)
    recipe = RECIPES[kind]
    if layout.vocabulary == "data" and data is None:
        raise OptionError(f"a {kind} run folder needs the data file in the book's format that "
                          f"the model was trained on (its characters are the vocabulary)")
    if layout.vocabulary != "data" and data is not None:
        raise OptionError(f"argument 'data' gives the vocabulary of seq2seq, peeky and "
                          f"attention; a {kind} run evaluates on PTB")
    if reverse is not None and "reverse" not in recipe.train_args:
        raise OptionError(f"argument 'reverse' does not apply to {kind}")
    source = str(Path(data).resolve()) if data is not None else None
    model = read_book_model(kind, pkl_path)  # checked before a vocabulary is read
    if layout.vocabulary != "pickle":
        vocab = _ptb_vocabulary() if layout.vocabulary == "ptb" else book_data_vocabulary(source)
        _attach_vocabulary(model, vocab, f"weights file {str(pkl_path)!r}")
    options = {**recipe.model_args, **recipe.train_args, **COMMON_OPTIONS,
               **{k: v for k, v in config_dict(model).items() if k in recipe.model_args}}
    if reverse is not None:
        options["reverse"] = bool(reverse)
    model.run_id = new_run_id()
    info = {"recipe": kind, "task": recipe.task.name, "data": source, "run_id": model.run_id,
            "data_sha256": sha256_of(source) if source is not None else None,
            "options": options, "seed": 0, "version": __version__,
            "imported": {"file": str(Path(pkl_path).resolve()), "sha256": sha256_of(pkl_path, "weights file"),
                         "book_model": kind, **({"note": layout.note} if layout.note else {})}}
    if source is not None:
        task_data = load_data(recipe, source, options, info["seed"], vocab=model.vocab)
        recipe.task.check_sizes(options, task_data, f"data file {source!r}", training=False)
        info.update(recipe.task.run_info(task_data))
    run_dir = Path(run_dir)
    with RunFolderLock(run_dir):
        start_new_run(run_dir, force=force)
        model.save(run_dir / "model.safetensors")
        write_json(run_dir / "run.json", info)
    return model


def _ptb_vocabulary():
    return load_ptb("train")[1]

"""Evaluation metrics: perplexity of a language model, exact-match accuracy of a
sequence-to-sequence model.

Both run the model in evaluation mode (dropout off) and restore each layer's
previous mode afterwards.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import flush_device_checks
from .backend import get_array_module, to_cpu
from .errors import ShapeError
from .layers.base import evaluation_mode
from .training.progress import show_line

__all__ = ["perplexity", "sequence_accuracy", "evaluation_mode", "bptt_batches",
           "eval_perplexity", "eval_seq2seq"]


def bptt_batches(corpus, batch_size, time_size):
    """Input and target batches of a corpus in truncated-BPTT order, for evaluation.

    The corpus is cut into ``batch_size`` streams starting at ``i * jump`` with
    ``jump = (len(corpus) - 1) // batch_size``; batch ``k`` holds tokens
    ``k * time_size ... (k + 1) * time_size - 1`` of each stream and the targets
    are the next tokens. ``(len(corpus) - 1) // (batch_size * time_size)`` batches
    are made; the tokens left over are not used.

    Yields
    ------
    xs, ts : int arrays, shape (batch_size, time_size)
    """
    xp = get_array_module(corpus)
    if xp is np:
        corpus = np.asarray(corpus)
    if corpus.ndim != 1:
        raise ShapeError(f"bptt_batches: argument 'corpus' expected 1 dimension, got shape "
                         f"{tuple(corpus.shape)}")
    n = corpus.shape[0] - 1
    max_iters = n // (batch_size * time_size)
    if max_iters < 1:
        raise ValueError(f"perplexity: a corpus of {corpus.shape[0]} tokens is too short for "
                         f"batch_size={batch_size} x time_size={time_size} (needs at least "
                         f"{batch_size * time_size + 1})")
    jump = n // batch_size
    base = xp.arange(batch_size)[:, None] * jump + xp.arange(time_size)[None, :]  # (N, T)
    for k in range(max_iters):
        pos = base + k * time_size
        yield corpus[pos], corpus[pos + 1]


def perplexity(model, corpus, batch_size=10, time_size=35) -> float:
    """Perplexity of a language model on ``corpus``, streamed in truncated-BPTT order.

    The model's recurrent state is reset before (and after) the pass, and the
    state flows from one batch to the next as in training; the model runs in
    evaluation mode. The result is ``exp`` of the mean loss over all predicted
    tokens (every batch has ``batch_size * time_size`` of them, so it is the mean
    of the batch losses, the book's ``eval_perplexity``).

    Parameters
    ----------
    model : language model with ``forward(xs, ts) -> mean loss`` and ``reset_state()``
    corpus : int array, shape (L,)
    batch_size : int, default 10
    time_size : int, default 35

    Returns
    -------
    float
        ``inf`` when the mean loss overflows ``exp``.
    """
    total, count = 0.0, 0
    with evaluation_mode(model):
        if hasattr(model, "reset_state"):
            model.reset_state()
        try:
            for xs, ts in bptt_batches(corpus, batch_size, time_size):
                total = total + model.forward(xs, ts)  # stays on the device until the end
                count += 1
        finally:
            if hasattr(model, "reset_state"):
                model.reset_state()
    flush_device_checks()
    mean = float(total) / count
    try:
        return math.exp(mean)
    except OverflowError:
        return math.inf


def sequence_accuracy(model, questions, answers, batch_size=128) -> float:
    """Fraction of questions whose decoded answer equals the reference exactly.

    For each batch, ``model.generate(questions_batch, start_id, sample_size)`` is
    called with ``start_id = int(answers[0, 0])`` (the start symbol, the same in
    every row) and ``sample_size = answers.shape[1] - 1``; it must return ids of
    shape ``(n, sample_size)`` (or, for one question, the book's list). A row counts when all its ids equal
    ``answers[:, 1:]`` (padding included). Inputs are used as given: reverse the
    questions beforehand if the model was trained on reversed input.

    Parameters
    ----------
    model : seq2seq model with ``generate``
    questions : int array, shape (N, Tq)
    answers : int array, shape (N, 1 + Ta)
        Column 0 holds the start symbol.
    batch_size : int, default 128

    Returns
    -------
    float in [0, 1]
    """
    q = questions
    a = np.asarray(to_cpu(answers))
    if q.ndim != 2 or a.ndim != 2 or q.shape[0] != a.shape[0] or a.shape[1] < 2:
        raise ShapeError(f"sequence_accuracy: expected questions (N, Tq) and answers (N, 1 + Ta) "
                         f"with the same N and Ta >= 1, got {tuple(q.shape)} and {tuple(a.shape)}")
    if a.shape[0] == 0:
        raise ValueError("sequence_accuracy: no questions")
    starts = np.unique(a[:, 0])
    if starts.size != 1:
        raise ValueError(f"sequence_accuracy: answers start with different symbols "
                         f"{starts[:10].tolist()}; column 0 must hold the one start symbol")
    start_id = int(starts[0])
    sample_size = a.shape[1] - 1
    correct = 0
    with evaluation_mode(model):
        for lo in range(0, q.shape[0], batch_size):
            xb = q[lo:lo + batch_size]
            pred = np.asarray(to_cpu(model.generate(xb, start_id, sample_size)))
            if pred.ndim == 1 and xb.shape[0] == 1:  # the book's list for one question
                pred = pred[None, :]
            want = a[lo:lo + batch_size, 1:]
            if pred.shape != want.shape:
                raise ShapeError(f"sequence_accuracy: model.generate returned shape "
                                 f"{tuple(pred.shape)}, expected {tuple(want.shape)}")
            correct += int((pred == want).all(axis=1).sum())
    return correct / a.shape[0]


# -- the book's names ---------------------------------------------------------------------------
def eval_perplexity(model, corpus, batch_size=10, time_size=35, verbose=True) -> float:
    """The book's ``eval_perplexity``: :func:`perplexity` of ``model`` on ``corpus``
    (int array ``(L,)``), announced on stderr as the book does (``verbose=False``:
    silent). Returns the perplexity as a float."""
    if verbose:
        show_line("evaluating perplexity ...")
    value = perplexity(model, corpus, batch_size, time_size)
    if verbose:
        show_line(f"perplexity {value:.2f}")
    return value


def eval_seq2seq(model, question, correct, id_to_char, verbos=False, is_reverse=False) -> int:
    """The book's ``eval_seq2seq``: 1 when the model's greedy answer to one
    ``question`` (ids ``(1, Tq)``) equals ``correct`` (ids ``(1, 1 + Ta)``, its
    first id the start symbol), else 0.

    ``id_to_char``: a dict ``{id: char}`` or a :class:`~timelayers.vocab.Vocabulary`.
    With ``verbos=True`` (the book's spelling) the question (read backwards when
    ``is_reverse``), the correct answer and the model's answer marked ``O`` or
    ``X`` are printed, as the book prints them, to stdout.
    """
    q = np.asarray(to_cpu(question))
    c = np.asarray(to_cpu(correct)).reshape(-1)
    if q.ndim != 2 or q.shape[0] != 1 or c.size < 2:
        raise ShapeError(f"eval_seq2seq: expected question (1, Tq) and correct (1, 1 + Ta) with "
                         f"Ta >= 1, got {tuple(q.shape)} and {tuple(np.shape(correct))}")
    guess = model.generate(question, int(c[0]), c.size - 1)
    id_to_char = getattr(id_to_char, "id_to_word", id_to_char)
    text = lambda ids: "".join(id_to_char[int(i)] for i in np.asarray(to_cpu(ids)).reshape(-1))  # noqa: E731
    answer, got = text(c[1:]), text(guess)
    if verbos:
        shown = text(q)
        print("Q", shown[::-1] if is_reverse else shown)
        print("T", answer)
        print(("O " if got == answer else "X ") + got)
        print("---")
    return 1 if got == answer else 0

"""Turning trained models into outputs: language-model sampling and seq2seq decoding.

Language models (``SimpleRnnlm``, ``Rnnlm``, ``BetterRnnlm``) are sampled one word
at a time through ``model.predict(ids (1, 1)) -> scores (1, 1, V)`` with a stateful
recurrent layer.

Seq2seq models expose a small decoding protocol that greedy and beam search share:

- ``model.begin_decoding(xs (N, Tq))``: run the encoder, set the decoder's state
  for ``N`` rows;
- ``model.decode_step(ids (M,)) -> scores (M, V)``: one decoder step;
- ``model.reorder_decoding(index (M',))``: keep (and repeat) rows of the decoder
  state, ``state = state[index]``.

Rows are decoded independently of each other, so on NumPy arrays a large batch
is cut into one block of rows per thread, each decoded at the same time on a
replica of the model (:meth:`~timelayers.models.base.Model.replica`) with the
BLAS held to one thread: the threads meet once per call instead of inside every
layer at every step (answering 1,000 date questions took about 0.9 of the time
of the layers' own threads: docs/RESULTS.md). The answers are the same, up to the
float rounding of products made on fewer rows; the model's own layers are left
as they were (its state is the replicas').
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .backend import get_array_module, to_cpu
from .functions import log_softmax
from .layers.base import evaluation_mode, fixed_params
from .threads import adapt_to_load, can_run_parallel, even_blocks, get_num_threads, run_parallel

__all__ = ["sample_next", "generate_ids", "book_generate", "greedy_decode", "beam_search",
           "sequence_log_prob"]


# Each thread decodes at least this many rows: 64 date questions on two threads
# took 0.61x the time of one batch, 32 took 1.13x.
MIN_ROWS_PER_THREAD = 32

GREEDY_BELOW = 1e-6
"""Temperatures below this one sample the arg-max: dividing by them would overflow."""


def sample_next(scores, rng, temperature=1.0, top_k=None, skip_ids=()):
    """Draw one id from unnormalised ``scores (V,)``.

    Parameters
    ----------
    scores : array, shape (V,)
    rng : numpy.random.Generator
    temperature : float
        Scores are divided by it before the softmax (after their maximum is
        subtracted, so nothing overflows); below :data:`GREEDY_BELOW` (0 included)
        the arg-max is taken.
    top_k : int, optional
        Sample only among the ``top_k`` highest scores.
    skip_ids : iterable of int
        Ids that are never returned.

    Returns
    -------
    int
    """
    if temperature < 0:
        raise ValueError(f"sample_next: argument 'temperature' expected a value >= 0, got {temperature}")
    s = to_cpu(scores).astype(np.float64).reshape(-1)
    skip = list(skip_ids)
    if skip:
        s[skip] = -np.inf
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"sample_next: argument 'top_k' expected an int >= 1, got {top_k}")
        if top_k < s.size:
            kth = np.partition(s, -top_k)[-top_k]
            s[s < kth] = -np.inf
    if not np.isfinite(s.max()):
        raise ValueError(f"sample_next: no id is left to draw from (the scores' largest is "
                         f"{s.max()} after skip_ids and top_k)")
    if temperature < GREEDY_BELOW:
        return int(np.argmax(s))
    p = np.exp((s - s.max()) / temperature)  # in [0, 1], the largest 1: the sum is >= 1
    p /= p.sum()
    return int(rng.choice(s.size, p=p))


def generate_ids(model, start_id, length=100, *, temperature=1.0, top_k=None, skip_ids=(),
                 prime_ids=(), rng=None):
    """Sample ``length`` ids from a language model, starting after ``start_id``.

    The model keeps its recurrent state: call ``model.reset_state()`` first for a
    fresh start. ``prime_ids`` are fed (after ``start_id``) before sampling.

    Parameters
    ----------
    model : language model with ``predict(ids (1, 1)) -> scores (1, 1, V)``
    start_id : int
    length : int
        How many ids to return (the start id is not included).
    temperature, top_k, skip_ids : see :func:`sample_next`
    prime_ids : sequence of int
    rng : numpy.random.Generator or int seed, optional

    Returns
    -------
    list of int, ``length`` sampled ids
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    xp = get_array_module(*model.params)
    out = []
    with evaluation_mode(model), fixed_params(model):
        x = int(start_id)
        for p in prime_ids:
            model.predict(xp.asarray([[x]]))
            x = int(p)
        while len(out) < length:
            adapt_to_load()
            scores = model.predict(xp.asarray([[x]]))  # (1, 1, V)
            x = sample_next(scores[0, -1], rng, temperature, top_k, skip_ids)
            out.append(x)
    return out


def book_generate(model, start_id, skip_ids=None, sample_size=100, *, rng=None,
                  temperature=1.0, top_k=None):
    """The book's ``Rnnlm.generate``: a list of ``sample_size`` word ids that
    starts with ``start_id`` itself, followed by ids sampled one after another
    (:func:`generate_ids`); the models' ``generate`` for language models.

    ``skip_ids`` are never drawn (the book draws again from the next prediction;
    here they are left out of the distribution). The model keeps its recurrent
    state, as in the book (prime it with ``predict`` first, or call
    ``reset_state()``). ``rng``: a Generator or a seed (the book uses NumPy's
    global generator; ``np.random.seed`` does not seed this one).

    Returns
    -------
    list of int, ``sample_size`` ids, the first ``start_id``
    """
    if int(sample_size) != sample_size or sample_size < 1:
        raise ValueError(f"generate: argument 'sample_size' expected a positive int, got "
                         f"{sample_size!r}")
    ids = generate_ids(model, start_id, int(sample_size) - 1, temperature=temperature,
                       top_k=top_k, skip_ids=() if skip_ids is None else skip_ids, rng=rng)
    return [int(start_id)] + ids


def _start_column(xp, start_id, n):
    start = xp.asarray(start_id)
    if start.ndim == 0:
        start = xp.full(n, int(start_id))
    return start.astype(np.int64 if xp is np else start.dtype)


def greedy_decode(model, xs, start_id, length):
    """Arg-max decoding of a seq2seq model, for a whole batch at once.

    Parameters
    ----------
    model : seq2seq model (see the module docstring)
    xs : int array, shape (N, Tq)
    start_id : int, or int array of shape (N,)
    length : int

    Returns
    -------
    int array, shape (N, length)
    """
    return _in_row_blocks(_greedy_decode, model, xs, start_id, length)


def _greedy_decode(model, xs, start_id, length):
    xp = get_array_module(xs)
    with evaluation_mode(model), fixed_params(model):
        model.begin_decoding(xs)
        ids = _start_column(xp, start_id, xs.shape[0])
        out = []
        for _ in range(length):
            adapt_to_load()
            ids = model.decode_step(ids).argmax(axis=1)
            out.append(ids)
    return xp.stack(out, axis=1) if out else xp.zeros((xs.shape[0], 0), dtype=np.int64)


def sequence_log_prob(model, xs, start_id, ys):
    """The model's log-probability of answers ``ys (N, L)`` given ``xs (N, Tq)``
    (teacher-forced), as an array of shape (N,)."""
    return _in_row_blocks(_sequence_log_prob, model, xs, start_id, ys)


def _sequence_log_prob(model, xs, start_id, ys):
    xp = get_array_module(xs)
    with evaluation_mode(model), fixed_params(model):
        model.begin_decoding(xs)
        ids = _start_column(xp, start_id, xs.shape[0])
        total = xp.zeros(xs.shape[0])
        rows = xp.arange(xs.shape[0])
        for t in range(ys.shape[1]):
            logp = log_softmax(model.decode_step(ids).astype(np.float64))
            total += logp[rows, ys[:, t]]
            ids = ys[:, t]
    return total


def beam_search(model, xs, start_id, length, beam_size=3, *, end_id=None, length_penalty=0.0,
                return_scores=False):
    """Beam search decoding of a seq2seq model, batched over ``N`` inputs.

    Each input keeps ``beam_size`` hypotheses; at every step all their one-word
    extensions are scored by total log-probability and the best ``beam_size`` are
    kept. With ``end_id``, a hypothesis that emits it is finished: it is padded
    with ``end_id`` at no further cost. The final choice ranks hypotheses by
    ``log_prob / n_words ** length_penalty`` (0 disables length normalisation).
    The greedy answer is scored too and returned when it ranks higher, so a wider
    beam never does worse than greedy decoding.

    Parameters
    ----------
    model : seq2seq model (see the module docstring)
    xs : int array, shape (N, Tq)
    start_id : int or int array (N,)
    length : int, the number of ids to produce
    beam_size : int >= 1
    end_id : int, optional
    length_penalty : float >= 0
    return_scores : bool
        Also return the chosen sequences' total log-probabilities ``(N,)``.

    Returns
    -------
    int array (N, length) [, float array (N,)]
    """
    if beam_size < 1:
        raise ValueError(f"beam_search: argument 'beam_size' expected an int >= 1, got {beam_size}")
    return _in_row_blocks(_beam_search, model, xs, start_id, length, beam_size, end_id,
                          length_penalty, return_scores)


def _beam_search(model, xs, start_id, length, beam_size, end_id, length_penalty, return_scores):
    xp = get_array_module(xs)
    N, B = xs.shape[0], int(beam_size)
    with evaluation_mode(model), fixed_params(model):
        model.begin_decoding(xs)
        model.reorder_decoding(xp.repeat(xp.arange(N), B))  # N*B rows
        ids = xp.repeat(_start_column(xp, start_id, N), B)
        scores = xp.full((N, B), -xp.inf)
        scores[:, 0] = 0.0  # only one live hypothesis per input at the start
        history = xp.zeros((N, B, 0), dtype=np.int64)
        finished = xp.zeros((N, B), dtype=bool)
        n_words = xp.zeros((N, B))
        for _ in range(length):
            adapt_to_load()
            logp = log_softmax(model.decode_step(ids).astype(np.float64))  # (N*B, V)
            V = logp.shape[1]
            logp = logp.reshape(N, B, V)
            if end_id is not None:
                done = finished[:, :, None]
                pad = xp.full(V, -xp.inf)
                pad[end_id] = 0.0
                logp = xp.where(done, pad, logp)
            total = (scores[:, :, None] + logp).reshape(N, B * V)
            top = xp.argsort(-total, axis=1, kind="stable")[:, :B]  # (N, B)
            beam, token = top // V, top % V
            rows = xp.arange(N)[:, None]
            scores = total[rows, top]
            history = xp.concatenate([history[rows, beam], token[:, :, None]], axis=2)
            prev_finished = finished[rows, beam]
            n_words = n_words[rows, beam] + (~prev_finished)
            finished = prev_finished | ((token == end_id) if end_id is not None else False)
            model.reorder_decoding((rows * B + beam).reshape(-1))
            ids = token.reshape(-1)
        ranked = scores / xp.maximum(n_words, 1) ** length_penalty
        best = ranked.argmax(axis=1)
        result = history[xp.arange(N), best]
        best_scores = scores[xp.arange(N), best]
        best_ranked = ranked[xp.arange(N), best]
    greedy = greedy_decode(model, xs, start_id, length)
    g_len = xp.full(N, float(length))
    if end_id is not None:  # pad after the first end, as the beam does
        is_end = greedy == end_id
        first = xp.where(is_end.any(axis=1), is_end.argmax(axis=1) + 1, length)
        g_len = first.astype(np.float64)
        after = xp.arange(length)[None, :] >= first[:, None]
        greedy = xp.where(after, end_id, greedy)
    g_scores = sequence_log_prob(model, xs, start_id, greedy)
    g_ranked = g_scores / g_len ** length_penalty
    use_greedy = g_ranked > best_ranked + 1e-12
    result = xp.where(use_greedy[:, None], greedy, result)
    best_scores = xp.where(use_greedy, g_scores, best_scores)
    return (result, best_scores) if return_scores else result


def _in_row_blocks(decode, model, xs, *args):
    """``decode(model, xs, *args)``, whose outputs (an array, or a tuple of
    arrays) have a row for each row of ``xs (N, ...)``: on blocks of rows at the
    same time (see the module docstring) when there are :data:`MIN_ROWS_PER_THREAD`
    rows or more for each of two threads or more, else on the whole batch. The
    ``args`` that are arrays of ``N`` rows are cut with ``xs``."""
    adapt_to_load()
    N = xs.shape[0]
    n = min(get_num_threads(), N // MIN_ROWS_PER_THREAD)
    if (n < 2 or get_array_module(xs) is not np or not hasattr(model, "replica")
            or not can_run_parallel()):
        return decode(model, xs, *args)

    def rows(arg, block):
        return arg[block] if np.ndim(arg) > 0 and len(arg) == N else arg

    blocks = even_blocks(N, n)
    jobs = [partial(decode, model.replica(), xs[b], *(rows(a, b) for a in args)) for b in blocks]
    parts = run_parallel(jobs)
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)

"""Count-based word vectors: tokenising, contexts, co-occurrence, PPMI, SVD,
similarity and analogy (chapter 2 of the book, vectorised), and the accuracy of
word vectors on a set of analogy questions.

Typical use::

    corpus, vocab = preprocess("You say goodbye and I say hello.")
    C = create_co_matrix(corpus, len(vocab), window_size=1)   # (V, V) int32
    M = ppmi(C)                                               # (V, V) float32
    vecs = truncated_svd(M, 2)                                # (V, 2)
    most_similar("you", vocab, vecs, top=3)                   # [(word, cosine), ...]

    questions = read_analogy_questions("ptb_analogies.txt")   # {section: [(a, b, c, d)]}
    analogy_accuracy(questions, vocab, vecs).total.accuracy   # share ranked first

Nothing here prints; rankings are returned as lists of ``(word, score)``.
The arrays are NumPy (the co-occurrence and PPMI functions also accept CuPy
arrays and return the same module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import get_array_module, to_cpu
from .errors import ShapeError
from .vocab import UnknownWordError, Vocabulary

__all__ = [
    "preprocess",
    "create_contexts_target",
    "convert_one_hot",
    "create_co_matrix",
    "ppmi",
    "truncated_svd",
    "cos_similarity",
    "most_similar",
    "analogy",
    "ANALOGY_METHODS",
    "analogy_scores",
    "read_analogy_questions",
    "analogy_ranks",
    "AnalogyScore",
    "AnalogyAccuracy",
    "analogy_accuracy",
]

_PERIOD = re.compile(r"\.")


def preprocess(text: str):
    """Lowercase, split off periods and whitespace-tokenise ``text`` (the book's
    ``preprocess``).

    Parameters
    ----------
    text : str

    Returns
    -------
    corpus : ndarray of int32, shape (T,)
        Word ids in text order.
    vocab : Vocabulary
        Ids in order of first occurrence; ``vocab.word_to_id``,
        ``vocab.id_to_word``.

    Examples
    --------
    >>> corpus, vocab = preprocess("You say goodbye and I say hello.")
    >>> corpus.tolist()
    [0, 1, 2, 3, 4, 1, 5, 6]
    >>> vocab.words
    ['you', 'say', 'goodbye', 'and', 'i', 'hello', '.']
    """
    words = _PERIOD.sub(" .", text.lower()).split()
    vocab = Vocabulary(words)
    return vocab.encode(words), vocab


def _check_corpus(where, corpus):
    if getattr(corpus, "ndim", None) != 1 or corpus.dtype.kind not in "iu":
        raise ShapeError(f"{where}: argument 'corpus' expected a 1-D integer array (T,), got "
                         f"{getattr(corpus, 'dtype', type(corpus).__name__)} of shape "
                         f"{getattr(corpus, 'shape', None)}")


def _check_window(where, window_size):
    if int(window_size) != window_size or window_size < 1:
        raise ValueError(f"{where}: argument 'window_size' expected a positive integer, "
                         f"got {window_size!r}")
    return int(window_size)


def create_contexts_target(corpus, window_size: int = 1):
    """Context windows and centre words for CBOW / skip-gram.

    Parameters
    ----------
    corpus : int array, shape (T,)
    window_size : int
        Words on each side, ``w``.

    Returns
    -------
    contexts : int array, shape (T - 2w, 2w)
        ``contexts[i] = corpus[i : i + w] ++ corpus[i + w + 1 : i + 2w + 1]``.
    target : int array, shape (T - 2w,)
        ``corpus[w : T - w]``.
    """
    where = "create_contexts_target"
    _check_corpus(where, corpus)
    w = _check_window(where, window_size)
    xp = get_array_module(corpus)
    T = corpus.shape[0]
    if T < 2 * w + 1:
        raise ShapeError(f"{where}: argument 'corpus' expected at least 2 * window_size + 1 = "
                         f"{2 * w + 1} words, got {T}")
    offsets = xp.concatenate([xp.arange(-w, 0), xp.arange(1, w + 1)])  # (2w,)
    centres = xp.arange(w, T - w)  # (T - 2w,)
    contexts = corpus[centres[:, None] + offsets[None, :]]
    return contexts, corpus[w:T - w]


def convert_one_hot(ids, vocab_size: int):
    """One-hot encode word ids.

    Parameters
    ----------
    ids : int array, any shape ``S`` (e.g. ``(N,)`` targets or ``(N, C)`` contexts)
    vocab_size : int

    Returns
    -------
    int32 array, shape ``S + (vocab_size,)``
    """
    xp = get_array_module(ids)
    if getattr(ids, "dtype", None) is None or ids.dtype.kind not in "iu":
        raise ShapeError(f"convert_one_hot: argument 'ids' expected integer ids, got "
                         f"{getattr(ids, 'dtype', type(ids).__name__)}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ShapeError(f"convert_one_hot: argument 'ids' expected ids in [0, {vocab_size}), "
                         f"got {bad}")
    out = xp.zeros(ids.shape + (vocab_size,), dtype=np.int32)
    flat = out.reshape(-1, vocab_size)
    flat[xp.arange(flat.shape[0]), ids.reshape(-1)] = 1
    return out


def create_co_matrix(corpus, vocab_size: int, window_size: int = 1):
    """Co-occurrence counts within ``window_size`` words on either side.

    ``C[i, j]`` is the number of times word ``j`` occurs at distance
    ``1 .. window_size`` (left or right) from an occurrence of word ``i``; ``C``
    is symmetric. Built with one sort of all ``2 * window_size * T`` pairs (no
    loop over words).

    Parameters
    ----------
    corpus : int array, shape (T,)
    vocab_size : int
        ``V``; ids must be below it.
    window_size : int

    Returns
    -------
    int32 array, shape (V, V)
    """
    where = "create_co_matrix"
    _check_corpus(where, corpus)
    w = _check_window(where, window_size)
    xp = get_array_module(corpus)
    V = int(vocab_size)
    if corpus.size and (int(corpus.min()) < 0 or int(corpus.max()) >= V):
        bad = int(corpus.min()) if int(corpus.min()) < 0 else int(corpus.max())
        raise ShapeError(f"{where}: argument 'corpus' expected ids in [0, {V}), got {bad}")
    ids = corpus.astype(np.int64)
    keys = []
    for d in range(1, min(w, ids.size - 1) + 1):
        left, right = ids[:-d], ids[d:]
        keys.append(left * V + right)  # right neighbour of left
        keys.append(right * V + left)  # left neighbour of right
    C = xp.zeros((V, V), dtype=np.int32)
    if keys:
        pairs, counts = xp.unique(xp.concatenate(keys), return_counts=True)
        C.reshape(-1)[pairs] = counts
    return C


def ppmi(C, eps: float = 1e-8, *, chunk_elements: int = 1 << 24):
    """Positive pointwise mutual information of a co-occurrence matrix.

    ``M[i, j] = max(0, log2(C[i, j] * N / (S[i] * S[j]) + eps))`` with
    ``N = C.sum()`` and ``S = C.sum(axis=0)`` (the book's definition). Words that
    never co-occur (``S = 0``) get 0.

    Where ``C[i, j] = 0`` the value is ``max(0, log2(eps))`` (0 for the default
    ``eps``), so the logarithm is only evaluated at the non-zero counts, in
    float64, a block of about ``chunk_elements`` matrix entries at a time; the
    10,000-word PTB matrix (under 1 % non-zero) takes well under a second
    beyond allocating the float32 result.

    Parameters
    ----------
    C : array, shape (V, V)
        Co-occurrence counts (NumPy or CuPy).
    eps : float
        Added inside the logarithm.

    Returns
    -------
    float32 array, shape (V, V)
    """
    xp = get_array_module(C)
    if getattr(C, "ndim", None) != 2 or C.shape[0] != C.shape[1]:
        raise ShapeError(f"ppmi: argument 'C' expected a square matrix (V, V), got shape "
                         f"{getattr(C, 'shape', None)}")
    V = C.shape[0]
    N = float(C.sum(dtype=np.float64))
    S = C.sum(axis=0, dtype=np.float64)  # (V,)
    seen = S > 0
    inv_S = xp.where(seen, 1.0 / xp.where(seen, S, 1.0), 0.0)  # 0 for unseen words
    base = max(0.0, float(np.log2(eps)))  # the value where C == 0
    M = xp.zeros((V, V), dtype=np.float32) if base == 0.0 else \
        xp.full((V, V), base, dtype=np.float32)
    rows = max(1, chunk_elements // max(V, 1))
    for start in range(0, V, rows):
        block = C[start:start + rows]  # (b, V)
        flat = xp.flatnonzero(block)
        i, j = flat // V, flat % V
        pmi = block.reshape(-1)[flat].astype(np.float64)
        pmi *= N * inv_S[start + i] * inv_S[j]
        pmi += eps
        xp.log2(pmi, out=pmi)
        xp.maximum(pmi, 0.0, out=pmi)
        M[start:start + rows].reshape(-1)[flat] = pmi
    return M


def _fix_signs(U, V=None):
    """Flip each column so that its largest-magnitude entry is positive."""
    xp = get_array_module(U)
    pivots = xp.abs(U).argmax(axis=0)
    signs = xp.sign(U[pivots, xp.arange(U.shape[1])])
    signs[signs == 0] = 1
    U *= signs
    if V is not None:
        V *= signs[:, None]
    return U


def _scipy_svds():
    """SciPy's truncated SVD, or None without SciPy (an optional extra)."""
    try:
        from scipy.sparse.linalg import svds
    except ImportError:
        return None
    return svds


def _have_scipy() -> bool:
    return _scipy_svds() is not None


def truncated_svd(M, k: int, rng=None, *, method: str = "auto", n_iter: int = 5,
                  oversample: int = 10, return_singular_values: bool = False):
    """The ``k`` leading left singular vectors of ``M``: word vectors, the book's
    ``U[:, :wordvec_size]``.

    Parameters
    ----------
    M : array, shape (V, D)
        E.g. a PPMI matrix (NumPy; CuPy is moved to the CPU).
    k : int
        Number of dimensions, ``1 <= k <= min(V, D)`` (``< min(V, D)`` for SciPy).
    rng : numpy.random.Generator, optional
        Start vectors of the iterative methods; defaults to
        ``numpy.random.default_rng(0)``, so results are reproducible.
    method : {"auto", "full", "randomized", "scipy"}
        ``"full"``: :func:`numpy.linalg.svd` (exact, ``O(V D min(V, D))``).
        ``"randomized"``: randomized range finder with ``n_iter`` power
        iterations (Halko, Martinsson & Tropp, 2011), NumPy only.
        ``"scipy"``: :func:`scipy.sparse.linalg.svds` (Lanczos).
        ``"auto"``: full for matrices with ``min(V, D) <= 500`` or when ``k`` is
        close to it, else SciPy when installed, else randomized.
    n_iter, oversample : int
        Power iterations and extra columns of the randomized method.
    return_singular_values : bool
        Also return the singular values.

    Returns
    -------
    U : float32 array, shape (V, k)
        Orthonormal columns in order of decreasing singular value, each column's
        sign fixed so that its largest-magnitude entry is positive.
    s : float array, shape (k,)
        Only with ``return_singular_values``.
    """
    M = to_cpu(M)
    if M.ndim != 2:
        raise ShapeError(f"truncated_svd: argument 'M' expected a matrix (V, D), got shape "
                         f"{M.shape}")
    small = min(M.shape)
    if int(k) != k or not 1 <= k <= small:
        raise ValueError(f"truncated_svd: argument 'k' expected an integer in [1, {small}], "
                         f"got {k!r}")
    k = int(k)
    rng = np.random.default_rng(0) if rng is None else rng
    if method == "auto":
        if small <= 500 or k + oversample >= small:
            method = "full"
        else:
            method = "scipy" if _have_scipy() else "randomized"
    dtype = np.float64 if M.dtype == np.float64 else np.float32
    A = M.astype(dtype, copy=False)
    if method == "full":
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        U, s = U[:, :k], s[:k]
    elif method == "scipy":
        svds = _scipy_svds()

        if k >= small:
            raise ValueError(f"truncated_svd: method 'scipy' needs k < min(M.shape) = {small}, "
                             f"got {k}")
        v0 = rng.standard_normal(small).astype(dtype)
        U, s, _ = svds(A, k=k, v0=v0)
        order = np.argsort(s)[::-1]
        U, s = U[:, order], s[order]
    elif method == "randomized":
        U, s = _randomized_svd(A, k, rng, n_iter, oversample)
    else:
        raise ValueError(f"truncated_svd: argument 'method' expected one of 'auto', 'full', "
                         f"'randomized', 'scipy', got {method!r}")
    U = _fix_signs(np.ascontiguousarray(U, dtype=np.float32))
    return (U, s) if return_singular_values else U


def _randomized_svd(A, k, rng, n_iter, oversample):
    """Randomized SVD: ``Q`` spans ``(A A^T)^q A Omega``; the SVD of ``Q^T A``
    gives the leading singular triplets. ``A (V, D)``; returns ``U (V, k)``,
    ``s (k,)``."""
    width = min(k + oversample, min(A.shape))
    Omega = rng.standard_normal((A.shape[1], width)).astype(A.dtype)  # (D, width)
    Q, _ = np.linalg.qr(A @ Omega)  # (V, width)
    for _ in range(n_iter):  # re-orthonormalise after every product (stability)
        Z, _ = np.linalg.qr(A.T @ Q)  # (D, width)
        Q, _ = np.linalg.qr(A @ Z)  # (V, width)
    B = Q.T @ A  # (width, D)
    Ub, s, _ = np.linalg.svd(B, full_matrices=False)
    return (Q @ Ub)[:, :k], s[:k]


def cos_similarity(x, y, eps: float = 1e-8):
    """Cosine similarity along the last axis, broadcasting the leading ones.

    ``x / sqrt(sum x^2 + eps)`` dotted with ``y / sqrt(sum y^2 + eps)`` (the
    book's form: a zero vector gives 0 instead of a division by zero).

    Parameters
    ----------
    x : array, shape (..., D)
    y : array, shape (..., D)
        E.g. ``x (D,)`` and ``y (D,)`` give a float; ``x (D,)`` and ``y (V, D)``
        give ``(V,)``.

    Returns
    -------
    float or array of the broadcast leading shape
    """
    xp = get_array_module(x, y)
    x = xp.asarray(x, dtype=np.float64) if xp is np else x.astype(np.float64)
    y = xp.asarray(y, dtype=np.float64) if xp is np else y.astype(np.float64)
    if x.shape[-1:] != y.shape[-1:]:
        raise ShapeError(f"cos_similarity: arguments 'x' and 'y' expected the same last "
                         f"dimension, got shapes {x.shape} and {y.shape}")
    nx = x / xp.sqrt((x * x).sum(axis=-1, keepdims=True) + eps)
    ny = y / xp.sqrt((y * y).sum(axis=-1, keepdims=True) + eps)
    out = (nx * ny).sum(axis=-1)
    return float(out) if out.ndim == 0 else out


def _word_to_id(vocab) -> Mapping:
    """The ``word_to_id`` mapping of a :class:`Vocabulary` (or the mapping itself)."""
    w2i = vocab.word_to_id if hasattr(vocab, "word_to_id") else vocab
    if not isinstance(w2i, Mapping):
        raise TypeError(f"expected a Vocabulary or a word_to_id mapping, got "
                        f"{type(vocab).__name__}")
    return w2i


def _word_id(vocab, word) -> int:
    """Id of ``word`` in a :class:`Vocabulary` (or a ``word_to_id`` mapping)."""
    if isinstance(vocab, Vocabulary):
        return vocab[word]
    w2i = _word_to_id(vocab)
    try:
        return int(w2i[word])
    except KeyError:
        raise UnknownWordError(word, len(w2i)) from None


def _id_to_word(vocab):
    if hasattr(vocab, "id_to_word"):
        return vocab.id_to_word
    return {i: w for w, i in vocab.items()}


def _rank(vocab, word_matrix, query_vec, exclude, top):
    """``[(word, cosine)]`` of the ``top`` rows nearest to ``query_vec``, skipping
    the ids in ``exclude``; ties keep the lower id first."""
    sims = to_cpu(cos_similarity(query_vec, word_matrix))  # (V,)
    sims = np.asarray(sims, dtype=np.float64)
    order = np.argsort(-sims, kind="stable")
    id_to_word = _id_to_word(vocab)
    result = []
    for i in order[:top + len(exclude)].tolist():
        if i in exclude:
            continue
        if len(result) >= top:
            break
        result.append((id_to_word[i], float(sims[i])))
    return result


def _check_matrix(where, vocab, word_matrix):
    if getattr(word_matrix, "ndim", None) != 2:
        raise ShapeError(f"{where}: argument 'word_matrix' expected shape (V, D), got "
                         f"{getattr(word_matrix, 'shape', type(word_matrix).__name__)}")
    V = len(vocab)
    if word_matrix.shape[0] != V:
        raise ShapeError(f"{where}: argument 'word_matrix' expected shape ({V}, D) for a "
                         f"vocabulary of {V} words, got {tuple(word_matrix.shape)}")


def most_similar(query: str, vocab, word_matrix, top: int = 5):
    """The words whose vectors have the highest cosine similarity to ``query``'s.

    Parameters
    ----------
    query : str
    vocab : Vocabulary
        (A plain ``word_to_id`` dict also works.)
    word_matrix : array, shape (V, D)
        Row ``i`` is the vector of word ``i``.
    top : int

    Returns
    -------
    list of (str, float)
        At most ``top`` pairs, highest cosine first, ``query`` itself excluded.

    Raises
    ------
    UnknownWordError
        (a ``KeyError``) naming ``query`` when it is not in ``vocab``.
    """
    _check_matrix("most_similar", vocab, word_matrix)
    qid = _word_id(vocab, query)
    return _rank(vocab, word_matrix, word_matrix[qid], {qid}, top)


ANALOGY_METHODS = ("3cosadd", "3cosmul", "book")
"""How :func:`analogy` scores the answers to ``a : b = c : ?``:

- ``"3cosadd"`` (the default, the literature's): the cosine of each word with
  ``unit(b) - unit(a) + unit(c)`` (``unit(v) = v / |v|``);
- ``"3cosmul"`` (Levy & Goldberg 2014): ``cos'(w, b) cos'(w, c) / (cos'(w, a) +
  0.001)`` with ``cos' = (cos + 1) / 2``;
- ``"book"``: the book's ``common.util.analogy``: ``q = b - a + c`` from the raw
  vectors, ``q / |q|``, dotted with each word's raw (not normalised) vector; the
  book's answers and printed scores.
"""

_COSMUL_EPS = 0.001


def _check_method(where, method):
    if method not in ANALOGY_METHODS:
        raise ValueError(f"{where}: argument 'method' expected one of "
                         f"{', '.join(ANALOGY_METHODS)}, got {method!r}")


def analogy_scores(word_matrix, a, b, c, method: str = "3cosadd"):
    """The score of every word as the answer to ``a : b = c : ?`` (see
    :data:`ANALOGY_METHODS`), in float64; ``a``, ``b``, ``c`` not excluded.

    Parameters
    ----------
    word_matrix : array, shape (V, D)
        NumPy or CuPy.
    a, b, c : int arrays, shape (n,)
        Word ids of n questions.
    method : {"3cosadd", "3cosmul", "book"}

    Returns
    -------
    array of float64, shape (n, V)
        Higher is better; NaN where the book's query is the zero vector.
    """
    _check_method("analogy_scores", method)
    xp = get_array_module(word_matrix)
    W = word_matrix.astype(np.float64)  # (V, D)
    if method == "book":
        query = W[b] - W[a] + W[c]  # (n, D)
        with np.errstate(invalid="ignore", divide="ignore"):
            query = query / xp.sqrt((query * query).sum(axis=1, keepdims=True))
        return query @ W.T
    squares = (W * W).sum(axis=1, keepdims=True)  # (V, 1)
    words = W / xp.sqrt(squares + 1e-8)  # rows as cos_similarity scales them
    if method == "3cosmul":
        shifted = [(words[x] @ words.T + 1) / 2 for x in (a, b, c)]  # (n, V) each
        return shifted[1] * shifted[2] / (shifted[0] + _COSMUL_EPS)
    units = W / xp.sqrt(squares + 1e-16)
    query = units[b] - units[a] + units[c]  # (n, D)
    query = query / xp.sqrt((query * query).sum(axis=1, keepdims=True) + 1e-8)
    return query @ words.T


def analogy(a: str, b: str, c: str, vocab, word_matrix, top: int = 5, method: str = "3cosadd"):
    """Solve ``a : b = c : ?`` by vector arithmetic; ``a``, ``b`` and ``c`` are
    excluded from the answers. E.g. ``analogy("man", "king", "woman", ...)``
    should rank ``"queen"`` first.

    ``method="3cosadd"`` (the default) ranks the words by their cosine with
    ``unit(b) - unit(a) + unit(c)``; ``"3cosmul"`` by Levy and Goldberg's
    multiplicative score; ``"book"`` as the book's ``util.analogy`` does (the raw
    ``b - a + c``, normalised, dotted with the raw word vectors), which gives the
    book's answers and scores (see :data:`ANALOGY_METHODS`).

    Parameters
    ----------
    a, b, c : str
    vocab : Vocabulary
    word_matrix : array, shape (V, D)
    top : int
    method : {"3cosadd", "3cosmul", "book"}

    Returns
    -------
    list of (str, float)
        At most ``top`` pairs, highest score first (ties: the lower id first;
        NaN scores are left out, as the book does).

    Raises
    ------
    UnknownWordError
        (a ``KeyError``) naming the first of ``a``, ``b``, ``c`` not in ``vocab``.
    """
    _check_matrix("analogy", vocab, word_matrix)
    _check_method("analogy", method)
    ids = [_word_id(vocab, w) for w in (a, b, c)]
    xp = get_array_module(word_matrix)
    scores = analogy_scores(word_matrix, *(xp.asarray([i]) for i in ids), method=method)[0]
    scores = np.asarray(to_cpu(scores), dtype=np.float64)  # (V,)
    order = np.argsort(-scores, kind="stable")
    id_to_word = _id_to_word(vocab)
    result = []
    for i in order.tolist():
        if len(result) >= top:
            break
        if i in ids or np.isnan(scores[i]):
            continue
        result.append((id_to_word[i], float(scores[i])))
    return result


def read_analogy_questions(path, *, lowercase: bool = False) -> dict[str, list[tuple]]:
    """Analogy questions in the format of the public Google analogy set.

    A line ``: name`` starts a section; every other non-blank line holds four
    words ``a b c d``, meaning ``a : b = c : d``. Lines before the first
    section header go to a section named ``""``.

    Parameters
    ----------
    path : str or Path
    lowercase : bool
        Lower-case every word (for vocabularies such as PTB's).

    Returns
    -------
    dict of str to list of (str, str, str, str)
        The sections in file order.
    """
    path = Path(path)
    sections: dict[str, list[tuple]] = {}
    current = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            current = line[1:].strip()
            sections.setdefault(current, [])
            continue
        words = (line.lower() if lowercase else line).split()
        if len(words) != 4:
            raise ValueError(f"{path}:{number}: expected a section line ': name' or four "
                             f"words 'a b c d', got {line!r}")
        sections.setdefault(current, []).append(tuple(words))
    return sections


def _question_ids(questions, vocab):
    """Ids ``(Q, 4)`` of the questions' words, -1 for a word not in ``vocab``."""
    w2i = _word_to_id(vocab)
    ids = np.full((len(questions), 4), -1, dtype=np.int64)
    for q, question in enumerate(questions):
        if len(question) != 4 or not all(isinstance(w, str) for w in question):
            raise ValueError(f"analogy_ranks: argument 'questions' expected four words "
                             f"(a, b, c, d) per question, got {question!r} at index {q}")
        for k, word in enumerate(question):
            ids[q, k] = w2i.get(word, -1)
    return ids


def analogy_ranks(questions, vocab, word_matrix, *, chunk_size: int = 512,
                  method: str = "3cosadd"):
    """The rank of each question's answer under :func:`analogy`'s scoring.

    For ``a : b = c : d`` the words are scored by ``method`` (see
    :data:`ANALOGY_METHODS`; by default the cosine similarity of their vectors to
    ``unit(b) - unit(a) + unit(c)``) and ``a``, ``b``, ``c`` are left out (as
    :func:`analogy` and the book do); the rank of ``d`` is 1 plus the
    number of other words scored higher, or scored equally with a lower id (the
    order :func:`analogy` lists them in), so rank 1 is a correct answer. A
    ``d`` equal to ``a``, ``b`` or ``c`` can never be found and gets a rank
    past every other word. ``chunk_size`` questions are scored at a time, one
    matrix product each.

    Parameters
    ----------
    questions : sequence of (str, str, str, str)
    vocab : Vocabulary
        (A plain ``word_to_id`` dict also works.)
    word_matrix : array, shape (V, D)
        NumPy or CuPy.
    chunk_size : int
    method : {"3cosadd", "3cosmul", "book"}

    Returns
    -------
    ndarray of int64, shape (Q,)
        The ranks, from 1; 0 where a word of the question is not in ``vocab``.
    """
    _check_matrix("analogy_ranks", vocab, word_matrix)
    _check_method("analogy_ranks", method)
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"analogy_ranks: argument 'chunk_size' expected a positive integer, "
                         f"got {chunk_size!r}")
    questions = list(questions)
    ids = _question_ids(questions, vocab)  # (Q, 4)
    ranks = np.zeros(len(questions), dtype=np.int64)
    known = np.flatnonzero((ids >= 0).all(axis=1))
    if known.size == 0:
        return ranks
    xp = get_array_module(word_matrix)
    V = word_matrix.shape[0]
    columns = xp.arange(V)[None, :]  # (1, V)
    for start in range(0, known.size, int(chunk_size)):
        rows = known[start:start + int(chunk_size)]
        a, b, c, d = (xp.asarray(ids[rows, k]) for k in range(4))  # (n,) each
        scores = analogy_scores(word_matrix, a, b, c, method)  # (n, V)
        scores[xp.isnan(scores)] = -xp.inf  # the book leaves NaN scores out
        n = scores.shape[0]
        for excluded in (a, b, c):
            scores[xp.arange(n), excluded] = -xp.inf
        answer = scores[xp.arange(n), d][:, None]  # (n, 1)
        ahead = (scores > answer) | ((scores == answer) & (columns < d[:, None]))
        ranks[rows] = to_cpu(ahead.sum(axis=1)) + 1
    return ranks


@dataclass(frozen=True)
class AnalogyScore:
    """How many questions were answered correctly (rank 1), answered in all, and
    skipped for a word missing from the vocabulary."""

    correct: int
    answered: int
    skipped: int

    @property
    def accuracy(self) -> float:
        """``correct / answered`` (0.0 when nothing was answered)."""
        return self.correct / self.answered if self.answered else 0.0

    def as_dict(self) -> dict:
        return {"correct": self.correct, "answered": self.answered, "skipped": self.skipped,
                "accuracy": self.accuracy}


@dataclass(frozen=True)
class AnalogyAccuracy:
    """:class:`AnalogyScore` over all questions (``total``) and per section."""

    total: AnalogyScore
    sections: dict

    def as_dict(self) -> dict:
        return {"total": self.total.as_dict(),
                "sections": {name: s.as_dict() for name, s in self.sections.items()}}


def _score(ranks) -> AnalogyScore:
    return AnalogyScore(correct=int((ranks == 1).sum()), answered=int((ranks > 0).sum()),
                        skipped=int((ranks == 0).sum()))


def analogy_accuracy(questions, vocab, word_matrix, *, chunk_size: int = 512,
                     method: str = "3cosadd"):
    """The share of analogy questions whose answer :func:`analogy` ranks first
    (scored by ``method``, see :data:`ANALOGY_METHODS`).

    Parameters
    ----------
    questions : dict of str to sequence of (a, b, c, d), or a sequence of them
        Sections as :func:`read_analogy_questions` returns them; a plain
        sequence is one section named ``"all"``.
    vocab : Vocabulary
    word_matrix : array, shape (V, D)
    chunk_size : int
        Questions scored per matrix product (see :func:`analogy_ranks`).

    Returns
    -------
    AnalogyAccuracy
        ``total`` and ``sections[name]``, each an :class:`AnalogyScore`;
        questions with a word not in ``vocab`` are skipped and counted.
    """
    if not isinstance(questions, Mapping):
        if isinstance(questions, (str, bytes)) or not isinstance(questions, Iterable):
            raise TypeError(f"analogy_accuracy: argument 'questions' expected a dict of "
                            f"sections or a sequence of (a, b, c, d), got "
                            f"{type(questions).__name__}")
        questions = {"all": list(questions)}
    names = list(questions)
    flat = [q for name in names for q in questions[name]]
    ranks = analogy_ranks(flat, vocab, word_matrix, chunk_size=chunk_size, method=method)
    sections, start = {}, 0
    for name in names:
        stop = start + len(questions[name])
        sections[name] = _score(ranks[start:stop])
        start = stop
    return AnalogyAccuracy(total=_score(ranks), sections=sections)

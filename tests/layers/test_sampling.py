"""Negative sampling: the sampler's distribution (chi-square against the exact
successive-sampling probabilities), its invariants (no target, no repeats, no
zero-count words), NumPy/CuPy agreement, and NegativeSamplingLoss's value and
gradients."""

import itertools

import numpy as np
import pytest

import timelayers as tl
from support.assertions import assert_close, assert_gradcheck, randn
from timelayers.layers.sampling import NegativeSamplingLoss, UnigramSampler

METHODS = ["rejection", "exponential", "counter"]


def chi2_critical(df, z=3.09):
    """Upper 0.1 % point of the chi-square distribution (Wilson-Hilferty; no SciPy)."""
    return df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3


def chi2_statistic(observed, expected, min_expected=5.0):
    """Pearson's statistic, pooling the categories expected fewer than 5 times."""
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    small = expected < min_expected
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return ((observed - expected) ** 2 / expected).sum(), expected.size - 1


def successive_probs(p, target, k):
    """Exact probability of every ordered k-tuple under sampling without
    replacement from ``p`` with ``target`` excluded (np.random.choice's law)."""
    others = [w for w in range(p.size) if w != target]
    probs = {}
    for tup in itertools.permutations(others, k):
        prob, left = 1.0, 1.0 - p[target]
        for w in tup:
            prob *= p[w] / left
            left -= p[w]
        probs[tup] = prob
    return probs


def test_word_p_is_count_power():
    counts = np.array([10, 0, 3, 7, 1])
    s = UnigramSampler(counts, power=0.75, sample_size=2, rng=np.random.default_rng(0))
    want = np.array([10, 0, 3, 7, 1]) ** 0.75
    np.testing.assert_allclose(s.word_p, want / want.sum(), rtol=1e-14)
    assert s.word_p[1] == 0


@pytest.mark.parametrize("method", METHODS)
def test_exact_distribution_tiny_vocab(method):
    """k = 3 of V = 6 with heavy collisions: ordered triples against exact probabilities."""
    counts = np.array([40, 25, 12, 8, 5, 2])
    p = counts ** 0.75 / (counts ** 0.75).sum()
    target, k, n = 1, 3, 30000
    s = UnigramSampler(counts, sample_size=k, rng=np.random.default_rng(123), method=method)
    neg = s.get_negative_sample(np.full(n, target))
    exact = successive_probs(p, target, k)
    assert abs(sum(exact.values()) - 1) < 1e-12
    keys = list(exact)
    index = {key: i for i, key in enumerate(keys)}
    observed = np.bincount([index[tuple(row)] for row in neg.tolist()], minlength=len(keys))
    stat, df = chi2_statistic(observed, np.array([exact[key] for key in keys]) * n)
    assert stat < chi2_critical(df), (stat, df)


@pytest.mark.parametrize("method", METHODS)
def test_frequencies_follow_count_power(method):
    """k = 1 over V = 60 Zipf-like counts with random targets: the frequency of
    each word is sum over rows of p[w] / (1 - p[target]) (target excluded)."""
    rng = np.random.default_rng(7)
    V, n = 60, 40000
    counts = (1000 / np.arange(1, V + 1)).astype(int) + 1
    p = counts ** 0.75 / (counts ** 0.75).sum()
    target = rng.integers(0, V, n)
    s = UnigramSampler(counts, sample_size=1, rng=np.random.default_rng(11), method=method)
    neg = s.get_negative_sample(target)[:, 0]
    assert not np.any(neg == target)
    # expected[w] = sum_n p[w] / (1 - p[t_n]) for t_n != w
    per_target = np.bincount(target, minlength=V)
    expected = p * (per_target / (1 - p)).sum() - p * per_target / (1 - p)
    stat, df = chi2_statistic(np.bincount(neg, minlength=V), expected)
    assert stat < chi2_critical(df), (stat, df)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("V,k", [(2, 1), (6, 5), (50, 5), (10000, 5)])
def test_no_target_no_repeats(method, V, k):
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 1000, V)
    counts[0] = 10 ** 6  # a dominant word that collides often
    s = UnigramSampler(counts, sample_size=k, rng=rng, method=method)
    target = rng.integers(0, V, 500)
    target[::3] = 0
    neg = s.get_negative_sample(target)
    assert neg.shape == (500, k) and neg.dtype == np.int64
    assert not np.any(neg == target[:, None])
    srt = np.sort(neg, axis=1)
    assert not np.any(srt[:, 1:] == srt[:, :-1])
    assert neg.min() >= 0 and neg.max() < V


def test_zero_count_words_never_drawn():
    counts = np.array([0, 5, 0, 3, 2, 0, 9])
    for method in METHODS:
        s = UnigramSampler(counts, sample_size=2, rng=np.random.default_rng(0), method=method)
        neg = s.get_negative_sample(np.arange(7).repeat(100))
        assert set(np.unique(neg).tolist()) <= {1, 3, 4, 6}


def test_auto_method():
    zipf = (1e6 / np.arange(1, 10001)).astype(int) + 1
    assert UnigramSampler(zipf, sample_size=5).method == "rejection"
    assert UnigramSampler(np.ones(6), sample_size=5).method == "exponential"


def test_reproducible_from_seed():
    counts = np.arange(1, 101)
    t = np.arange(100) % 100
    a = UnigramSampler(counts, rng=np.random.default_rng(5)).get_negative_sample(t)
    b = UnigramSampler(counts, rng=np.random.default_rng(5)).get_negative_sample(t)
    np.testing.assert_array_equal(a, b)


def test_every_array_module_draws_what_the_counter_method_draws_on_the_cpu(xp):
    """CuPy targets are drawn on the GPU by the counter method, whatever the
    sampler's method; a CPU sampler with method="counter" draws the same."""
    counts = np.arange(1, 201)
    t = np.random.default_rng(0).integers(0, 200, 64)
    ref = UnigramSampler(counts, rng=np.random.default_rng(9),
                         method="counter").get_negative_sample(t)
    method = "counter" if xp is np else "auto"
    got = UnigramSampler(xp.asarray(counts), rng=np.random.default_rng(9),
                         method=method).get_negative_sample(xp.asarray(t))
    assert tl.get_array_module(got) is xp and got.dtype == np.int64 and got.shape == (64, 5)
    np.testing.assert_array_equal(tl.to_cpu(got), ref)
    other = UnigramSampler(counts, rng=np.random.default_rng(9)).get_negative_sample(t)
    assert not np.array_equal(other, ref)   # the CPU's own methods draw otherwise


def test_counter_method_draws_the_same_in_row_blocks(monkeypatch):
    from timelayers.layers import sampling

    counts = np.arange(1, 31)
    t = np.random.default_rng(1).integers(0, 30, 50)
    whole = UnigramSampler(counts, rng=np.random.default_rng(2),
                           method="counter").get_negative_sample(t)
    monkeypatch.setattr(sampling, "_COUNTER_MAX_KEYS", 7 * 30)   # blocks of 7 rows
    blocks = UnigramSampler(counts, rng=np.random.default_rng(2),
                            method="counter").get_negative_sample(t)
    np.testing.assert_array_equal(blocks, whole)


def test_argument_errors():
    with pytest.raises(ValueError, match="sample_size.*\\[1, 4\\].*5"):
        UnigramSampler(np.ones(5), sample_size=5)
    with pytest.raises(ValueError, match="sample_size.*positive count"):
        UnigramSampler(np.array([1, 1, 0, 0, 0]), sample_size=2)
    with pytest.raises(ValueError, match="counts"):
        UnigramSampler(np.array([1, -1, 3]), sample_size=1)
    s = UnigramSampler(np.ones(5), sample_size=2)
    with pytest.raises(tl.ShapeError, match="target.*\\[0, 5\\).*7"):
        s.get_negative_sample(np.array([0, 7]))
    with pytest.raises(tl.ShapeError, match="target"):
        s.get_negative_sample(np.zeros((2, 2), dtype=int))


def test_from_corpus():
    corpus = np.array([0, 1, 1, 2, 2, 2, 3])
    s = UnigramSampler.from_corpus(corpus, sample_size=2, rng=np.random.default_rng(0))
    want = np.array([1, 2, 3, 1]) ** 0.75
    np.testing.assert_allclose(s.word_p, want / want.sum())


# -- NegativeSamplingLoss ---------------------------------------------------------

def _loss_setup(xp, rng, V=12, D=4, N=6, k=3, dtype=np.float64):
    W = randn(xp, rng, V, D, dtype=dtype)
    counts = rng.integers(1, 50, V)
    layer = NegativeSamplingLoss(W, counts, sample_size=k, rng=np.random.default_rng(1))
    h = randn(xp, rng, N, D, dtype=dtype)
    target = xp.asarray(rng.integers(0, V, N))
    target[1] = target[0]  # repeated targets: their gradients add up in dW
    return layer, W, h, target


def test_loss_value_is_book_sum_of_means(xp, rng):
    layer, W, h, target = _loss_setup(xp, rng)
    loss = layer.forward(h, target)
    neg = tl.to_cpu(layer.negatives)
    Wc, hc, tc = tl.to_cpu(W), tl.to_cpu(h), tl.to_cpu(target)
    assert neg.shape == (6, 3) and not np.any(neg == tc[:, None])

    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    pos = (Wc[tc] * hc).sum(1)
    want = -log_sigmoid(pos).mean()
    for j in range(3):
        s = (Wc[neg[:, j]] * hc).sum(1)
        want += -log_sigmoid(-s).mean()
    assert isinstance(loss, float) if xp is np else loss.shape == ()   # 0-d on the device
    assert abs(float(loss) - want) < 1e-12


def test_gradcheck_with_fixed_negatives(xp, rng):
    layer, W, h, target = _loss_setup(xp, rng)
    negatives = layer.sampler.get_negative_sample(target)
    errors = assert_gradcheck(layer, h, target, negatives, input_names=["h"])
    assert set(errors) == {"h", "W"}


def test_shared_W_and_grads_in_place(xp, rng):
    layer, W, h, target = _loss_setup(xp, rng)
    assert layer.params[0] is W and layer.param_names == ("W",)
    grad = layer.grads[0]
    layer.forward(h, target)
    dh = layer.backward()
    assert layer.grads[0] is grad and dh.shape == h.shape
    used = np.zeros(W.shape[0], bool)
    used[tl.to_cpu(target)] = True
    used[tl.to_cpu(layer.negatives).ravel()] = True
    g = tl.to_cpu(grad)
    assert np.all(g[~used] == 0) and np.all(np.abs(g[used]).sum(1) > 0)
    # dout scales linearly, backward is repeatable (overwrites the grads)
    g1 = g.copy()
    dh2 = layer.backward(2.0)
    assert_close(dh2, 2 * dh, rtol=1e-12)
    assert_close(layer.grads[0], 2 * g1, rtol=1e-12)


def test_float32_stays_float32(xp, rng):
    layer, W, h, target = _loss_setup(xp, rng, dtype=np.float32)
    layer.forward(h, target)
    assert layer.backward().dtype == np.float32
    assert layer.grads[0].dtype == np.float32


def test_loss_shape_errors():
    layer = NegativeSamplingLoss(np.zeros((10, 3)), np.ones(10), sample_size=2)
    with pytest.raises(tl.ShapeError, match="'h'.*\\(4, 3\\).*\\(4, 2\\)"):
        layer.forward(np.zeros((4, 2)), np.zeros(4, dtype=int))
    with pytest.raises(tl.ShapeError, match="'target'.*\\(4,\\).*\\(5,\\)"):
        layer.forward(np.zeros((4, 3)), np.zeros(5, dtype=int))
    with pytest.raises(tl.ShapeError, match="'negatives'"):
        layer.forward(np.zeros((4, 3)), np.zeros(4, dtype=int), np.zeros((3, 2), dtype=int))
    with pytest.raises(tl.ShapeError, match="'counts'"):
        NegativeSamplingLoss(np.zeros((10, 3)), np.ones(9), sample_size=2)


def test_loss_vs_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    V, D, N, k = 15, 5, 8, 4
    W, h = rng.standard_normal((V, D)), rng.standard_normal((N, D))
    target = rng.integers(0, V, N)
    layer = NegativeSamplingLoss(W, np.ones(V), sample_size=k, rng=np.random.default_rng(2))
    loss = layer.forward(h, target)
    dh = layer.backward()
    idx = torch.tensor(np.concatenate([target[:, None], layer.negatives], axis=1))
    tW, th = torch.tensor(W, requires_grad=True), torch.tensor(h, requires_grad=True)
    s = (tW[idx] * th[:, None, :]).sum(-1)  # (N, 1 + k)
    labels = torch.zeros_like(s)
    labels[:, 0] = 1
    per = torch.nn.functional.binary_cross_entropy_with_logits(s, labels, reduction="none")
    t_loss = per.mean(0).sum()  # the book's sum over columns of means over rows
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-12
    np.testing.assert_allclose(dh, th.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[0], tW.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("counts", [
    np.ones(7),
    np.array([0, 5, 0, 3, 2, 0, 9]),
    np.r_[10 ** 9, np.ones(999)],
    (1e6 / np.arange(1, 10001)).astype(int) + 1,
    np.random.default_rng(0).integers(0, 100, 1000),
])
def test_alias_table_reproduces_p(counts):
    from timelayers.layers.sampling import _alias_table

    w = counts.astype(float) ** 0.75
    w[counts == 0] = 0
    p = w / w.sum()
    prob, alias = _alias_table(p)
    V = p.size
    assert np.all((prob >= 0) & (prob <= 1))
    implied = (prob + np.bincount(alias, weights=1 - prob, minlength=V)) / V
    np.testing.assert_allclose(implied, p, rtol=1e-9, atol=1e-15)
    assert np.all(implied[p == 0] == 0)

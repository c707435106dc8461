"""What the tests share (the one helper module; no test module imports another):
assertions, test doubles, tiny models with their data, and the harness that runs
the CUDA kernels on a CPU."""

import contextlib
import importlib.util
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from timelayers import check_layer, models
from timelayers.backend import to_cpu
from timelayers.layers import Layer, TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from timelayers.models.base import Model

CUPY_TESTS = os.environ.get("TIMELAYERS_TEST_CUPY") in ("1", "standin")
"""Whether the CuPy tests run: on a GPU (``1``) or on the stand-in (``standin``)."""


def needs_cupy(test):
    """A test of CuPy arrays alone: skipped unless ``TIMELAYERS_TEST_CUPY`` is set,
    and marked ``cupy`` (what the stand-in's run selects, with the ``xp=cupy``
    cases of the other tests)."""
    skip = pytest.mark.skipif(not CUPY_TESTS, reason="needs TIMELAYERS_TEST_CUPY=1 (CuPy and "
                                                     "a GPU) or =standin")
    return pytest.mark.cupy(skip(test))


def randn(xp, rng, *shape, dtype=np.float64):
    return xp.asarray(rng.standard_normal(shape).astype(dtype))


def assert_gradcheck(layer, *inputs, tol=1e-6, **kwargs):
    """Every input and param gradient within ``tol`` of central differences."""
    errors = check_layer(layer, *inputs, **kwargs)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradcheck failed for {type(layer).__name__}: {errors}"
    return errors


def assert_close(a, b, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(to_cpu(a), to_cpu(b), rtol=rtol, atol=atol)


def fail_writes_after(monkeypatch, limit, error):
    """Make the files that ``timelayers.serialization`` opens write their first
    ``limit`` bytes, then raise ``error`` (a disk that fills up part-way)."""
    import timelayers.serialization as ser

    real_fdopen = os.fdopen

    class FailsAfter:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            b = memoryview(b).cast("B")
            if self.n + len(b) > limit:
                self.f.write(b[:limit - self.n])  # a partial write
                raise error
            self.n += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(ser.os, "fdopen", lambda fd, mode: FailsAfter(real_fdopen(fd, mode)))


class HostReadError(AssertionError):
    """A value was read to the host where the code should have kept it on the device."""


class DeviceArrayDouble(np.lib.mixins.NDArrayOperatorsMixin):
    """A NumPy array posing as an array on a device (as a CuPy array is): arithmetic,
    ufuncs and NumPy functions work on it and return doubles again, but every read
    of a value on the host -- ``float()``, ``int()``, ``bool()``, ``.item()``,
    formatting, ``numpy.asarray`` -- calls ``on_read()`` first, which by default
    raises :class:`HostReadError`. Results inherit the ``on_read`` of the first
    double among their inputs. ``.array`` is the NumPy array inside."""

    def __init__(self, array, on_read=None):
        self.array = np.asarray(array)
        self.on_read = on_read or self._refuse

    @staticmethod
    def _refuse():
        raise HostReadError("a device value was read to the host")

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    size = property(lambda self: self.array.size)
    ndim = property(lambda self: self.array.ndim)

    def _wrap(self, value):
        if isinstance(value, tuple):
            return tuple(self._wrap(v) for v in value)
        if isinstance(value, (np.ndarray, np.generic)):
            return DeviceArrayDouble(value, self.on_read)
        return value

    @staticmethod
    def _unwrap(value):
        if isinstance(value, DeviceArrayDouble):
            return value.array
        if isinstance(value, (list, tuple)):
            return type(value)(DeviceArrayDouble._unwrap(v) for v in value)
        return value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = self._unwrap(out)
        result = getattr(ufunc, method)(*self._unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return self._wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return self._wrap(func(*self._unwrap(args), **{k: self._unwrap(v)
                                                        for k, v in kwargs.items()}))

    def reshape(self, *shape):
        return self._wrap(self.array.reshape(*shape))

    def astype(self, dtype):
        return self._wrap(self.array.astype(dtype))

    def copy(self):
        return self._wrap(self.array.copy())

    def __getitem__(self, key):
        return self._wrap(self.array[key])

    def _read(self, convert):
        self.on_read()
        return convert(self.array)

    def __float__(self):
        return self._read(float)

    def __int__(self):
        return self._read(int)

    def __index__(self):
        return self._read(lambda a: a.__index__())

    def __bool__(self):
        return self._read(bool)

    def __format__(self, spec):
        return self._read(lambda a: format(a.item(), spec))

    def item(self):
        return self._read(lambda a: a.item())

    def __array__(self, dtype=None, copy=None):
        return self._read(lambda a: a if dtype is None else a.astype(dtype))

    def __repr__(self):
        return f"DeviceArrayDouble({self.array!r})"


def assert_gradcheck_attention(layer, *inputs, tol=1e-6, **kwargs):
    """:func:`assert_gradcheck` for layers and models with attention key biases
    (params named ``...bk``): their true gradient is exactly zero (adding a
    constant to all of a query's scores leaves its softmax unchanged), so they
    are checked to be below 1e-12 in absolute value instead of by relative error."""
    errors = check_layer(layer, *inputs, **kwargs)
    for name, grad in zip(layer.param_names, layer.grads):
        if name.endswith("bk"):
            assert float(np.abs(to_cpu(grad)).max()) < 1e-12, f"{name}: {grad}"
            errors.pop(name)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradcheck failed for {type(layer).__name__}: {errors}"
    return errors


@contextlib.contextmanager
def no_device_sync(xp):
    """A context in which CuPy refuses to wait for the GPU
    (``cupyx.allow_synchronize(False)``); nothing for NumPy. The id checks that
    earlier code left pending are flushed first: their flush, a host read, must
    not fall inside."""
    if xp is np:
        yield
        return
    import cupyx

    from timelayers._checks import flush_device_checks

    flush_device_checks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # CuPy warns that allow_synchronize will go
        with cupyx.allow_synchronize(False):
            yield

# ----------------------------------------------------------------------------- CUDA on a CPU
# The library's CUDA kernels compiled for the CPU, to test their arithmetic and
# the plans that launch them where there is no GPU: the builder of the CuPy
# stand-in (tests/cupy_standin/cupy/_cuda_on_cpu.py), loaded from its file so
# that these tests do not import the stand-in as ``cupy``.

def _load_cuda_on_cpu():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_standin", "cupy",
                        "_cuda_on_cpu.py")
    spec = importlib.util.spec_from_file_location("_timelayers_tests_cuda_on_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cuda_on_cpu = _load_cuda_on_cpu()
cxx_compiler = cuda_on_cpu.compiler


class CpuKernels:
    """The kernels of ``source(dtype_name)`` (a function giving CUDA source for
    "float32" or "float64"), built for the CPU on first use."""

    def __init__(self, source):
        self.source = source

    def launch(self, name, dtype_name, threads, args):
        """Run kernel ``name`` on ``threads`` threads; ``args`` are C-contiguous
        NumPy arrays (passed as pointers) and NumPy scalars (passed by value)."""
        cuda_on_cpu.launch(self.source(dtype_name), name, threads, args, name)


# ----------------------------------------------------------------------------- tiny models
# One tiny configuration of every model, with data of its shape: used by the
# model, device and parallel tests.

V = 7  # the vocabulary of the tiny models


def scale_params(model, rng, scale=0.5):
    """Larger weights than the book's init, so that every gradient is well above
    the finite-difference noise."""
    for p in model.params:
        p[...] = rng.standard_normal(p.shape) * scale


def lm_data(rng, N=2, T=4):
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def s2s_data(rng, N=3, Tq=4, Ta=3):
    ts = rng.integers(1, V, (N, 1 + Ta))
    ts[:, 0] = 0
    return rng.integers(0, V, (N, Tq)), ts


def w2v_data(rng, N=4, C=2):
    return rng.integers(0, V, (N, C)), rng.integers(0, V, N)


def onehot_data(rng, N=4, C=2):
    return np.eye(V)[rng.integers(0, V, (N, C))], np.eye(V)[rng.integers(0, V, N)]


TINY_CORPUS = np.random.default_rng(5).integers(0, V, 200)

MODEL_FACTORIES = {
    "TwoLayerNet": (lambda: models.TwoLayerNet(3, 5, 4, dtype="float64", rng=0),
                    lambda r: (r.standard_normal((6, 3)), r.integers(0, 4, 6))),
    "SimpleCBOW": (lambda: models.SimpleCBOW(V, 4, 1, dtype="float64", rng=0), onehot_data),
    "SimpleSkipGram": (lambda: models.SimpleSkipGram(V, 4, 1, dtype="float64", rng=0), onehot_data),
    "CBOW": (lambda: models.CBOW(V, 4, 1, TINY_CORPUS, sample_size=2, dtype="float64", rng=0), w2v_data),
    "SkipGram": (lambda: models.SkipGram(V, 4, 1, TINY_CORPUS, sample_size=2, dtype="float64", rng=0),
                 w2v_data),
    "SimpleRnnlm": (lambda: models.SimpleRnnlm(V, 3, 4, dtype="float64", rng=0), lm_data),
    "Rnnlm": (lambda: models.Rnnlm(V, 3, 4, dtype="float64", rng=0), lm_data),
    "Rnnlm-gru": (lambda: models.Rnnlm(V, 3, 4, cell="gru", dtype="float64", rng=0), lm_data),
    "Rnnlm-gru-reset-after": (lambda: models.Rnnlm(V, 3, 4, cell="gru-reset-after",
                                                   dtype="float64", rng=0), lm_data),
    "BetterRnnlm": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.3, dtype="float64", rng=0),
                    lm_data),
    "BetterRnnlm-gru": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.0, num_layers=1,
                                                   cell="gru", dtype="float64", rng=0), lm_data),
    "BetterRnnlm-gru-reset-after": (lambda: models.BetterRnnlm(V, 4, 4, dropout_ratio=0.3,
                                                               cell="gru-reset-after",
                                                               dtype="float64", rng=0), lm_data),
    "Seq2seq": (lambda: models.Seq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "PeekySeq2seq": (lambda: models.PeekySeq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "AttentionSeq2seq": (lambda: models.AttentionSeq2seq(V, 3, 4, dtype="float64", rng=0), s2s_data),
    "AttentionSeq2seq-general": (lambda: models.AttentionSeq2seq(V, 3, 4, score="general",
                                                                 dtype="float64", rng=0), s2s_data),
}


def freeze_randomness(model):
    """Make forward a fixed function: same dropout masks and negatives each call."""
    if hasattr(model, "ns_loss"):
        state = {}

        def fixed(target, _orig=model.ns_loss.sampler.get_negative_sample):
            key = tuple(np.asarray(target).tolist())
            if key not in state:
                state[key] = _orig(target)
            return state[key]

        model.ns_loss.sampler.get_negative_sample = fixed
    if hasattr(model, "rng"):
        seed_state = model.rng.bit_generator.state

        def setup():
            model.rng.bit_generator.state = seed_state
            model.reset_state()
        return setup
    return model.reset_state


# A tiny language model for the training and checkpoint tests (A tiny language model for the training and checkpoint tests: cheap, with dropout drawing from the model's own generator and, optionally, a stateful layer.)

class TimeLeaky(Layer):
    """A parameter-free stateful layer: ``h_t = x_t + a * h_{t-1}``, output ``h_t``,
    ``h_{-1}`` the carried state (truncated BPTT: no gradient into it)."""

    def __init__(self, a=0.5):
        super().__init__()
        self.a, self.stateful, self.h = a, True, None

    def reset_state(self):
        self.h = None

    def set_state(self, h, c=None):
        self.h = h

    def forward(self, xs):
        N, T, D = xs.shape
        h = np.zeros((N, D), xs.dtype) if self.h is None else self.h
        out = np.empty_like(xs)
        for t in range(T):
            h = xs[:, t] + self.a * h
            out[:, t] = h
        self.h = h
        return out

    def backward(self, dout):
        dxs, dh = np.empty_like(dout), 0.0
        for t in reversed(range(dout.shape[1])):
            dh = dout[:, t] + self.a * dh
            dxs[:, t] = dh
        return dxs


@dataclass
class TinyLMConfig:
    vocab_size: int = 8
    hidden: int = 5
    dropout: float = 0.0
    stateful: bool = False
    scale: float = 0.5


class TinyLM(Model):
    """ids (N, T) -> embed -> [leaky state] -> dropout -> affine -> softmax loss.

    ``rng`` (a seed or a Generator) draws the weights (``scale`` times standard
    normal) and then the dropout masks. ``nan_at`` lists the forward calls
    (1-based) that return NaN instead of the loss.
    """

    def __init__(self, vocab_size=8, hidden=5, dropout=0.0, stateful=False, scale=0.5, rng=0):
        self.config = TinyLMConfig(vocab_size, hidden, dropout, stateful, scale)
        self.rng = np.random.default_rng(rng)
        self.embed = TimeEmbedding(self.rng.standard_normal((vocab_size, hidden)) * scale)
        self.layers = [TimeLeaky()] if stateful else []
        self.drop = TimeDropout(dropout, self.rng)
        self.affine = TimeAffine(self.rng.standard_normal((hidden, vocab_size)) * scale,
                                 np.zeros(vocab_size))
        self.loss_layer = TimeSoftmaxWithLoss()
        self.nan_at = ()
        self.calls = 0

    def forward(self, xs, ts):
        self.calls += 1
        h = self.embed.forward(xs)
        for layer in self.layers:
            h = layer.forward(h)
        loss = self.loss_layer.forward(self.affine.forward(self.drop.forward(h)), ts)
        return math.nan if self.calls in self.nan_at else loss

    def _backward(self, dout=1):
        d = self.drop.backward(self.affine.backward(self.loss_layer.backward(dout)))
        for layer in reversed(self.layers):
            d = layer.backward(d)
        self.embed.backward(d)


# ---------------------------------------------------------------------- the book's formats
# What the book's code writes (BaseModel.save_params: the params as float16 arrays in the
# model's order; ch04's word vectors as a dict), made from our models, and the book's
# seq2seq forward written from its conventions, to check an import against.

def round_to_float16(model):
    """Round every param of ``model`` to float16 in place (what the book's files keep),
    so that the model and its import hold the same numbers. Returns the model."""
    for p in model.params:
        p[...] = p.astype(np.float16)
    return model


def book_params(model) -> list:
    """``model``'s params as the book saves them: float16 arrays in the book's order,
    a tied weight saved as its own array, and a PeekyDecoder's LSTM Wx and affine W
    with the encoder state's rows first (the book concatenates ``[h, embedding]`` and
    ``[h, LSTM output]``; we put ``h`` last)."""
    arrays = {name: to_cpu(p).astype(np.float16) for name, p, _ in model.named_param_slots()}
    if isinstance(model, models.PeekySeq2seq):
        D, H = model.config.wordvec_size, model.config.hidden_size
        Wx, W = arrays["decoder.lstm.Wx"], arrays["decoder.affine.W"]
        arrays["decoder.lstm.Wx"] = np.concatenate([Wx[D:], Wx[:D]])  # (H + D, 4H)
        arrays["decoder.affine.W"] = np.concatenate([W[H:], W[:H]])  # (H + H, V)
    return list(arrays.values())


def book_word_vectors(model) -> dict:
    """A CBOW's or SkipGram's word vectors as the book's ch04 pickles them."""
    words = model.vocab.words
    return {"word_vecs": to_cpu(model.word_vecs).astype(np.float16),
            "word_to_id": {w: i for i, w in enumerate(words)},
            "id_to_word": dict(enumerate(words))}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _book_lstm(xs, Wx, Wh, b, h):
    """The book's TimeLSTM over ``xs (N, T, D)`` from ``h (N, H)`` and ``c = 0``, with
    its gate columns f, g, i, o; returns ``hs (N, T, H)``."""
    H = Wh.shape[0]
    c = np.zeros_like(h)
    hs = []
    for t in range(xs.shape[1]):
        A = xs[:, t] @ Wx + h @ Wh + b
        f, g, i, o = (_sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H]), _sigmoid(A[:, 2 * H:3 * H]),
                      _sigmoid(A[:, 3 * H:]))
        c = f * c + g * i
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def book_seq2seq_scores(kind, arrays, xs, ts_in):
    """Decoder scores ``(N, Ta, V)`` of the book's Seq2seq, PeekySeq2seq or
    AttentionSeq2seq (``kind``: "seq2seq", "peeky", "attention") from its saved
    ``arrays`` in float64, for questions ``xs (N, Tq)`` and decoder inputs ``ts_in
    (N, Ta)``: the book's layer order, its peeky ``[h, x]`` concatenations and its
    attention's ``[context, h]``."""
    a = [np.asarray(x, dtype=np.float64) for x in arrays]
    enc_hs = _book_lstm(a[0][xs], a[1], a[2], a[3], np.zeros((len(xs), a[2].shape[0])))
    h = enc_hs[:, -1]
    dec_in = a[4][ts_in]  # (N, Ta, D)
    N, T, _ = dec_in.shape
    peek = np.broadcast_to(h[:, None, :], (N, T, h.shape[1]))
    if kind == "peeky":
        dec_in = np.concatenate([peek, dec_in], axis=2)
    dec_hs = _book_lstm(dec_in, a[5], a[6], a[7], h)
    if kind == "peeky":
        dec_hs = np.concatenate([peek, dec_hs], axis=2)
    elif kind == "attention":
        scores = np.einsum("nqh,nth->ntq", enc_hs, dec_hs)
        weights = np.exp(scores - scores.max(axis=2, keepdims=True))
        weights /= weights.sum(axis=2, keepdims=True)
        dec_hs = np.concatenate([np.einsum("ntq,nqh->nth", weights, enc_hs), dec_hs], axis=2)
    return dec_hs @ a[8] + a[9]


def find_ptb():
    """The folder holding the Penn Treebank files for the tests that need them:
    ``$TIMELAYERS_DATA`` when it holds ``ptb.train.txt``, else ``../shared/datasets/ptb``
    beside the checkout when it does; None when neither does."""
    from pathlib import Path

    for folder in (os.environ.get("TIMELAYERS_DATA"),
                   Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ptb"):
        if folder and (Path(folder) / "ptb.train.txt").is_file():
            return Path(folder)
    return None

"""Recurrent cells and time layers: gradients against central differences (float64),
forward against a plain step-by-step NumPy reference of the book's equations,
truncated BPTT, initial-state gradients, dtypes and input checks."""

import numpy as np
import pytest

from support.assertions import assert_close, assert_gradcheck, randn
from timelayers import ShapeError, get_array_module, numerical_gradient, relative_error, to_cpu
from timelayers.layers.recurrent import GRU, LSTM, RNN, TimeBiLSTM, TimeGRU, TimeLSTM, TimeRNN

KINDS = ["rnn", "lstm", "gru", "gru_ra"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "gru_ra": 3}
NT = [(1, 1), (2, 2), (1, 3), (3, 4), (2, 5)]  # T from 1 to 5, N = 1 included
D, H = 3, 4


def make_params(xp, rng, kind, D=D, H=H, dtype=np.float64, scale=0.5):
    g = GATES[kind]
    params = [randn(xp, rng, D, g * H, dtype=dtype) * scale,
              randn(xp, rng, H, g * H, dtype=dtype) * scale,
              randn(xp, rng, g * H, dtype=dtype) * scale]
    if kind == "gru_ra":
        params.append(randn(xp, rng, g * H, dtype=dtype) * scale)
    return [p.astype(dtype) for p in params]


def make_time(kind, params, stateful=False, plan=None):
    if kind == "rnn":
        return TimeRNN(*params, stateful=stateful, plan=plan)
    if kind == "lstm":
        return TimeLSTM(*params, stateful=stateful, plan=plan)
    if kind == "gru":
        return TimeGRU(*params, stateful=stateful, plan=plan)
    Wx, Wh, b, bh = params
    return TimeGRU(Wx, Wh, b, stateful=stateful, reset_after=True, bh=bh, plan=plan)


def make_cell(kind, params):
    if kind == "rnn":
        return RNN(*params)
    if kind == "lstm":
        return LSTM(*params)
    if kind == "gru":
        return GRU(*params)
    Wx, Wh, b, bh = params
    return GRU(Wx, Wh, b, reset_after=True, bh=bh)


def sig(x):
    return 1 / (1 + np.exp(-x))


def reference_forward(kind, params, xs, h0, c0=None):
    """The book's equations, one step at a time, in plain float64 NumPy."""
    params = [to_cpu(p).astype(np.float64) for p in params]
    xs, h = to_cpu(xs).astype(np.float64), to_cpu(h0).astype(np.float64)
    c = None if c0 is None else to_cpu(c0).astype(np.float64)
    Wx, Wh, b = params[:3]
    Hh = Wh.shape[0]
    hs = []
    for t in range(xs.shape[1]):
        x = xs[:, t]
        if kind == "rnn":
            h = np.tanh(x @ Wx + h @ Wh + b)
        elif kind == "lstm":
            A = x @ Wx + h @ Wh + b
            f, g, i, o = (A[:, k * Hh:(k + 1) * Hh] for k in range(4))
            c = sig(f) * c + np.tanh(g) * sig(i)
            h = sig(o) * np.tanh(c)
        else:
            ax = x @ Wx + b
            if kind == "gru":
                z = sig(ax[:, :Hh] + h @ Wh[:, :Hh])
                r = sig(ax[:, Hh:2 * Hh] + h @ Wh[:, Hh:2 * Hh])
                hc = np.tanh(ax[:, 2 * Hh:] + (r * h) @ Wh[:, 2 * Hh:])
            else:
                ah = h @ Wh + params[3]
                z = sig(ax[:, :Hh] + ah[:, :Hh])
                r = sig(ax[:, Hh:2 * Hh] + ah[:, Hh:2 * Hh])
                hc = np.tanh(ax[:, 2 * Hh:] + r * ah[:, 2 * Hh:])
            h = (1 - z) * h + z * hc
        hs.append(h)
    return np.stack(hs, axis=1), h, c


def states(xp, rng, kind, N, dtype=np.float64):
    h0 = randn(xp, rng, N, H, dtype=dtype) * 0.5
    c0 = randn(xp, rng, N, H, dtype=dtype) * 0.5 if kind == "lstm" else None
    return h0, c0


# ----------------------------------------------------------------------------- forward

@pytest.mark.parametrize("plan", [None, "reference"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,T", NT)
def test_time_forward_matches_reference(xp, rng, kind, N, T, plan):
    """The chosen plan and the package's reference plan both give this test's
    own plain NumPy loop of the book's equations."""
    params = make_params(xp, rng, kind)
    xs = randn(xp, rng, N, T, D)
    h0, c0 = states(xp, rng, kind, N)
    layer = make_time(kind, params, plan=plan)
    layer.set_state(h0, c0)
    hs = layer.forward(xs)
    ref_hs, ref_h, ref_c = reference_forward(kind, params, xs, h0, c0)
    assert hs.shape == (N, T, H)
    assert_close(hs, ref_hs, rtol=1e-12, atol=1e-13)
    assert_close(layer.h, ref_h, rtol=1e-12, atol=1e-13)
    if kind == "lstm":
        assert_close(layer.c, ref_c, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_time_layer_equals_loop_of_cells(xp, rng, kind):
    """Forward and every gradient of the time layer equal T cell steps."""
    N, T = 2, 4
    params = make_params(xp, rng, kind)
    xs = randn(xp, rng, N, T, D)
    dhs = randn(xp, rng, N, T, H)
    h0, c0 = states(xp, rng, kind, N)
    layer = make_time(kind, params)
    layer.set_state(h0, c0)
    hs = layer.forward(xs)
    dxs = layer.backward(dhs)

    cells = [make_cell(kind, params) for _ in range(T)]
    h, c, outs = h0, c0, []
    for t, cell in enumerate(cells):
        if kind == "lstm":
            h, c = cell.forward(xs[:, t], h, c)
        else:
            h = cell.forward(xs[:, t], h)
        outs.append(h)
    assert_close(hs, xp.stack(outs, axis=1), rtol=1e-13, atol=1e-14)
    dh, dc = xp.zeros_like(h0), (xp.zeros_like(h0) if kind == "lstm" else None)
    sums = [xp.zeros_like(p) for p in params]
    dx_cells = [None] * T
    for t in reversed(range(T)):
        if kind == "lstm":
            dx_cells[t], dh, dc = cells[t].backward(dhs[:, t] + dh, dc)
        else:
            dx_cells[t], dh = cells[t].backward(dhs[:, t] + dh)
        for s, g in zip(sums, cells[t].grads):
            s += g
    assert_close(dxs, xp.stack(dx_cells, axis=1), rtol=1e-11, atol=1e-13)
    assert_close(layer.dh, dh, rtol=1e-11, atol=1e-13)
    if kind == "lstm":
        assert_close(layer.dc, dc, rtol=1e-11, atol=1e-13)
    for s, g in zip(sums, layer.grads):
        assert_close(g, s, rtol=1e-11, atol=1e-13)


# ----------------------------------------------------------------------------- gradients

class LSTMCellAsLayer:
    """Adapter: the LSTM cell's two outputs concatenated, for check_layer."""

    param_names = LSTM.param_names

    def __init__(self, cell):
        self.cell, self.params, self.grads = cell, cell.params, cell.grads

    def forward(self, x, h, c):
        hn, cn = self.cell.forward(x, h, c)
        return get_array_module(hn).concatenate([hn, cn], axis=1)  # (N, 2H)

    def backward(self, dout):
        Hh = dout.shape[1] // 2
        return self.cell.backward(dout[:, :Hh], dout[:, Hh:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N", [1, 3])
def test_cell_gradcheck(xp, rng, kind, N):
    params = make_params(xp, rng, kind)
    x = randn(xp, rng, N, D)
    h0, c0 = states(xp, rng, kind, N)
    if kind == "lstm":
        assert_gradcheck(LSTMCellAsLayer(LSTM(*params)), x, h0, c0)
    else:
        assert_gradcheck(make_cell(kind, params), x, h0)


def gradcheck_time_layer(xp, rng, layer, kind, xs, h0, c0):
    """Params, input, and the initial state(s) (``dh``, ``dc``) against central
    differences; the state is set before every forward by ``setup``."""

    def setup():
        layer.reset_state()
        if h0 is not None:
            layer.set_state(h0, c0)

    N, T, _ = xs.shape
    dout = randn(xp, rng, N, T, layer.hidden_size)
    assert_gradcheck(layer, xs, dout=dout, setup=setup)
    if h0 is None:
        return
    setup()
    layer.forward(xs)
    layer.backward(dout)

    def f():
        setup()
        return float(xp.sum(layer.forward(xs) * dout))

    err = {"h0": relative_error(layer.dh, numerical_gradient(f, h0))}
    if kind == "lstm":
        err["c0"] = relative_error(layer.dc, numerical_gradient(f, c0))
    assert max(err.values()) < 1e-6, err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("N,T", NT)
def test_time_gradcheck(xp, rng, kind, stateful, N, T):
    params = make_params(xp, rng, kind)
    layer = make_time(kind, params, stateful=stateful)
    xs = randn(xp, rng, N, T, D)
    h0, c0 = states(xp, rng, kind, N)
    if stateful:  # a previous block left a state behind; set_state replaces it
        layer.forward(randn(xp, rng, N, 2, D))
    gradcheck_time_layer(xp, rng, layer, kind, xs, h0, c0)


@pytest.mark.parametrize("kind", KINDS)
def test_time_gradcheck_zero_initial_state(xp, rng, kind):
    layer = make_time(kind, make_params(xp, rng, kind))
    xs = randn(xp, rng, 2, 3, D)
    assert_gradcheck(layer, xs)
    assert layer.dh.shape == (2, H)


def test_stateful_second_block_gradcheck(xp, rng):
    """Truncated BPTT: the second block's gradients treat the carried state as a
    constant input, and dh is the gradient with respect to it."""
    params = make_params(xp, rng, "lstm")
    layer = TimeLSTM(*params, stateful=True)
    layer.forward(randn(xp, rng, 2, 3, D))
    h1, c1 = layer.h.copy(), layer.c.copy()
    xs = randn(xp, rng, 2, 4, D)
    gradcheck_time_layer(xp, rng, layer, "lstm", xs, h1, c1)


@pytest.mark.parametrize("N,T", [(1, 1), (2, 3), (3, 5)])
def test_bilstm_gradcheck(xp, rng, N, T):
    p1, p2 = make_params(xp, rng, "lstm"), make_params(xp, rng, "lstm")
    layer = TimeBiLSTM(*p1, *p2)
    xs = randn(xp, rng, N, T, D)
    h0 = randn(xp, rng, 2, N, H) * 0.5
    c0 = randn(xp, rng, 2, N, H) * 0.5
    dout = randn(xp, rng, N, T, 2 * H)

    def setup():
        layer.set_state(h0, c0)

    assert_gradcheck(layer, xs, dout=dout, setup=setup)
    setup()
    layer.forward(xs)
    layer.backward(dout)

    def f():
        setup()
        return float(xp.sum(layer.forward(xs) * dout))

    assert relative_error(layer.dh, numerical_gradient(f, h0)) < 1e-6
    assert relative_error(layer.dc, numerical_gradient(f, c0)) < 1e-6


def test_bilstm_forward_is_two_lstms(xp, rng):
    p1, p2 = make_params(xp, rng, "lstm"), make_params(xp, rng, "lstm")
    xs = randn(xp, rng, 2, 5, D)
    layer = TimeBiLSTM(*p1, *p2)
    hs = layer.forward(xs)
    assert hs.shape == (2, 5, 2 * H)
    hf = TimeLSTM(*p1).forward(xs)
    hb = TimeLSTM(*p2).forward(xs[:, ::-1].copy())[:, ::-1]
    assert_close(hs[..., :H], hf, rtol=1e-13)
    assert_close(hs[..., H:], hb, rtol=1e-13)
    assert layer.h.shape == (2, 2, H)
    assert_close(layer.h[0], hf[:, -1])
    assert_close(layer.h[1], hb[:, 0])
    assert layer.param_names == ("Wx_fwd", "Wh_fwd", "b_fwd", "Wx_bwd", "Wh_bwd", "b_bwd")
    assert all(a is b for a, b in zip(layer.params, p1 + p2))


# ----------------------------------------------------------------------------- state

@pytest.mark.parametrize("kind", KINDS)
def test_stateful_two_blocks_equal_one_call(xp, rng, kind):
    params = make_params(xp, rng, kind)
    xs = randn(xp, rng, 3, 10, D)
    whole = make_time(kind, params, stateful=True).forward(xs)
    layer = make_time(kind, params, stateful=True)
    first = layer.forward(xs[:, :5]).copy()
    second = layer.forward(xs[:, 5:])
    assert_close(xp.concatenate([first, second], axis=1), whole, rtol=1e-12, atol=1e-14)
    # not stateful: every call starts from zeros
    plain = make_time(kind, params, stateful=False)
    plain.forward(xs[:, :5])
    assert_close(plain.forward(xs[:, 5:]), make_time(kind, params).forward(xs[:, 5:]))
    # reset_state starts a stateful layer from zeros again
    layer.reset_state()
    assert layer.h is None
    assert_close(layer.forward(xs[:, :5]), first)


def test_set_state_semantics(xp, rng):
    params = make_params(xp, rng, "lstm")
    xs = randn(xp, rng, 2, 3, D)
    h0, c0 = states(xp, rng, "lstm", 2)
    ref = reference_forward("lstm", params, xs, h0, c0)[0]
    # stateful=False: the set state is used by every forward until reset_state
    layer = TimeLSTM(*params)
    layer.set_state(h0, c0)
    assert_close(layer.forward(xs), ref, rtol=1e-12)
    assert_close(layer.forward(xs), ref, rtol=1e-12)
    layer.reset_state()
    zero = reference_forward("lstm", params, xs, 0 * h0, 0 * c0)[0]
    assert_close(layer.forward(xs), zero, rtol=1e-12)
    # set_state(h) alone: c starts at zero
    layer.set_state(h0)
    assert_close(layer.forward(xs), reference_forward("lstm", params, xs, h0, 0 * c0)[0],
                 rtol=1e-12)
    # stateful=True: the set state starts the next forward, which then carries on
    layer = TimeLSTM(*params, stateful=True)
    layer.set_state(h0, c0)
    assert_close(layer.forward(xs), ref, rtol=1e-12)
    both = reference_forward("lstm", params, xp.concatenate([xs, xs], axis=1), h0, c0)[0]
    assert_close(layer.forward(xs), both[:, 3:], rtol=1e-12)


def test_encoder_decoder_dh_flows_back(xp, rng):
    """The book's seq2seq: the decoder starts from the encoder's last h, and the
    decoder's dh enters the encoder through dhs[:, -1]."""
    enc = TimeLSTM(*make_params(xp, rng, "lstm"))
    dec = TimeLSTM(*make_params(xp, rng, "lstm"), stateful=True)
    xs, ys = randn(xp, rng, 2, 4, D), randn(xp, rng, 2, 3, D)
    dout = randn(xp, rng, 2, 3, H)

    def loss():
        enc.forward(xs)
        dec.set_state(enc.h)
        return float(xp.sum(dec.forward(ys) * dout))

    loss()
    dec.backward(dout)
    dhs = xp.zeros((2, 4, H))
    dhs[:, -1] = dec.dh
    dxs = enc.backward(dhs)
    assert relative_error(dxs, numerical_gradient(loss, xs)) < 1e-6


# ----------------------------------------------------------------------------- dtypes, layout

@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32(xp, rng, kind):
    p64 = make_params(xp, rng, kind)
    p32 = [p.astype(np.float32) for p in p64]
    xs = randn(xp, rng, 2, 5, D)
    dhs = randn(xp, rng, 2, 5, H)
    l32, l64 = make_time(kind, p32), make_time(kind, p64)
    hs32 = l32.forward(xs.astype(np.float32))
    dxs32 = l32.backward(dhs.astype(np.float32))
    assert hs32.dtype == dxs32.dtype == l32.h.dtype == l32.dh.dtype == np.float32
    assert all(g.dtype == np.float32 for g in l32.grads)
    # float64 input is cast to the params' dtype
    assert l32.forward(xs).dtype == np.float32
    assert_close(hs32, l64.forward(xs), rtol=1e-4, atol=1e-5)
    l32.forward(xs.astype(np.float32))
    l32.backward(dhs.astype(np.float32))
    assert_close(l32.backward(dhs.astype(np.float32)), l64.backward(dhs), rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(l32.grads, l64.grads):
        assert_close(g32, g64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_params_kept_and_grads_written_in_place(xp, rng, kind):
    params = make_params(xp, rng, kind)
    layer = make_time(kind, params)
    assert all(a is b for a, b in zip(layer.params, params))
    assert len(layer.param_names) == len(layer.params)
    ids = [id(g) for g in layer.grads]
    for _ in range(2):
        layer.forward(randn(xp, rng, 2, 3, D))
        layer.backward(randn(xp, rng, 2, 3, H))
    assert [id(g) for g in layer.grads] == ids
    # backward overwrites (does not accumulate)
    xs, dhs = randn(xp, rng, 2, 3, D), randn(xp, rng, 2, 3, H)
    layer.forward(xs)
    layer.backward(dhs)
    first = [g.copy() for g in layer.grads]
    layer.forward(xs)
    layer.backward(dhs)
    for a, b in zip(first, layer.grads):
        assert_close(a, b, rtol=0, atol=0)


def test_gru_param_names_and_default_bh(xp, rng):
    Wx, Wh, b = make_params(xp, rng, "gru")
    assert TimeGRU(Wx, Wh, b).param_names == ("Wx", "Wh", "b")
    layer = TimeGRU(Wx, Wh, b, reset_after=True)
    assert layer.param_names == ("Wx", "Wh", "b", "bh")
    assert float(xp.abs(layer.params[3]).max()) == 0.0
    with pytest.raises(ValueError, match="reset_after=True"):
        TimeGRU(Wx, Wh, b, bh=b.copy())
    with pytest.raises(TypeError, match="reset_after"):
        GRU(Wx, Wh, b, b.copy())


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kind", KINDS)
def test_bad_shapes_raise_shape_error(xp, rng, kind):
    layer = make_time(kind, make_params(xp, rng, kind))
    name = type(layer).__name__
    with pytest.raises(ShapeError, match=rf"{name}\.forward.*'xs'.*\(2, 3, 3\).*\(2, 3, 5\)"):
        layer.forward(xp.zeros((2, 3, 5)))  # wrong D
    with pytest.raises(ShapeError, match="'xs'.*3 dimensions"):
        layer.forward(xp.zeros((2, 3)))
    with pytest.raises(ShapeError, match=rf"{name}\.set_state.*'h'.*\(2, 5\)"):
        layer.set_state(xp.zeros((2, 5)))  # wrong H
    layer.set_state(xp.zeros((2, H)))
    with pytest.raises(ShapeError, match=rf"{name}\.forward.*initial state.*\(3, 4\).*\(2, 4\)"):
        layer.forward(xp.zeros((3, 2, D)))  # state for a batch of 2, input batch of 3
    layer.reset_state()
    with pytest.raises(RuntimeError, match="before forward"):
        make_time(kind, make_params(xp, rng, kind)).backward(xp.zeros((2, 3, H)))
    layer.forward(xp.zeros((2, 3, D)))
    with pytest.raises(ShapeError, match=rf"{name}\.backward.*'dhs'.*\(2, 3, 4\)"):
        layer.backward(xp.zeros((2, 3, H + 1)))
    if kind != "lstm":
        with pytest.raises(ValueError, match="'c'"):
            layer.set_state(xp.zeros((2, H)), xp.zeros((2, H)))


def test_stateful_batch_change_raises(xp, rng):
    layer = TimeLSTM(*make_params(xp, rng, "lstm"), stateful=True)
    layer.forward(xp.zeros((2, 3, D)))
    with pytest.raises(ShapeError, match=r"initial state.*\(3, 4\).*\(2, 4\)"):
        layer.forward(xp.zeros((3, 3, D)))


def test_bad_params_and_cell_inputs(xp, rng):
    Wx, Wh, b = make_params(xp, rng, "lstm")
    with pytest.raises(ShapeError, match=r"TimeLSTM.*'b'.*\(16,\).*\(12,\)"):
        TimeLSTM(Wx, Wh, b[:12])
    with pytest.raises(ShapeError, match=r"'Wh'"):
        TimeLSTM(Wx, Wh[:, :12], b)
    with pytest.raises(ShapeError, match=r"'Wx'"):
        LSTM(Wx[:, :12], Wh, b)
    with pytest.raises(ShapeError, match="dtype"):
        TimeLSTM(Wx, Wh.astype(np.float32), b)
    cell = LSTM(Wx, Wh, b)
    with pytest.raises(ShapeError, match=r"LSTM\.forward.*'c_prev'.*\(2, 4\).*\(3, 4\)"):
        cell.forward(xp.zeros((2, D)), xp.zeros((2, H)), xp.zeros((3, H)))
    with pytest.raises(ShapeError, match=r"'x'"):
        cell.forward(xp.zeros((2, D + 1)), xp.zeros((2, H)), xp.zeros((2, H)))
    bi = TimeBiLSTM(Wx, Wh, b, Wx.copy(), Wh.copy(), b.copy())
    with pytest.raises(ShapeError, match=r"TimeBiLSTM\.forward.*'xs'"):
        bi.forward(xp.zeros((2, 3, D + 1)))
    with pytest.raises(ShapeError, match=r"TimeBiLSTM\.set_state.*'h'"):
        bi.set_state(xp.zeros((2, H)))


@pytest.mark.parametrize("N", [12, 2048])   # 2048 rows: on row blocks where there are threads
def test_fixed_params_keeps_the_prepared_weights_in_the_block_only(xp, rng, N, monkeypatch):
    """In a fixed_params block (decoding) the LSTM prepares its weights once and gives
    the same states as without; after the block, a param changed in place is read."""
    from timelayers.layers.base import fixed_params
    from timelayers.layers.plans import FastLSTM

    prepared = []
    prepare = FastLSTM.prepare_forward
    monkeypatch.setattr(FastLSTM, "prepare_forward",
                        lambda plan, params: prepared.append(1) or prepare(plan, params))
    params = make_params(xp, rng, "lstm", D=3, H=8)
    xs = randn(xp, rng, N, 1, 3)
    kept, plain = TimeLSTM(*params, stateful=True), TimeLSTM(*params, stateful=True)
    with fixed_params(kept):
        outs = [kept.forward(xs) for _ in range(3)]
    assert len(prepared) == 1 or xp is not np   # (CuPy: the fused plan prepares nothing)
    for out in outs:
        assert_close(out, plain.forward(xs), rtol=0, atol=0)
    params[1] *= 2                               # in place, after the block
    assert_close(kept.forward(xs), plain.forward(xs), rtol=0, atol=0)
    assert kept._prepared is None

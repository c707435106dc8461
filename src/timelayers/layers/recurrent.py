"""Recurrent layers: one-step cells and layers that run them over whole sequences.

Cells (one time step, the book's building blocks)
    :class:`RNN` (tanh), :class:`LSTM`, :class:`GRU`.
Time layers (``xs (N, T, D) -> hs (N, T, H)``)
    :class:`TimeRNN`, :class:`TimeLSTM`, :class:`TimeGRU`, :class:`TimeBiLSTM`.

Parameter layout
----------------
The book's layout, so that its weights load unchanged. Gates are stacked along
the columns, each slice ``H`` wide, and every pre-activation is
``x @ Wx + h @ Wh + b``:

==========  ============  ============  ========  ==============================
cell        ``Wx``        ``Wh``        ``b``     column slices, in order
==========  ============  ============  ========  ==============================
RNN         ``(D, H)``    ``(H, H)``    ``(H,)``  the one pre-activation
LSTM        ``(D, 4H)``   ``(H, 4H)``   ``(4H,)`` ``f`` (forget), ``g`` (cell
                                                  candidate), ``i`` (input),
                                                  ``o`` (output)
GRU         ``(D, 3H)``   ``(H, 3H)``   ``(3H,)`` ``z`` (update), ``r`` (reset),
                                                  candidate ``h~``
==========  ============  ============  ========  ==============================

``GRU``/``TimeGRU`` with ``reset_after=True`` take a second bias ``bh (3H,)``,
added to the hidden-side product (the cuDNN/PyTorch form, see :class:`GRU`).

PyTorch and ONNX keep the transposes in other gate orders, and their GRU's update
gate is ``1 - z`` here (its weights and biases change sign): the table is in
:mod:`timelayers.export._layouts`. PyTorch's ``nn.LSTM`` has two biases, ``b_ih``
and ``b_hh``; the LSTM's ``b`` here is their sum (reordered).

Where the math is
-----------------
The cells run the step functions of :mod:`.recurrent_reference`, the book's
equations. The time layers keep the params, the state and the checks, and hand
the math over a whole sequence to a *plan* (:mod:`.plans`): by default the one
:func:`~.plans.choose_plan` picks from the shapes and the array module (the CPU
speed work), or the one given as ``plan=`` (``"reference"`` runs the book's
equations step by step). Every plan is tested against the reference.

References
----------
S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural
Computation 9(8), 1997 (with the forget gate of Gers, Schmidhuber and
Cummins, 2000).
K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
Statistical Machine Translation", EMNLP 2014 (the GRU).
"""

from __future__ import annotations

from .._checks import check_float, check_ndim, check_shape
from ..backend import get_array_module
from ..errors import ShapeError
from .base import Layer
from .cells import CELLS
from .plans import Plan, ReferencePlan, choose_plan
from .recurrent_reference import (gru_step, gru_step_backward, lstm_step, lstm_step_backward,
                                  rnn_step, rnn_step_backward)

__all__ = ["RNN", "LSTM", "GRU", "TimeRNN", "TimeLSTM", "TimeGRU", "TimeBiLSTM"]


# --------------------------------------------------------------------------- checks

def _check_params(where, Wx, Wh, b, gates, bh=None):
    """Check ``Wx (D, G*H)``, ``Wh (H, G*H)``, ``b (G*H,)`` (and ``bh``): shapes
    that agree, one floating-point dtype."""
    check_ndim(where, "Wh", Wh, 2)
    H = Wh.shape[0]
    check_shape(where, "Wh", Wh, (H, gates * H))
    check_shape(where, "Wx", Wx, (None, gates * H))
    check_shape(where, "b", b, (gates * H,))
    named = [("Wx", Wx), ("Wh", Wh), ("b", b)]
    if bh is not None:
        check_shape(where, "bh", bh, (gates * H,))
        named.append(("bh", bh))
    for name, p in named:
        check_float(where, name, p)
        if p.dtype != Wx.dtype:
            raise ShapeError(f"{where}: argument {name!r} expected dtype {Wx.dtype} (the dtype "
                             f"of 'Wx'), got {p.dtype}")


def _zeros_or(x, shape, like):
    """``x`` cast to the dtype of ``like``, or zeros of ``shape`` when ``x`` is None."""
    xp = get_array_module(like)
    if x is None:
        return xp.zeros(shape, dtype=like.dtype)
    return x.astype(like.dtype, copy=False)


def _check_reset_after(where, reset_after, bh, like):
    if not isinstance(reset_after, bool):
        raise TypeError(f"{where}: argument 'reset_after' expected a bool, got "
                        f"{type(reset_after).__name__} (pass the second bias as bh=...)")
    if not reset_after:
        if bh is not None:
            raise ValueError(f"{where}: argument 'bh' is only used with reset_after=True")
        return None
    if bh is None:
        return get_array_module(like).zeros_like(like)
    return bh


# --------------------------------------------------------------------------- cells

class _Cell(Layer):
    """Shared plumbing of the one-step cells (the math: :mod:`.recurrent_reference`)."""

    cell = CELLS["rnn"]

    def __init__(self, Wx, Wh, b, bh=None):
        super().__init__()
        _check_params(type(self).__name__, Wx, Wh, b, self.cell.gates, bh)
        if bh is None:
            self._init_params(Wx, Wh, b)
        else:
            self._init_params(Wx, Wh, b, bh)
        self.cache = None

    def _check_step(self, x, **states):
        where = f"{type(self).__name__}.forward"
        Wx, Wh = self.params[0], self.params[1]
        dims = check_shape(where, "x", x, ("N", Wx.shape[0]))
        for name, s in states.items():
            check_shape(where, name, s, ("N", Wh.shape[0]), dims)
        dt = Wx.dtype
        self._nh = (x.shape[0], Wh.shape[0])
        return [x.astype(dt, copy=False)] + [s.astype(dt, copy=False) for s in states.values()]

    def _check_dout(self, **douts):
        where = f"{type(self).__name__}.backward"
        if self.cache is None:
            raise RuntimeError(f"{where}: called before forward")
        N, H = self._nh
        out = []
        for name, d in douts.items():
            check_shape(where, name, d, (N, H))
            out.append(d.astype(self.params[0].dtype, copy=False))
        return out

    def _write_grads(self, param_grads):
        for g, value in zip(self.grads, param_grads):
            g[...] = value


class RNN(_Cell):
    """One step of the tanh (Elman) RNN, the book's ``RNN`` (ch. 5): the step of
    :func:`~timelayers.layers.recurrent_reference.rnn_step` (sequences: :class:`TimeRNN`).

    Parameters
    ----------
    Wx : array, shape (D, H)
    Wh : array, shape (H, H)
    b : array, shape (H,)
        Kept as ``params`` (the very arrays), in this order.

    ``forward(x (N, D), h_prev (N, H)) -> h_next (N, H)`` caches the step (``cache``);
    ``backward(dh_next (N, H)) -> (dx (N, D), dh_prev (N, H))``, ``dWx, dWh, db`` into ``grads``.
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["rnn"]

    def forward(self, x, h_prev):
        x, h_prev = self._check_step(x, h_prev=h_prev)
        h_next, self.cache = rnn_step(x, h_prev, *self.params)
        return h_next

    def backward(self, dh_next):
        (dh_next,) = self._check_dout(dh_next=dh_next)
        (dx, dh_prev), param_grads = rnn_step_backward(dh_next, self.cache, *self.params[:2])
        self._write_grads(param_grads)
        return dx, dh_prev


class LSTM(_Cell):
    """One step of the LSTM, the book's ``LSTM`` (ch. 6): the step of
    :func:`~timelayers.layers.recurrent_reference.lstm_step`, gates **f, g, i, o**.

    Parameters
    ----------
    Wx : array, shape (D, 4H)
    Wh : array, shape (H, 4H)
    b : array, shape (4H,)
        Kept as ``params`` (the very arrays), in this order.

    ``forward(x (N, D), h_prev, c_prev (N, H)) -> (h_next, c_next)``, each ``(N, H)``,
    caches the step (``cache``); ``backward(dh_next, dc_next) -> (dx (N, D), dh_prev,
    dc_prev)``, ``dWx, dWh, db`` into ``grads``.
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["lstm"]

    def forward(self, x, h_prev, c_prev):
        x, h_prev, c_prev = self._check_step(x, h_prev=h_prev, c_prev=c_prev)
        h_next, c_next, self.cache = lstm_step(x, h_prev, c_prev, *self.params)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        dh_next, dc_next = self._check_dout(dh_next=dh_next, dc_next=dc_next)
        (dx, dh_prev, dc_prev), param_grads = lstm_step_backward(dh_next, dc_next, self.cache,
                                                                 *self.params[:2])
        self._write_grads(param_grads)
        return dx, dh_prev, dc_prev


class GRU(_Cell):
    """One step of the GRU (Cho et al. 2014): the step of
    :func:`~timelayers.layers.recurrent_reference.gru_step`, slices **z, r, h~**.

    Parameters
    ----------
    Wx : array, shape (D, 3H)
    Wh : array, shape (H, 3H)
    b : array, shape (3H,)
    reset_after : bool, default False
        False: the book's GRU (and Cho et al.'s). True: the cuDNN / PyTorch / Keras
        form, the reset gate multiplying the hidden product (PyTorch: see the module
        docstring).
    bh : array, shape (3H,), optional
        The hidden-side bias, only with ``reset_after=True`` (zeros when omitted);
        ``param_names`` then ends with ``"bh"``.

    ``forward(x (N, D), h_prev (N, H)) -> h_next (N, H)`` caches the step (``cache``);
    ``backward(dh_next (N, H)) -> (dx (N, D), dh_prev (N, H))``, the param gradients
    into ``grads``.
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["gru"]

    def __init__(self, Wx, Wh, b, reset_after=False, bh=None):
        bh = _check_reset_after("GRU", reset_after, bh, b)
        self.cell = CELLS["gru-reset-after" if reset_after else "gru"]
        super().__init__(Wx, Wh, b, bh)
        self.reset_after = reset_after
        if reset_after:
            self.param_names = ("Wx", "Wh", "b", "bh")

    def forward(self, x, h_prev):
        x, h_prev = self._check_step(x, h_prev=h_prev)
        h_next, self.cache = gru_step(x, h_prev, *self.params)
        return h_next

    def backward(self, dh_next):
        (dh_next,) = self._check_dout(dh_next=dh_next)
        (dx, dh_prev), param_grads = gru_step_backward(dh_next, self.cache, *self.params[:2],
                                                       reset_after=self.reset_after)
        self._write_grads(param_grads)
        return dx, dh_prev


# --------------------------------------------------------------------------- time layers

class _TimeRecurrent(Layer):
    """What :class:`TimeRNN`, :class:`TimeLSTM` and :class:`TimeGRU` share: the
    recurrent state, and the sequence's forward and backward through a plan.

    ``forward(xs (N, T, D)) -> hs (N, T, H)`` (a new array; the LSTM's in
    evaluation mode is a view of time-major memory) leaves the last states
    ``(N, H)`` in ``h`` (and the LSTM's ``c``); ``backward(dhs (N, T, H)) -> dxs (N,
    T, D)`` writes the param gradients into ``grads`` and the initial states' into
    ``dh`` (and ``dc``), what a seq2seq decoder hands to its encoder. The last
    state's gradient enters through ``dhs[:, -1]``.

    ``stateful=True``: a forward starts from the last one's last state (truncated
    BPTT: no gradient crosses a block boundary); ``False``: from zeros, or from
    :meth:`set_state`'s until :meth:`reset_state`. ``plan``: None (chosen at every
    forward by :func:`~timelayers.layers.plans.choose_plan`), ``"reference"`` (the
    book's equations step by step) or a :class:`~timelayers.layers.plans.Plan`. In
    evaluation mode the LSTM's forward keeps only its inputs and a backward runs it
    again: the inputs must not change in between.
    """

    cell = CELLS["rnn"]

    def __init__(self, params, stateful, plan=None):
        super().__init__()
        _check_params(type(self).__name__, *params[:3], self.cell.gates,
                      params[3] if len(params) > 3 else None)
        self._init_params(*params)
        self.stateful = bool(stateful)
        self.h = None              # last hidden state after forward, (N, H)
        self.dh = None             # gradient of the initial hidden state after backward
        if self.cell.has_cell_state:
            self.c = None
            self.dc = None
        self._h_set = None         # state given to set_state (used by stateful=False)
        self._c_set = None
        self.plan = _check_plan(type(self).__name__, plan, self.cell)
        self._plan = None          # the plan of the last forward (kept while it stays equal)
        self._cache = None         # the plan's cache of the last forward
        self._prepared = None      # (plan, its prepared weights) while params_fixed
        self._out_shape = None

    @property
    def hidden_size(self) -> int:
        """``H``."""
        return self.params[1].shape[0]

    def set_state(self, h, c=None):
        """Set the initial state of the next forward.

        Parameters
        ----------
        h : array, shape (N, H)
        c : array, shape (N, H), optional
            LSTM only; zeros when omitted.

        With ``stateful=True`` the next forward starts from ``h`` (and ``c``) and
        later forwards carry on from their predecessor's last state. With
        ``stateful=False`` every forward starts from this state until
        :meth:`reset_state`. The arrays are used as given (not copied).
        """
        where = f"{type(self).__name__}.set_state"
        H = self.hidden_size
        check_shape(where, "h", h, (None, H))
        if c is not None:
            if not self.cell.has_cell_state:
                raise ValueError(f"{where}: argument 'c' is only used by LSTM layers")
            check_shape(where, "c", c, (h.shape[0], H))
        self.h, self._h_set = h, h
        if self.cell.has_cell_state:
            self.c, self._c_set = c, c

    def reset_state(self):
        """Forget the state: the next forward starts from zeros."""
        self.h = self._h_set = None
        if self.cell.has_cell_state:
            self.c = self._c_set = None

    def _begin(self, xs):
        """Check ``xs``, cast it, and return it with the initial state(s)."""
        where = f"{type(self).__name__}.forward"
        Wx = self.params[0]
        check_shape(where, "xs", xs, ("N", "T", Wx.shape[0]))
        N, T, _ = xs.shape
        if T == 0:
            raise ShapeError(f"{where}: argument 'xs' expected at least one time step, "
                             f"got shape {tuple(xs.shape)}")
        xs = xs.astype(Wx.dtype, copy=False)
        H = self.hidden_size
        h, c = (self.h, getattr(self, "c", None)) if self.stateful else (self._h_set, self._c_set)
        states = [h] + ([c] if self.cell.has_cell_state else [])
        names = ["h"] + (["c"] if self.cell.has_cell_state else [])
        out = []
        for name, s in zip(names, states):
            if s is not None:
                check_shape(where, f"{name} (initial state)", s, (N, H))
            out.append(_zeros_or(s, (N, H), Wx))
        return xs, out

    def _begin_backward(self, dhs):
        where = f"{type(self).__name__}.backward"
        if self._cache is None:
            raise RuntimeError(f"{where}: called before forward")
        check_shape(where, "dhs", dhs, self._out_shape)
        return dhs.astype(self.params[0].dtype, copy=False)

    def forward(self, xs):
        xs, states = self._begin(xs)
        plan = self.plan or choose_plan(self.cell, self.params, xs.shape, self.train_flg)
        if plan != self._plan:  # an equal plan is kept: RowBlocks holds its gradient buffers
            self._plan = plan
        hs, last, self._cache = self._plan.forward(self.params, xs, tuple(states),
                                                   self._prepared_forward())
        self._out_shape = hs.shape
        self.h = last[0]
        if self.cell.has_cell_state:
            self.c = last[1]
        return hs

    def _prepared_forward(self):
        """The plan's prepared weights, kept from call to call while
        ``params_fixed`` (:func:`~timelayers.layers.base.fixed_params`); else
        None, and the plan prepares them at every call."""
        if not self.params_fixed:
            self._prepared = None
        elif self._prepared is None or self._prepared[0] is not self._plan:
            self._prepared = (self._plan, self._plan.prepare_forward(self.params))
        return None if self._prepared is None else self._prepared[1]

    def backward(self, dhs):
        dhs = self._begin_backward(dhs)
        dxs, dstates = self._plan.backward(self.params, self.grads, dhs, self._cache)
        self.dh = dstates[0]
        if self.cell.has_cell_state:
            self.dc = dstates[1]
        return dxs


def _check_plan(where, plan, cell):
    """``plan=`` of a time layer: None (chosen at each call), "reference" or a Plan."""
    if plan is None or isinstance(plan, Plan):
        return plan
    if plan == "reference":
        return ReferencePlan(cell)
    raise ValueError(f"{where}: argument 'plan' expected None, 'reference' or a "
                     f"timelayers.layers.plans.Plan, got {plan!r}")


class TimeRNN(_TimeRecurrent):
    """Tanh RNN over a whole sequence, ``h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)``
    (the step: :func:`~timelayers.layers.recurrent_reference.rnn_step`).

    ``Wx (D, H)``, ``Wh (H, H)``, ``b (H,)``: the params, ``param_names = ("Wx",
    "Wh", "b")``. ``stateful``, ``plan``, ``forward``/``backward``, ``h``/``dh``:
    see :class:`_TimeRecurrent`.
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["rnn"]

    def __init__(self, Wx, Wh, b, stateful=False, plan=None):
        super().__init__((Wx, Wh, b), stateful, plan)


class TimeLSTM(_TimeRecurrent):
    """LSTM over a whole sequence (Hochreiter & Schmidhuber 1997): the step of
    :class:`LSTM` at every ``t`` (the equations:
    :func:`~timelayers.layers.recurrent_reference.lstm_step`).

    ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``: the params, gates in the book's
    order f, g, i, o, ``param_names = ("Wx", "Wh", "b")``; the book's weights load
    unchanged. ``stateful``, ``plan``, ``forward``/``backward``, ``h, c``/``dh,
    dc``: see :class:`_TimeRecurrent` (the last cell state gets no gradient).
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["lstm"]

    def __init__(self, Wx, Wh, b, stateful=False, plan=None):
        super().__init__((Wx, Wh, b), stateful, plan)


class TimeGRU(_TimeRecurrent):
    """GRU over a whole sequence (Cho et al. 2014): the step of :class:`GRU` at
    every ``t`` (the equations: :func:`~timelayers.layers.recurrent_reference.gru_step`).

    ``Wx (D, 3H)``, ``Wh (H, 3H)``, ``b (3H,)``: the params, slices z, r, h~.
    ``reset_after=False`` is the book's GRU; ``True`` the cuDNN / PyTorch form
    with a second bias ``bh (3H,)`` (zeros when omitted; ``param_names`` gains
    ``"bh"``). ``stateful``, ``plan``, ``forward``/``backward``, ``h``/``dh``:
    see :class:`_TimeRecurrent`.
    """

    param_names = ("Wx", "Wh", "b")
    cell = CELLS["gru"]

    def __init__(self, Wx, Wh, b, stateful=False, reset_after=False, bh=None, plan=None):
        bh = _check_reset_after("TimeGRU", reset_after, bh, b)
        self.cell = CELLS["gru-reset-after" if reset_after else "gru"]
        super().__init__((Wx, Wh, b) if bh is None else (Wx, Wh, b, bh), stateful, plan)
        self.reset_after = reset_after
        if reset_after:
            self.param_names = ("Wx", "Wh", "b", "bh")


class TimeBiLSTM(Layer):
    """Bidirectional LSTM: one :class:`TimeLSTM` reads ``xs`` forwards, one backwards,
    and ``hs[:, t] = concat(hf_t, hb_t)`` ``(N, 2H)``, with ``hf_t`` the forward
    state after ``x_0 .. x_t`` and ``hb_t`` the backward one after ``x_{T-1} .. x_t``.

    Parameters
    ----------
    Wx1, Wh1, b1 : arrays, shapes (D, 4H), (H, 4H), (4H,)
        The forward LSTM (gates f, g, i, o as in :class:`TimeLSTM`).
    Wx2, Wh2, b2 : arrays, shapes (D, 4H), (H, 4H), (4H,)
        The backward LSTM. ``params`` holds the six arrays in this order.

    ``forward(xs (N, T, D)) -> hs (N, T, 2H)``; ``backward(dhs (N, T, 2H)) -> dxs
    (N, T, D)``. The directions are ``forward_lstm`` and ``backward_lstm`` (whose
    ``grads`` are ``self.grads``). ``h, c`` (last states: ``[0]`` after ``x_{T-1}``,
    ``[1]`` after ``x_0``, as PyTorch's ``h_n``) and ``dh, dc`` (the initial states'
    gradients) are ``(2, N, H)``, or None before. Not stateful (the backward direction
    cannot carry a state into the next block): :meth:`set_state` holds until
    :meth:`reset_state`.
    """

    param_names = ("Wx_fwd", "Wh_fwd", "b_fwd", "Wx_bwd", "Wh_bwd", "b_bwd")

    def __init__(self, Wx1, Wh1, b1, Wx2, Wh2, b2):
        super().__init__()
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2)
        if Wx1.shape != Wx2.shape or Wh1.shape != Wh2.shape:
            raise ShapeError(f"TimeBiLSTM: the backward LSTM's Wx, Wh expected shapes "
                             f"{tuple(Wx1.shape)}, {tuple(Wh1.shape)} (those of the forward "
                             f"LSTM), got {tuple(Wx2.shape)}, {tuple(Wh2.shape)}")
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads
        self._out_shape = None

    @property
    def hidden_size(self) -> int:
        """``H`` of each direction (the output has ``2H`` features)."""
        return self.forward_lstm.hidden_size

    def _pair(self, name):
        a, b = getattr(self.forward_lstm, name), getattr(self.backward_lstm, name)
        if a is None or b is None:
            return None
        return get_array_module(a).stack([a, b])

    h = property(lambda self: self._pair("h"), doc="Last hidden states, (2, N, H).")
    c = property(lambda self: self._pair("c"), doc="Last cell states, (2, N, H).")
    dh = property(lambda self: self._pair("dh"), doc="Gradient of the initial h, (2, N, H).")
    dc = property(lambda self: self._pair("dc"), doc="Gradient of the initial c, (2, N, H).")

    def set_state(self, h, c=None):
        """Initial states for every forward until :meth:`reset_state`.

        Parameters
        ----------
        h : array, shape (2, N, H)
            ``[0]`` for the forward direction, ``[1]`` for the backward one.
        c : array, shape (2, N, H), optional
            Zeros when omitted.
        """
        H = self.hidden_size
        check_shape("TimeBiLSTM.set_state", "h", h, (2, None, H))
        if c is not None:
            check_shape("TimeBiLSTM.set_state", "c", c, (2, h.shape[1], H))
        self.forward_lstm.set_state(h[0], None if c is None else c[0])
        self.backward_lstm.set_state(h[1], None if c is None else c[1])

    def reset_state(self):
        """Start every forward from zeros again."""
        self.forward_lstm.reset_state()
        self.backward_lstm.reset_state()

    def forward(self, xs):
        check_shape("TimeBiLSTM.forward", "xs", xs, ("N", "T", self.params[0].shape[0]))
        xp = get_array_module(self.params[0])
        hf = self.forward_lstm.forward(xs)                  # (N, T, H)
        hb = self.backward_lstm.forward(xs[:, ::-1])        # (N, T, H), reversed time
        hs = xp.concatenate([hf, hb[:, ::-1]], axis=2)      # (N, T, 2H)
        self._out_shape = hs.shape
        return hs

    def backward(self, dhs):
        H = self.hidden_size
        if self._out_shape is None:
            raise RuntimeError("TimeBiLSTM.backward: called before forward")
        check_shape("TimeBiLSTM.backward", "dhs", dhs, self._out_shape)
        dxs = self.forward_lstm.backward(dhs[:, :, :H])
        dxs_b = self.backward_lstm.backward(dhs[:, ::-1, H:])
        dxs += dxs_b[:, ::-1]
        return dxs

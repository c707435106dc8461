"""Optimizers and gradient clipping.

Every optimizer keeps the book's name and arguments and one method,
``update(params, grads)``, which changes ``params`` in place from ``grads`` (two
lists of arrays, in the same order at every call). Per-parameter state (``v``,
``h``, ``m``) is allocated lazily on the first update and keyed by position.
Updates use in-place ufuncs and one preallocated scratch buffer per distinct
``(shape, dtype)``, so a step allocates nothing beyond the method's state.
For contiguous NumPy arrays the rules of several passes (all but SGD) run
block by block over the flattened arrays (blocks of 32768 elements, so that the
scratch block is still in the cache when the next pass reads it: Adam's update
of a large model takes about 20% less time) and the blocks are spread over
:func:`timelayers.threads.parallel_rows`'s threads; every element gets the
same operations in the same order as in one whole-array pass, so the result is
the same to the bit. SGD's two passes gain nothing from it and run whole.

``lr`` is a plain mutable attribute (schedules change it). ``state_dict()``
returns ``{"type", "hyper": {...}, "arrays": {"m.0": array, ...}}`` with JSON-able
hyper-parameters (the learning rate and the step count included);
``load_state_dict`` checks it and restores it exactly, so a resumed run takes
the same steps to the bit.

Update rules, for a parameter ``p`` with gradient ``g`` (``lr`` the learning
rate, ``mu`` the momentum), and how they compare with ``torch.optim``:

========  ==================================================  ==========================
class     rule (ours, the book's where it has one)            PyTorch
========  ==================================================  ==========================
SGD       ``p -= lr g``                                       ``SGD``: same
Momentum  ``v = mu v - lr g;  p += v``                        ``SGD(momentum=mu)``: same
                                                              steps with ``v = -lr buf``
                                                              while ``lr`` is constant
Nesterov  ``p += mu^2 v - (1 + mu) lr g;  v = mu v - lr g``   ``SGD(momentum=mu,
          (Bengio et al. 2012)                                nesterov=True)``: same
                                                              steps with ``v = -lr buf``
AdaGrad   ``h += g^2;  p -= lr g / (sqrt(h) + eps)``          ``Adagrad(eps=1e-7)``: same
RMSprop   ``h = rho h + (1 - rho) g^2;                        ``RMSprop(alpha=rho,
          p -= lr g / (sqrt(h) + eps)``                       eps=1e-7)``: same
Adam      ``m += (1 - b1)(g - m);  v += (1 - b2)(g^2 - v);    ``Adam``: eps differs, see
          p -= lr_t m / (sqrt(v) + eps)``,                    below
          ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``
AdamW     ``p -= lr wd p``, then Adam's step                  ``AdamW``: eps as for Adam
          (Loshchilov and Hutter 2019)
========  ==================================================  ==========================

``eps`` defaults to the book's ``1e-7`` everywhere.

Adam is the book's form, that of the paper's section 2 ("efficient version").
PyTorch's ``Adam`` bias-corrects ``v`` before adding eps: ``p -= lr / (1 -
b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``. The two are the same rule with
PyTorch's eps equal to ours divided by ``sqrt(1 - b2^t)``; with ``eps=0`` they are
identical. The same holds for ``AdamW`` and ``torch.optim.AdamW(lr, betas=(beta1,
beta2), eps, weight_decay)``.

The book's ``Nesterov`` listing applies ``mu^2`` to the velocity *after* it
was updated (``p += mu^2 v_new - (1 + mu) lr g``), which is not the rule of the
paper it cites (Bengio, Boulanger-Lewandowski and Pascanu 2012, "Advances in
optimizing recurrent networks", arXiv:1212.0901): expanding it gives
``mu^3 v_old - (1 + mu + mu^2) lr g``. We implement the paper's rule, which is
also PyTorch's ``nesterov=True``.
"""

from __future__ import annotations

import math

import numpy as np

from .cuda import optim as optim_cuda
from .backend import get_array_module, to_cpu
from .errors import CheckpointError, OptionError
from ._checks import NAME_KINDS, check_value
from .threads import parallel_rows

__all__ = [
    "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW",
    "clip_grads", "global_norm", "OPTIMIZERS", "optimizer_from_state",
]

OPTIMIZERS: dict = {}

HYPER_PARAMETERS = ("lr", "weight_decay", "eps", "momentum", "decay_rate", "beta1", "beta2")
"""The optimizers' hyper-parameters, checked against their kinds
(:data:`timelayers._checks.NAME_KINDS`) whenever they are set: by the
constructor, a schedule, or a checkpoint."""

_BLOCK = 1 << 15                  # elements per block of a blockwise update
_MIN_PER_THREAD = 1 << 18         # fewer elements than this per thread are not worth a thread


def _blockwise(fn, arrays) -> None:
    """Call ``fn(*arrays)``, or -- when every array is a C-contiguous NumPy array
    of one size -- ``fn`` on matching flat blocks of them, on several threads.

    ``fn`` must be elementwise (each output element depends on the same element
    of the inputs only), so that blocks give the whole-array result.
    """
    first = arrays[0]
    if (not isinstance(first, np.ndarray) or first.size < 2 * _BLOCK
            or not all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.size == first.size
                       for a in arrays)):
        fn(*arrays)
        return
    flats = [a.reshape(-1) for a in arrays]
    parallel_rows(lambda a, b: fn(*(f[a:b] for f in flats)), first.size,
                  min_rows=_MIN_PER_THREAD, max_block=_BLOCK)


class Optimizer:
    """Base class: lazily allocated per-parameter state, scratch buffers,
    ``state_dict`` / ``load_state_dict``.

    A subclass names its state arrays in ``_slots`` (e.g. ``("m", "v")``; each
    becomes an attribute holding a list of arrays, the book's ``self.v``), its
    JSON hyper-parameters in ``_hyper``, and implements ``_step(p, g, tmp,
    *state)``, an elementwise update in place (it may be called on matching
    blocks of the arrays, see :func:`_blockwise`). ``iter`` counts the updates made.
    """

    _slots: tuple = ()
    _hyper: tuple = ("lr",)
    _by_blocks: bool = True  # run _step block by block (see the module docstring)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.__name__] = cls

    def __init__(self, lr):
        self.lr = lr
        self.iter = 0
        for name in self._slots:
            setattr(self, name, None)
        self._scratch = {}

    def __setattr__(self, name, value):
        if name in HYPER_PARAMETERS:
            check_value(NAME_KINDS[name], value, f"{type(self).__name__}: argument {name!r}")
            value = float(value)
        object.__setattr__(self, name, value)

    # -- the update ------------------------------------------------------------
    def update(self, params, grads):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : list of arrays
            Changed in place. Same order (and shapes) at every call.
        grads : list of arrays
            One per param, same shape.
        """
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.update: got {len(params)} params and "
                             f"{len(grads)} grads")
        self._ensure_state(params)
        self.iter += 1
        self._begin_step()
        slots = [getattr(self, name) for name in self._slots]
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f"{type(self).__name__}.update: grad {i} has shape "
                                 f"{tuple(g.shape)}, its param {tuple(p.shape)}")
            state = [s[i] for s in slots]
            if optim_cuda.takes(p, g, *state):
                optim_cuda.step(self._kernel, p, g, *state, scalars=self._kernel_scalars())
                continue
            arrays = [p, g, self._buffer(p), *state]
            if self._by_blocks:
                _blockwise(self._step, arrays)
            else:
                self._step(*arrays)

    def _begin_step(self):
        """Per-step scalars (e.g. Adam's bias-corrected learning rate)."""

    def _step(self, p, g, tmp, *state):
        raise NotImplementedError

    _kernel: str = ""  # the rule's kernel in optim_cuda, for CuPy arrays

    def _kernel_scalars(self) -> tuple:
        """The scalars of :attr:`_kernel` after ``p, g`` and the state arrays."""
        raise NotImplementedError

    def _buffer(self, p):
        xp = get_array_module(p)
        key = (xp.__name__, p.shape, p.dtype.str)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = xp.empty(p.shape, dtype=p.dtype)
        return buf

    def _ensure_state(self, params):
        if not self._slots:
            return
        first = getattr(self, self._slots[0])
        if first is None:
            for name in self._slots:
                setattr(self, name, [get_array_module(p).zeros_like(p) for p in params])
            return
        if len(first) != len(params):
            raise ValueError(f"{type(self).__name__}.update: state holds {len(first)} params, "
                             f"got {len(params)} (use one optimizer per model)")
        for name in self._slots:
            arrays = getattr(self, name)
            for i, (a, p) in enumerate(zip(arrays, params)):
                if a.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}.update: state {name}.{i} has shape "
                                     f"{tuple(a.shape)}, its param {tuple(p.shape)}")
                xp = get_array_module(p)
                if get_array_module(a) is not xp:  # after load_state_dict, or a model moved
                    a = arrays[i] = to_cpu(a) if xp is np else xp.asarray(a)
                if a.dtype != p.dtype:
                    arrays[i] = a.astype(p.dtype)

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"type": class name, "hyper": {name: scalar}, "arrays": {"v.0": array}}``.

        The arrays are the live state arrays (not copies); ``hyper`` includes
        ``lr`` and the update count ``iter``.
        """
        hyper = {name: getattr(self, name) for name in self._hyper}
        hyper["iter"] = self.iter
        arrays = {}
        for name in self._slots:
            for i, a in enumerate(getattr(self, name) or ()):
                arrays[f"{name}.{i}"] = a
        return {"type": type(self).__name__, "hyper": hyper, "arrays": arrays}

    def check_state_dict(self, state: dict, params=None) -> None:
        """Raise :class:`CheckpointError` when ``state`` does not fit this optimizer
        (or, given ``params``, their count and shapes). Changes nothing."""
        name = type(self).__name__
        if not isinstance(state, dict) or not isinstance(state.get("hyper"), dict):
            raise CheckpointError(f"{name}: optimizer state must be a dict with 'hyper' and "
                                  f"'arrays'")
        if state.get("type", name) != name:
            raise CheckpointError(f"{name}: the checkpoint holds the state of a "
                                  f"{state.get('type')} optimizer")
        missing = [h for h in (*self._hyper, "iter") if h not in state["hyper"]]
        if missing:
            raise CheckpointError(f"{name}: optimizer state lacks {missing}")
        _check_hyper(type(self), state["hyper"])
        arrays = state.get("arrays") or {}
        counts = []
        for slot in self._slots:
            keys = {k for k in arrays if k.split(".")[0] == slot}
            want = {f"{slot}.{i}" for i in range(len(keys))}
            if keys != want:
                raise CheckpointError(f"{name}: optimizer arrays {sorted(keys)} are not "
                                      f"numbered {slot}.0 .. {slot}.{len(keys) - 1}")
            counts.append(len(keys))
        unexpected = [k for k in arrays if k.split(".")[0] not in self._slots]
        if unexpected:
            raise CheckpointError(f"{name}: unexpected optimizer arrays {unexpected}")
        if len(set(counts)) > 1:
            raise CheckpointError(f"{name}: optimizer slots hold different counts {counts}")
        if params is not None and counts and counts[0] not in (0, len(params)):
            raise CheckpointError(f"{name}: optimizer state holds {counts[0]} params, the model "
                                  f"has {len(params)}")
        if params is not None:
            for key, a in arrays.items():
                p = params[int(key.split(".", 1)[1])]
                if tuple(a.shape) != tuple(p.shape):
                    raise CheckpointError(f"{name}: optimizer tensor {key!r} has shape "
                                          f"{tuple(a.shape)}, its param {tuple(p.shape)}")
                if np.dtype(a.dtype) != np.dtype(p.dtype):
                    raise CheckpointError(f"{name}: optimizer tensor {key!r} has dtype {a.dtype}, "
                                          f"its param {p.dtype}")

    def load_state_dict(self, state: dict, params=None) -> None:
        """Restore what :meth:`state_dict` returned (arrays are copied).

        Parameters
        ----------
        state : dict
        params : list of arrays, optional
            When given, the arrays' count, shapes and dtypes are checked against them.
        """
        self.check_state_dict(state, params)
        hyper = state["hyper"]
        for h in self._hyper:
            setattr(self, h, type(getattr(self, h))(hyper[h]))
        self.iter = int(hyper["iter"])
        arrays = state.get("arrays") or {}
        for slot in self._slots:
            n = sum(1 for k in arrays if k.split(".")[0] == slot)
            if n == 0:
                setattr(self, slot, None)
            else:
                like = params[0] if params else None
                xp = get_array_module(like)
                setattr(self, slot, [xp.array(to_cpu(arrays[f"{slot}.{i}"])) if like is not None
                                     else arrays[f"{slot}.{i}"].copy() for i in range(n)])

    def __repr__(self):
        args = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hyper)
        return f"{type(self).__name__}({args})"


def _check_hyper(cls, hyper: dict) -> None:
    """Raise :class:`CheckpointError` when a saved hyper-parameter of a ``cls``
    optimizer (or its update count) is not what the optimizer takes."""
    try:
        for h in cls._hyper:
            if h in hyper:
                check_value(NAME_KINDS[h], hyper[h], f"{cls.__name__}: hyper-parameter {h!r}")
        if "iter" in hyper:
            check_value("non-negative int", hyper["iter"], f"{cls.__name__}: update count 'iter'")
    except OptionError as exc:
        raise CheckpointError(str(exc)) from None


def optimizer_from_state(state: dict) -> Optimizer:
    """Build the optimizer that :meth:`Optimizer.state_dict` describes."""
    name = state.get("type") if isinstance(state, dict) else None
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise CheckpointError(f"unknown optimizer type {name!r} (known: {sorted(OPTIMIZERS)})")
    if not isinstance(state.get("hyper"), dict):
        raise CheckpointError(f"{name}: optimizer state must be a dict with 'hyper' and 'arrays'")
    _check_hyper(cls, state["hyper"])
    hyper = {h: state["hyper"][h] for h in cls._hyper if h in state["hyper"]}
    opt = cls(**hyper)
    opt.load_state_dict(state)
    return opt


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, default 0.01
    """

    _by_blocks = False

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _step(self, p, g, tmp):
        xp = get_array_module(p)
        xp.multiply(g, self.lr, out=tmp)
        p -= tmp

    _kernel = "sgd_step"

    def _kernel_scalars(self):
        return (self.lr,)


class Momentum(Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``.

    Equal to ``torch.optim.SGD(momentum=momentum)`` with ``v = -lr * buf`` while
    ``lr`` does not change (PyTorch's buffer does not include the learning rate,
    the book's velocity does, so they part when a schedule changes ``lr``).

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9
    """

    _slots = ("v",)
    _hyper = ("lr", "momentum")

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _step(self, p, g, tmp, v):
        xp = get_array_module(p)
        v *= self.momentum
        xp.multiply(g, self.lr, out=tmp)
        v -= tmp
        p += v

    _kernel = "momentum_step"

    def _kernel_scalars(self):
        return self.momentum, self.lr


class Nesterov(Momentum):
    """Nesterov's accelerated gradient in Bengio et al.'s form (arXiv:1212.0901):
    ``p += momentum^2 * v - (1 + momentum) * lr * g``, then
    ``v = momentum * v - lr * g``.

    Equal to ``torch.optim.SGD(momentum=momentum, nesterov=True)`` with
    ``v = -lr * buf`` (constant ``lr``). The book's listing uses the updated
    velocity in the first line; see the module docstring.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9
    """

    def _step(self, p, g, tmp, v):
        xp = get_array_module(p)
        mu = self.momentum
        xp.multiply(v, mu * mu, out=tmp)
        p += tmp
        xp.multiply(g, (1.0 + mu) * self.lr, out=tmp)
        p -= tmp
        v *= mu
        xp.multiply(g, self.lr, out=tmp)
        v -= tmp

    _kernel = "nesterov_step"

    def _kernel_scalars(self):
        mu = self.momentum
        return mu * mu, (1.0 + mu) * self.lr, mu, self.lr


def _divide_by_root(xp, p, g, h, tmp, lr, eps):
    """``p -= lr * g / (sqrt(h) + eps)`` through the scratch buffer ``tmp`` (AdaGrad, RMSprop)."""
    xp.sqrt(h, out=tmp)
    tmp += eps
    xp.divide(g, tmp, out=tmp)
    tmp *= lr
    p -= tmp


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g * g; p -= lr * g / (sqrt(h) + eps)``.

    Equal to ``torch.optim.Adagrad(lr, eps=1e-7)`` (PyTorch's default eps is 1e-10).

    Parameters
    ----------
    lr : float, default 0.01
    eps : float, default 1e-7
    """

    _slots = ("h",)
    _hyper = ("lr", "eps")

    def __init__(self, lr=0.01, eps=1e-7):
        super().__init__(lr)
        self.eps = eps

    def _step(self, p, g, tmp, h):
        xp = get_array_module(p)
        xp.multiply(g, g, out=tmp)
        h += tmp
        _divide_by_root(xp, p, g, h, tmp, self.lr, self.eps)

    _kernel = "root_scaled_step"

    def _kernel_scalars(self):
        return 1.0, 1.0, self.lr, self.eps


class RMSprop(Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g^2;
    p -= lr * g / (sqrt(h) + eps)``.

    Equal to ``torch.optim.RMSprop(lr, alpha=decay_rate, eps=1e-7)`` (PyTorch's
    defaults are ``alpha=0.99, eps=1e-8``).

    Parameters
    ----------
    lr : float, default 0.01
    decay_rate : float, default 0.99
    eps : float, default 1e-7
    """

    _slots = ("h",)
    _hyper = ("lr", "decay_rate", "eps")

    def __init__(self, lr=0.01, decay_rate=0.99, eps=1e-7):
        super().__init__(lr)
        self.decay_rate = decay_rate
        self.eps = eps

    def _step(self, p, g, tmp, h):
        xp = get_array_module(p)
        h *= self.decay_rate
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.decay_rate
        h += tmp
        _divide_by_root(xp, p, g, h, tmp, self.lr, self.eps)

    _kernel = "root_scaled_step"

    def _kernel_scalars(self):
        return self.decay_rate, 1.0 - self.decay_rate, self.lr, self.eps


class Adam(Optimizer):
    """Adam (Kingma and Ba, arXiv:1412.6980) in the book's form: its update at step
    ``t = self.iter``, and where eps differs from PyTorch's, are in the module
    docstring.

    Parameters
    ----------
    lr : float, default 0.001
    beta1 : float, default 0.9
    beta2 : float, default 0.999
    eps : float, default 1e-7
    """

    _slots = ("m", "v")
    _hyper = ("lr", "beta1", "beta2", "eps")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self._lr_t = None

    def _begin_step(self):
        t = self.iter
        self._lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)

    def _step(self, p, g, tmp, m, v):
        xp = get_array_module(p)
        xp.subtract(g, m, out=tmp)
        tmp *= 1.0 - self.beta1
        m += tmp
        xp.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += self.eps
        xp.divide(m, tmp, out=tmp)
        tmp *= self._lr_t
        p -= tmp

    _kernel = "adam_step"

    def _kernel_scalars(self):
        return 1.0, 1.0 - self.beta1, 1.0 - self.beta2, self.eps, self._lr_t


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, ICLR 2019,
    arXiv:1711.05101): ``p -= lr * weight_decay * p``, then :class:`Adam`'s step.
    Every param is decayed, biases and layer-norm scales included (as one
    ``torch.optim.AdamW`` param group).

    Parameters
    ----------
    lr, beta1, beta2, eps : float
        As for :class:`Adam`.
    weight_decay : float, default 0.01
        PyTorch's default.
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = weight_decay

    def _step(self, p, g, tmp, m, v):
        # decoupled: p shrinks itself instead of wd * p joining g, where Adam's
        # per-parameter scaling would distort it; follows lr as a schedule changes it
        p *= 1.0 - self.lr * self.weight_decay
        super()._step(p, g, tmp, m, v)

    def _kernel_scalars(self):
        return (1.0 - self.lr * self.weight_decay, *super()._kernel_scalars()[1:])

def global_norm(grads):
    """``sqrt(sum of squares)`` over every array in ``grads``, without temporaries.

    Returns a 0-d float64 array on the grads' device (``float()`` reads it): each
    array's sum of squares is one ``vdot`` in its own dtype, and the sums are
    added in float64 in the order of ``grads``, so nothing waits for the device.
    """
    xp = get_array_module(*grads)
    total = xp.zeros((), np.float64)
    for g in grads:
        flat = g.reshape(-1)
        total = total + xp.vdot(flat, flat)
    return xp.sqrt(total)


def clip_grads(grads, max_norm):
    """Scale ``grads`` in place so that their global norm is at most ``max_norm``.

    Every gradient is multiplied by ``min(1, max_norm / (norm + 1e-6))`` (the
    book's rate), cast to the gradient's dtype. The factor is computed on the
    grads' device and applied there, with no value read to the host, so on a GPU
    clipping does not make the step wait (the price there: a pass over the
    gradients even when the factor is 1; NumPy gradients skip it). A non-finite
    norm gives the factor 1: the gradients keep their values (the trainers treat
    it like a non-finite loss).

    Parameters
    ----------
    grads : list of arrays
    max_norm : float

    Returns
    -------
    0-d float64 array, on the grads' device
        The global norm before clipping.
    """
    check_value("positive finite number", max_norm, "clip_grads: argument 'max_norm'")
    xp = get_array_module(*grads)
    if xp is np:
        norm = global_norm(grads)
        factor = xp.where(xp.isfinite(norm), xp.minimum(max_norm / (norm + 1e-6), 1.0), 1.0)
    else:
        norm, factor = optim_cuda.norm_and_factor(grads, max_norm)
    if isinstance(factor, np.ndarray) and factor == 1.0:  # free to read on the host: skip the pass
        return norm
    in_dtype = {}
    for g in grads:
        if g.dtype not in in_dtype:
            in_dtype[g.dtype] = factor.astype(g.dtype)

        def scale(block, f=in_dtype[g.dtype]):
            block *= f

        _blockwise(scale, [g])
    return norm

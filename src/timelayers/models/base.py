"""The model base class: a model is a layer made of layers.

A subclass builds its layers as attributes in ``__init__`` (single layers, nested
models, or lists of them) and implements ``forward`` and ``_backward``. The base
class then gives:

- ``params`` / ``grads``: every learnable array once, in attribute order, with
  dotted names (``"lstm.Wx"``, ``"encoder.embed.W"``);
- weight tying as one explicit statement, ``self.tie("affine.W", "embed.W",
  transpose=True)``: the tied param is left out of ``params`` and its gradient is
  added to the source's gradient at the end of ``backward``;
- ``train()`` / ``eval()``; the recurrent state: ``reset_state()``, ``get_state()``
  (a dict of copies) and ``set_state(state)``;
- ``to_gpu()`` / ``to_cpu()``: every array of the model moved to CuPy or NumPy
  in place (ties and shared arrays kept);
- ``state_dict()`` / ``load_state_dict()`` and ``save(path)`` / ``Model.load(path)``
  in the safetensors format, with the model class, its config, the library version,
  the vocabulary (if any) and ``run_id`` (if set: the run folder it belongs to) as
  JSON metadata.

Constructor arguments are the config: ``model.config`` is a dataclass (or dict)
whose fields are the constructor's arguments (all but ``rng``), so
``type(model)(**asdict(config))`` rebuilds the model. A model that draws random
numbers while training (dropout, negative samples) keeps one
``numpy.random.Generator`` at ``model.rng``, shared by its layers, so that a
training checkpoint can save and restore it.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np

from ..backend import (cupy_available, get_array_module, is_cupy_array, is_fortran_only, to_cpu,
                       to_gpu)
from ..errors import CheckpointError, DataError
from ..layers.base import Layer
from ..serialization import load_tensors, save_tensors
from ._layout import param_layout
from .file_checks import (check_config_sizes, check_finite, check_param_shapes, check_vocab_fits,
                          read_metadata)
from .._version import __version__
from ..vocab import Vocabulary

__all__ = ["Model", "MODEL_REGISTRY", "named_generators"]

MODEL_REGISTRY: dict = {}


class Model:
    """Base class of every model. See the module docstring."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODEL_REGISTRY[cls.__name__] = cls

    # -- structure ---------------------------------------------------------------
    def _children(self):
        """(name, layer-or-model) pairs in attribute order."""
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (Layer, Model)):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(
                    isinstance(v, (Layer, Model)) for v in value):
                for i, v in enumerate(value):
                    yield f"{name}.{i}", v

    def named_layers(self, prefix=""):
        """Every leaf layer as (dotted name, layer), depth first in attribute order."""
        for name, child in self._children():
            full = f"{prefix}{name}"
            if isinstance(child, Model):
                yield from child.named_layers(full + ".")
            else:
                yield full, child

    def _param_slots(self):
        """(dotted name, layer, index in ``layer.params``) for every param of every
        layer, ties included."""
        for lname, layer in self.named_layers():
            names = list(layer.param_names) or [str(i) for i in range(len(layer.params))]
            for k, pname in enumerate(names[:len(layer.params)]):
                yield f"{lname}.{pname}", layer, k

    def named_param_slots(self):
        """(dotted name, param, grad) for every param slot of every layer, the tied
        ones included (``param_names``/``params`` list each array once)."""
        for name, layer, k in self._param_slots():
            yield name, layer.params[k], layer.grads[k]

    def tie(self, tied: str, source: str, transpose: bool = False):
        """Declare that the param named ``tied`` is the param ``source`` (or its
        transpose): it is left out of ``params`` and its gradient is added to the
        source's gradient after every ``backward``."""
        if not hasattr(self, "_ties"):
            self._ties = []
        self._ties.append((tied, source, transpose))
        self._cache = None

    def _collect(self):
        cache = getattr(self, "_cache", None)
        if cache is not None:
            return cache
        ties = getattr(self, "_ties", [])
        tied_names = {t for t, _, _ in ties}
        table = {name: (p, g) for name, p, g in self.named_param_slots()}
        for tied, source, transpose in ties:
            for n in (tied, source):
                if n not in table:
                    raise KeyError(f"{type(self).__name__}.tie: no param named {n!r}")
            want = table[source][0].T if transpose else table[source][0]
            if table[tied][0].shape != want.shape:
                raise ValueError(f"{type(self).__name__}.tie: {tied!r} has shape "
                                 f"{table[tied][0].shape}, {source!r} gives {want.shape}")
        names, params, grads, seen = [], [], [], {}
        for name, (p, g) in table.items():
            if name in tied_names:
                continue
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: {name!r} and {seen[id(p)]!r} are the same "
                                 f"array; declare it with self.tie({name!r}, {seen[id(p)]!r})")
            seen[id(p)] = name
            names.append(name)
            params.append(p)
            grads.append(g)
        tie_grads = [(table[t][1], table[s][1], tr) for t, s, tr in ties]
        self._cache = (names, params, grads, tie_grads)
        return self._cache

    @property
    def param_names(self):
        return self._collect()[0]

    @property
    def params(self):
        return self._collect()[1]

    @property
    def grads(self):
        return self._collect()[2]

    # -- the layer protocol ------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError

    def _backward(self, dout=1):
        raise NotImplementedError

    def backward(self, dout=1):
        """Backpropagate ``dout`` (1 for a loss), fill ``grads`` (tied gradients
        summed into their source) and return the subclass's input gradient, if any."""
        result = self._backward(dout)
        for tied_grad, source_grad, transpose in self._collect()[3]:
            source_grad += tied_grad.T if transpose else tied_grad
        return result

    def train(self):
        """Training mode (dropout on). Returns the model."""
        for _, layer in self.named_layers():
            layer.train_flg = True
        return self

    def eval(self):
        """Evaluation mode (dropout off). Returns the model."""
        for _, layer in self.named_layers():
            layer.train_flg = False
        return self

    @property
    def training(self) -> bool:
        return all(layer.train_flg for _, layer in self.named_layers())

    def reset_state(self):
        """Clear the recurrent state of every stateful layer."""
        for _, layer in self.named_layers():
            if hasattr(layer, "reset_state"):
                layer.reset_state()

    def get_state(self) -> dict:
        """Copies of the recurrent state that the stateful layers carry from one
        forward to the next: ``{"rnn.h": (N, H), "rnn.c": (N, H)}`` (dotted layer
        name, then ``h``, and ``c`` for an LSTM). Layers without a state yet (after
        :meth:`reset_state`) are left out, so a fresh model gives ``{}``.

        A stateful layer is one with ``stateful = True`` and ``set_state(h, c=None)``
        (the library's recurrent layers); its state is its ``h`` and ``c``.
        """
        state = {}
        for name, layer in self._stateful_layers():
            for key in ("h", "c"):
                value = getattr(layer, key, None)
                if value is not None:
                    state[f"{name}.{key}"] = value.copy()
        return state

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned: each array is copied to the
        array module of the model's params; a stateful layer absent from ``state``
        is reset."""
        names = [name for name, _ in self._stateful_layers()]
        unknown = sorted(set(state) - {f"{n}.{k}" for n in names for k in ("h", "c")})
        if unknown:
            raise KeyError(f"{type(self).__name__}.set_state: no stateful layer for {unknown} "
                           f"(the stateful layers are {names})")
        xp = get_array_module(*self.params[:1])
        for name, layer in self._stateful_layers():
            h, c = state.get(f"{name}.h"), state.get(f"{name}.c")
            layer.reset_state()
            if h is not None:
                layer.set_state(xp.array(h), None if c is None else xp.array(c))

    def _stateful_layers(self):
        """(dotted name, layer) for every layer with ``stateful = True`` and ``set_state``."""
        return [(name, layer) for name, layer in self.named_layers()
                if getattr(layer, "stateful", False) is True
                and callable(getattr(layer, "set_state", None))]

    # -- devices -----------------------------------------------------------------
    def to_gpu(self):
        """Move the model to the GPU: every array it holds (params, grads,
        recurrent states, the caches of the last forward) is replaced by a CuPy
        copy, in place; returns the model. Needs CuPy and a GPU.

        Tied params stay views of their source and arrays shared by several
        layers stay shared. Random draws (dropout masks, negative samples) keep
        coming from the model's NumPy generator on the CPU, so a run on the GPU
        draws the same numbers as on the CPU. An optimizer that has already
        stepped moves its state to the params' device at its next update. The
        inputs must be moved too (``timelayers.to_gpu(xs)``)."""
        if not cupy_available():
            raise RuntimeError(f"{type(self).__name__}.to_gpu: CuPy is not installed or sees no "
                               f"GPU (install the CuPy package built for your CUDA version, "
                               f"e.g. cupy-cuda12x)")
        return self.replace_arrays(_keeping_order(to_gpu))

    def to_cpu(self):
        """Move the model back to NumPy (the reverse of :meth:`to_gpu`); returns the model."""
        return self.replace_arrays(_keeping_order(to_cpu))

    def replace_arrays(self, convert):
        """Replace every array held by the model, its layers and sub-models with
        ``convert(array)`` (one conversion per array object), then make the tied
        params views of their moved sources again; returns the model. The
        devices (:meth:`to_gpu`) and data parallel's flat gradient buffers
        (:func:`timelayers.distributed.flat_buffers.flatten_grads`) move arrays
        this way."""
        moved = {}

        def move(a):
            entry = moved.get(id(a))
            if entry is None:  # (the original is kept in the entry so that its id stays unique)
                entry = moved[id(a)] = (a, convert(a))
            return entry[1]

        _move_held_arrays(self, move, set())
        slots = {name: (layer, k) for name, layer, k in self._param_slots()}
        for prefix, model in _named_models(self):
            model._cache = None
            for tied, source, transpose in getattr(model, "_ties", []):
                src_layer, j = slots[prefix + source]
                layer, k = slots[prefix + tied]
                layer.params[k] = src_layer.params[j].T if transpose else src_layer.params[j]
        return self

    def replica(self):
        """A copy of the model that can run at the same time as it, in another
        thread, in evaluation mode: its layers, sub-models, lists and dicts are
        its own (so are the states and caches its forwards leave), but it holds
        the very arrays of this model -- params, grads, tables, buffers -- and
        copies no data. That is safe because no layer's forward in evaluation
        mode writes into an array the layer holds (a test checks every model).
        The seq2seq decoders run blocks of rows on replicas
        (:mod:`timelayers.decoding`)."""
        return _replicated(self, {})

    # -- saving and loading --------------------------------------------------------
    def state_dict(self) -> dict:
        """Dotted name -> param array (the live arrays, not copies)."""
        names, params, _, _ = self._collect()
        return dict(zip(names, params))

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` into the params in place (their identity is kept).

        Every name, shape, dtype and value (no NaN or infinity) is checked before
        anything is copied, so a mismatch raises :class:`CheckpointError` and
        leaves the model unchanged.
        """
        own = self.state_dict()
        missing = [n for n in own if n not in state]
        unexpected = [n for n in state if n not in own]
        if missing or unexpected:
            raise CheckpointError(f"{type(self).__name__}: checkpoint tensors do not match the model "
                                  f"(missing {missing}, unexpected {unexpected})")
        for name, p in own.items():
            v = state[name]
            if tuple(v.shape) != tuple(p.shape):
                raise CheckpointError(f"{type(self).__name__}: tensor {name!r} has shape "
                                      f"{tuple(v.shape)} in the checkpoint, the model expects "
                                      f"{tuple(p.shape)}")
            if np.dtype(v.dtype) != np.dtype(p.dtype):
                raise CheckpointError(f"{type(self).__name__}: tensor {name!r} has dtype {v.dtype} "
                                      f"in the checkpoint, the model expects {p.dtype}")
        check_finite(state, type(self).__name__)
        for name, p in own.items():
            p[...] = get_array_module(p).asarray(state[name])

    def metadata(self) -> dict:
        """What ``save`` writes besides the tensors (JSON-serialisable)."""
        meta = {"format": "timelayers", "model": type(self).__name__,
                "config": config_dict(self), "version": __version__}
        vocab = getattr(self, "vocab", None)
        if vocab is not None:
            meta["vocab"] = vocab.to_dict()
        run_id = getattr(self, "run_id", None)
        if run_id is not None:  # the run folder the model was trained in
            meta["run_id"] = run_id
        return meta

    def save(self, path, extra_tensors: dict | None = None, extra_metadata: dict | None = None):
        """Write the params (and ``extra_tensors``) to ``path`` atomically, in the
        safetensors format with JSON metadata under the key ``"timelayers"``."""
        meta = self.metadata()
        if extra_metadata:
            meta.update(extra_metadata)
        tensors = dict(self.state_dict())
        for name, value in (extra_tensors or {}).items():
            if name in tensors:
                raise ValueError(f"{type(self).__name__}.save: extra tensor {name!r} has the name "
                                 f"of a model param")
            tensors[name] = value
        save_tensors(path, tensors, {"timelayers": json.dumps(meta)})

    def save_params(self, path):
        """The book's ``save_params``: :meth:`save` (a safetensors file, no pickle)."""
        self.save(path)

    def load_params(self, path):
        """The book's ``load_params``: read the params of a file written by
        :meth:`save` (or :meth:`save_params`) into this model, in place (the arrays
        keep their identity; a model on a GPU stays there). The file must hold a
        model of this class and config (else :class:`CheckpointError` naming it);
        its vocabulary, if any, becomes the model's."""
        loaded = Model.load(path)
        where = f"{str(path)!r}"
        if type(loaded) is not type(self):
            raise CheckpointError(f"{where} holds a {type(loaded).__name__}, this model is a "
                                  f"{type(self).__name__}")
        ours, theirs = config_dict(self), config_dict(loaded)
        if ours != theirs:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise CheckpointError(f"{where} holds a {type(self).__name__} whose config differs "
                                  f"from this one's in {diff}")
        self.load_state_dict(loaded.state_dict())
        if getattr(loaded, "vocab", None) is not None:
            self.vocab = loaded.vocab

    @classmethod
    def param_shapes(cls, config: dict) -> dict:
        """Dotted name -> shape of every param of ``cls(**config)`` (ties left
        out, in ``state_dict`` order), computed from ``config`` alone: nothing is
        built or allocated. Every model class of the library states its params
        (``param_layout``: name, shape and init, next to the constructor that
        draws them from it; :mod:`timelayers.models._layout`).

        Raises
        ------
        NotImplementedError
            For a model class from outside the library.
        TypeError, ValueError
            For a config the constructor would refuse (an unknown key, a size
            that is not a non-negative int), and for the parts of the
            Transformers, which are loaded only inside their wholes.
        """
        return dict(param_layout(cls, config))

    @classmethod
    def load(cls, path):
        """Rebuild a saved model: its class and config from the metadata, then the
        params. Calling ``Rnnlm.load`` on a file of another model class raises
        :class:`CheckpointError`."""
        model, _, _ = cls._load_full(path)
        return model

    @classmethod
    def _load_full(cls, path):
        """Read a checkpoint and rebuild its model. Every part of the file is
        checked before the model is built (see :func:`read_metadata`): the
        config's sizes against the tensors' real shapes, the shapes of the params
        the config describes (:meth:`param_shapes`) against the file's tensors,
        the weights' finiteness, the vocabulary's size against the config's
        ``vocab_size``; the tensors' names, shapes and dtypes are then checked
        against the built model (for a class from outside the library, which
        does not state its shapes, that is the first check of the shapes).

        Returns
        -------
        model, extra tensors (name -> array, those that are not params), metadata
        """
        where = f"checkpoint {str(path)!r}"
        tensors, raw = load_tensors(path)
        meta = read_metadata(raw, path)
        target = MODEL_REGISTRY.get(meta["model"])
        if target is None:
            raise CheckpointError(f"{where} holds unknown model {meta['model']!r}")
        if cls is not Model and not issubclass(target, cls):
            raise CheckpointError(f"{where} holds a {target.__name__}, not a {cls.__name__}")
        config = meta.get("config", {})
        check_config_sizes(config, tensors, where)
        check_param_shapes(target, config, tensors, where)
        check_finite(tensors, where)
        vocab = None
        if "vocab" in meta:
            try:
                vocab = Vocabulary.from_dict(meta["vocab"])
            except DataError as exc:
                raise CheckpointError(f"{where}: {exc}") from None
            check_vocab_fits(vocab, config, where, target.__name__)
        try:
            model = target(**config)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"{where} has a config that {target.__name__} does not "
                                  f"accept: {exc}") from None
        if vocab is not None:
            model.vocab = vocab
        if "run_id" in meta:
            model.run_id = meta["run_id"]
        own = model.state_dict()
        try:
            model.load_state_dict({k: v for k, v in tensors.items() if k in own})
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        extra = {k: v for k, v in tensors.items() if k not in own}
        return model, extra, meta


def named_generators(model) -> list:
    """The distinct ``numpy.random.Generator`` objects of ``model``, each once, as
    ``(name, generator)``: the model's own ``rng`` (name None), then each
    layer's ``rng`` (the layer's dotted name) and its sampler's
    (``"<layer>.sampler"``), in the layers' order."""
    found, seen = [], set()

    def add(name, generator):
        if isinstance(generator, np.random.Generator) and id(generator) not in seen:
            seen.add(id(generator))
            found.append((name, generator))

    add(None, getattr(model, "rng", None))
    named = getattr(model, "named_layers", None)
    for name, layer in (named() if callable(named) else ()):
        add(name, getattr(layer, "rng", None))
        add(f"{name}.sampler", getattr(getattr(layer, "sampler", None), "rng", None))
    return found


def config_dict(model) -> dict:
    """The model's ``config`` (a dataclass or a dict) as a plain dict."""
    config = getattr(model, "config", None)
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def _keeping_order(convert):
    """``convert`` that returns Fortran-ordered arrays for Fortran-ordered inputs
    (CuPy's ``get`` returns C order): a tied ``W`` that is an embedding's
    transpose, and the buffers made to match it, keep their layout."""

    def keep(a):
        out = convert(a)
        if is_fortran_only(a) and not out.flags.f_contiguous:
            out = get_array_module(out).asfortranarray(out)
        return out

    return keep


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or is_cupy_array(value)


def _move_held_arrays(obj, move, seen):
    """``move`` every array in the attributes of the model or layer ``obj``,
    recursing into layers, models, lists and tuples (named ones too; not into
    other objects: a model's config, vocabulary and generators stay as they are,
    and a recurrent plan re-makes the buffers it keeps for the arrays it is given)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for name, value in list(vars(obj).items()):
        new = _moved(value, move, seen)
        if new is not value:
            setattr(obj, name, new)


def _moved(value, move, seen):
    if _is_array(value):
        return move(value)
    if isinstance(value, (Layer, Model)):
        _move_held_arrays(value, move, seen)
    elif isinstance(value, list):
        value[:] = [_moved(v, move, seen) for v in value]  # the list object is kept
    elif type(value) is tuple:
        return tuple(_moved(v, move, seen) for v in value)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple cache
        return type(value)(*(_moved(v, move, seen) for v in value))
    return value


def _replicated(value, memo):
    """``value`` with every layer, model, list and dict in it copied (each once, so
    what was shared stays shared) and everything else -- arrays, plans, generators,
    configs -- the same object; ``memo``: id -> copy."""
    if isinstance(value, tuple):
        items = [_replicated(v, memo) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if not isinstance(value, (Layer, Model, list, dict)):
        return value
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, list):
        copied = memo[id(value)] = []
        copied.extend(_replicated(v, memo) for v in value)
    elif isinstance(value, dict):
        copied = memo[id(value)] = {}
        copied.update((k, _replicated(v, memo)) for k, v in value.items())
    else:
        copied = memo[id(value)] = copy.copy(value)
        for name, v in vars(value).items():
            setattr(copied, name, _replicated(v, memo))
    return copied


def _named_models(model, prefix=""):
    """(dotted prefix of its params' names, model) for ``model`` and every model
    nested in it."""
    yield prefix, model
    for name, child in model._children():
        if isinstance(child, Model):
            yield from _named_models(child, f"{prefix}{name}.")

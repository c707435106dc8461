"""The layer contract shared by every layer and model.

- ``params``: list of learnable arrays; ``grads``: arrays of the same shapes and
  dtypes, allocated once. ``backward`` writes into ``grads`` in place (it never
  rebinds the list items) and overwrites rather than accumulates.
- ``param_names``: one name per param (``"W"``, ``"b"``), used for state dicts.
- ``forward(*inputs)`` caches what ``backward`` needs; ``backward(dout)`` returns
  the gradient of each floating-point input (a tuple when there are several).
- ``train_flg``: True in training mode; layers with different behaviour at
  evaluation time (dropout) read it.
- ``params_fixed``: True while the params are promised not to change
  (:func:`fixed_params`); a layer may then keep what it derives from them.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..backend import get_array_module

__all__ = ["Layer", "evaluation_mode", "fixed_params"]


class Layer:
    """Base class: empty ``params``/``grads`` and training mode on."""

    param_names: tuple = ()

    def __init__(self):
        self.params = []
        self.grads = []
        self.train_flg = True
        self.params_fixed = False  # see fixed_params

    def _init_params(self, *arrays):
        """Keep ``arrays`` as params (the very objects) and allocate zero grads."""
        self.params = list(arrays)
        self.grads = [get_array_module(a).zeros_like(a) for a in arrays]

    def __repr__(self):
        shapes = ", ".join(f"{n}={tuple(p.shape)}" for n, p in zip(self.param_names, self.params))
        return f"{type(self).__name__}({shapes})"


def _leaf_layers(model):
    """The leaf layers of a model (``named_layers``), None for anything else."""
    named = getattr(model, "named_layers", None)
    return [layer for _, layer in named()] if callable(named) else None


@contextmanager
def evaluation_mode(model):
    """Put ``model`` in evaluation mode for the ``with`` block, then restore the
    previous ``train_flg`` of every layer (or call ``train()`` back for models
    that only have ``train()`` / ``eval()``)."""
    layers = _leaf_layers(model)
    if layers is not None:
        flags = [(layer, layer.train_flg) for layer in layers]
        model.eval()
        try:
            yield model
        finally:
            for layer, flag in flags:
                layer.train_flg = flag
        return
    was_training = getattr(model, "training", True)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


@contextmanager
def fixed_params(model):
    """Promise that the params of ``model`` (a model or a layer) do not change in
    the ``with`` block -- the decoding loops of :mod:`timelayers.decoding` -- so
    that its layers may keep what they derive from them from one call to the next
    (the recurrent layers' prepared weight copies); they drop it at their first
    call after the block."""
    layers = _leaf_layers(model) or [model]
    flags = [(layer, getattr(layer, "params_fixed", False)) for layer in layers]
    for layer in layers:
        layer.params_fixed = True
    try:
        yield model
    finally:
        for layer, flag in flags:
            layer.params_fixed = flag

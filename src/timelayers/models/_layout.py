"""The names and shapes of a model's params from its config alone.

Each model class states its params next to its constructor, as a
``param_layout(**config)`` static method that yields ``(dotted name, shape)``
in ``state_dict`` order (tied params left out), lazily; this module holds the
pieces they share and :func:`param_layout`, which :meth:`Model.param_shapes`
and :meth:`Model.load` call. Loading compares the pairs with a file's tensors
before it builds the model, so a config whose sizes do not fit the weights is
refused without allocating the model it describes, and a config asking for
``num_layers=10000`` costs nothing either (the loader stops at the first
param the file lacks). ``tests/models/test_param_shapes.py`` builds every class
and checks its layout against the built model.

A layout covers exactly the class that states it, not its subclasses: a model
class defined outside the library has none, and :func:`param_layout` raises
``NotImplementedError`` for it.
"""

from __future__ import annotations

import inspect
import numbers

from ._recurrent import cell_param_layout

__all__ = ["param_layout", "size", "sizes", "prefixed", "recurrent", "layer_norm",
           "transformer_blocks", "no_params", "part_of"]


def param_layout(model_class, config: dict):
    """``(dotted name, shape)`` of every param of ``model_class(**config)``, in
    ``state_dict`` order, without building it: the config is bound to the
    constructor's signature first (its defaults filled in, an unknown key
    refused); the pairs are computed as they are iterated.

    Raises
    ------
    NotImplementedError
        For a class that states no layout of its own (one defined outside the library).
    TypeError, ValueError
        For a config the constructor would refuse: an unknown key, a size that
        is not a non-negative int, an unknown cell (raised while iterating); and
        for the parts built only inside another model.
    """
    rule = model_class.__dict__.get("param_layout")
    if rule is None:
        raise NotImplementedError(f"{model_class.__name__} does not state its param shapes")
    rule = rule.__func__ if isinstance(rule, staticmethod) else rule
    if getattr(rule, "whole", None):
        raise TypeError(f"{model_class.__name__} is built only as a part of a {rule.whole}, "
                        f"which is saved and loaded whole")
    bound = inspect.signature(model_class).bind(**config)
    bound.apply_defaults()
    return rule(**{k: v for k, v in bound.arguments.items() if k not in ("dtype", "rng")})


def size(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"argument {name!r} expected an int, got {value!r}")
    if value < 0:
        raise ValueError(f"argument {name!r} expected a non-negative int, got {value}")
    return int(value)


def sizes(**values):
    return [size(value, name) for name, value in values.items()]


def prefixed(prefix, pairs):
    for name, shape in pairs:
        yield f"{prefix}.{name}", shape


def recurrent(cell, D, H):
    """The params of the recurrent layer that ``models._recurrent.recurrent_layer`` builds."""
    yield from cell_param_layout(cell, D, H)


def layer_norm(D):
    return [("gamma", (D,)), ("beta", (D,))]


def _attention(D):
    return [(f"{kind}{part}", shape) for part in "qkvo"
            for kind, shape in (("W", (D, D)), ("b", (D,)))]


def _block(D, F, cross_attention):
    """A ``TransformerBlock``'s params."""
    yield from prefixed("self_attn_norm", layer_norm(D))
    yield from prefixed("self_attn", _attention(D))
    if cross_attention:
        yield from prefixed("cross_attn_norm", layer_norm(D))
        yield from prefixed("cross_attn", _attention(D))
    yield from prefixed("ff_norm", layer_norm(D))
    yield from [("ff1.W", (D, F)), ("ff1.b", (F,)), ("ff2.W", (F, D)), ("ff2.b", (D,))]


def transformer_blocks(num_layers, D, F, cross_attention):
    for i in range(num_layers):
        yield from prefixed(f"blocks.{i}", _block(D, F, cross_attention))


def no_params(**_):
    """The layout of an abstract base: no params of its own."""
    return iter(())


def part_of(whole: str):
    """The layout of a model built only inside ``whole``: its constructor takes
    the whole's random generator, which no saved config holds."""
    def refuse(**_):
        raise TypeError(f"built only as a part of a {whole}")
    refuse.whole = whole
    return refuse

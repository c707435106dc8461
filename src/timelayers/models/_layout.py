"""The params of each model, stated once, next to its constructor.

Each model class has a ``param_layout(**config)`` static method that yields
``(dotted name, shape, init)`` in ``state_dict`` order (tied params left out),
lazily. Its constructor draws the arrays from it in that order
(:func:`draw_params`; the order of the seeded draws is the layout's) and wires
its layers from them; a model made of parts that draw their own (Seq2seq's
encoder and decoder, a Transformer's ``TokenInput`` and blocks) lists their
layouts in the order it builds them. :func:`param_layout` gives the ``(name,
shape)`` pairs from a config alone, for :meth:`Model.param_shapes` and
:meth:`Model.load`: loading compares them with a file's tensors before it
builds the model, so a config whose sizes do not fit the weights is refused
without allocating the model it describes, and a config asking for
``num_layers=10000`` costs nothing either (the loader stops at the first param
the file lacks). ``tests/models/test_param_shapes.py`` builds every class and
checks its layout against the built model.

A layout covers exactly the class that states it, not its subclasses: a model
class defined outside the library has none, and :func:`param_layout` raises
``NotImplementedError`` for it.
"""

from __future__ import annotations

import inspect
import numbers

from ..layers._init import draw
from ._recurrent import cell_param_layout as recurrent  # a recurrent_layer's params

__all__ = ["param_layout", "draw_params", "size", "sizes", "prefixed", "recurrent", "no_params",
           "part_of"]


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
    layout = rule(**{k: v for k, v in bound.arguments.items() if k not in ("dtype", "rng")})
    return ((name, shape) for name, shape, _ in layout)


def draw_params(model, rng) -> dict:
    """Dotted name -> array of every param of ``model.param_layout`` for
    ``model.config``, drawn from ``rng`` in the layout's order: what a constructor
    wires its layers from."""
    config = vars(model.config)
    return draw(type(model).param_layout(**config), rng, config["dtype"])


def size(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"argument {name!r} expected an int, got {value!r}")
    if value < 0:
        raise ValueError(f"argument {name!r} expected a non-negative int, got {value}")
    return int(value)


def sizes(**values):
    return [size(value, name) for name, value in values.items()]


def prefixed(prefix, layout):
    for name, *rest in layout:
        yield (f"{prefix}.{name}", *rest)


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

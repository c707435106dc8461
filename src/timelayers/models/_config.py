"""The base of the models' configs: their sizes and ratios checked when built."""

from __future__ import annotations

import dataclasses

from .._checks import check_named

__all__ = ["ModelConfig"]

class ModelConfig:
    """Base of the models' config dataclasses (``RnnlmConfig`` ...): building one
    checks every field against its name's kind (:data:`timelayers._checks.NAME_KINDS`), so a model refuses a bad
    size or ratio before it allocates anything, with an
    :class:`~timelayers.errors.OptionError` naming the model and the argument."""

    def __post_init__(self):
        where = type(self).__name__.removesuffix("Config")
        check_named(where, "argument",
                    **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

"""The base of the models' configs: their sizes and ratios checked when built."""

from __future__ import annotations

import dataclasses

from ..options import check_value

__all__ = ["ModelConfig", "CONFIG_KINDS"]

_SIZES = ("vocab_size", "input_size", "output_size", "wordvec_size", "hidden_size",
          "window_size", "sample_size", "num_layers", "encoder_layers", "decoder_layers",
          "d_model", "num_heads", "ff_size", "max_len")
CONFIG_KINDS = {**{name: "positive int" for name in _SIZES},
                "dropout_ratio": "number in [0, 1)", "dropout": "number in [0, 1)"}
"""What a config field of each name must be (:data:`timelayers.options.KINDS`)."""


class ModelConfig:
    """Base of the models' config dataclasses (``RnnlmConfig`` ...): building one
    checks every field named in :data:`CONFIG_KINDS`, so a model refuses a bad
    size or ratio before it allocates anything, with an
    :class:`~timelayers.errors.OptionError` naming the model and the argument."""

    def __post_init__(self):
        where = type(self).__name__.removesuffix("Config")
        for field in dataclasses.fields(self):
            kind = CONFIG_KINDS.get(field.name)
            if kind is not None:
                check_value(kind, getattr(self, field.name), f"{where}: argument {field.name!r}")

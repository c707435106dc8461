"""Random draws (dropout masks, negative samples) that differ across ranks and
are reproducible from a seed and the number of ranks.

At the start of every epoch each rank re-seeds every random generator of its
model from ``SeedSequence(seed, spawn_key=(epoch, rank, k))`` (``k`` numbers the
model's generators). The streams of different ranks, epochs and generators are
then independent (NumPy's ``SeedSequence`` guarantees it for distinct spawn
keys), a run is the same whenever it is repeated with the same seed and rank
count, and a run resumed from a checkpoint draws what the uninterrupted run drew
(an epoch's draws depend on nothing before it). The trainer's own generator
(shuffling) is not touched: it must draw the same permutation on every rank.
"""

from __future__ import annotations

import numpy as np

from ..models.base import named_generators

__all__ = ["model_generators", "reseed_generators", "ReseedEachEpoch"]


def model_generators(model) -> list:
    """The distinct ``numpy.random.Generator`` objects of ``model``, in the order
    of :func:`timelayers.models.base.named_generators`."""
    return [generator for _, generator in named_generators(model)]


def reseed_generators(model, seed: int, rank: int, epoch: int) -> None:
    """Set every generator of ``model`` (in place: layers sharing one keep sharing
    it) to the stream of ``(seed, epoch, rank)``."""
    for k, generator in enumerate(model_generators(model)):
        sequence = np.random.SeedSequence(seed, spawn_key=(epoch, rank, k))
        generator.bit_generator.state = type(generator.bit_generator)(sequence).state


class ReseedEachEpoch:
    """Trainer callback: :func:`reseed_generators` at every ``"epoch_start"``."""

    def __init__(self, seed: int, rank: int):
        self.seed = seed
        self.rank = rank

    def __call__(self, trainer, event, info):
        if event == "epoch_start":
            reseed_generators(trainer.model, self.seed, self.rank, info["epoch"])

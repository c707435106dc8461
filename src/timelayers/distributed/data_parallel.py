"""Synchronous data-parallel training: :class:`DataParallel`, a model wrapper, and
:func:`parallelize`, which puts one into a trainer.

Every rank runs the same trainer on the same full batches (the trainer's
generator seeded alike on every rank, so every rank draws the same permutation;
:class:`RnnlmTrainer` has no permutation). The wrapper, in training mode, gives
the model the rank's rows of each batch and, after the model's backward,
averages the gradients over the ranks, so the trainer's clipping sees the
averaged gradient and its optimizer makes the same update on every rank. In
evaluation mode it passes everything through: each rank evaluates the whole
data, as one process would.

Rows are split by :func:`shard_bounds` (the first ``N % K`` ranks take one row
more when ``N`` is not divisible by ``K``), and each rank's gradient is weighted
by its share of the rows before the sum, so that the result is the one process's
mean over all ``N`` rows (exact for losses that are means over rows, as every
model's here is when no target is ignored).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..backend import get_array_module, to_cpu
from .collectives import collectives_for
from .flat_buffers import flat_buffers, flatten_grads
from .seeding import ReseedEachEpoch
from .world import DistributedError

__all__ = ["DataParallel", "parallelize", "shard_bounds"]


def shard_bounds(n: int, size: int, rank: int):
    """``(lo, hi)``: the rows of a batch of ``n`` that rank ``rank`` of ``size``
    takes; the first ``n % size`` ranks take ``n // size + 1`` rows, the others
    ``n // size``."""
    if n < size:
        raise DistributedError(f"a batch of {n} rows cannot be split across {size} processes: "
                               f"give batch_size >= {size}")
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class DataParallel:
    """A model replicated on every rank of ``comm``, trained on the rank's rows.

    Rank 0's parameters are broadcast to the other ranks when the wrapper is made.
    Everything that is not overridden here (``params``, ``grads``, ``save``,
    ``train``, ``eval``, ``rng``, ...) is the model's.

    Parameters
    ----------
    model : Model
    comm : mpi4py communicator
    collectives : optional
        What reduces the buffers (default: :func:`collectives_for` the params'
        array module: MPI for NumPy, NCCL or host staging for CuPy).

    Attributes
    ----------
    module : the wrapped model
    rank, size : int
    reduce_seconds : float
        All the time spent reducing gradients (with NCCL, asynchronous: mostly launching).
    """

    def __init__(self, model, comm, collectives=None):
        self.module = model
        if collectives is None:
            on_gpu = get_array_module(*model.params[:1]) is not np
            collectives = collectives_for(comm, on_gpu)
        self.collectives = collectives
        self.rank, self.size = collectives.rank, collectives.size
        self.reduce_seconds = 0.0
        self._grad_buffers, self._grad_ids = None, None
        self._weight = 1.0  # the share of the last training batch's rows this rank took
        self._batches_checked = False
        for buf in flat_buffers(model.params):
            collectives.broadcast(buf.gather(), root=0)
            buf.scatter()

    def __getattr__(self, name):
        if name == "module":  # not set yet: while unpickling or in __init__
            raise AttributeError(name)
        return getattr(self.module, name)

    @property
    def training(self) -> bool:
        return self.module.training

    # -- the layer protocol ------------------------------------------------------------
    def forward(self, *inputs):
        """Training mode: the model's loss on this rank's rows of ``inputs`` (each
        ``(N, ...)``), averaged over the ranks (every rank returns the loss of the
        whole batch). Evaluation mode: the model's ``forward(*inputs)``."""
        if not self.module.training:
            return self.module.forward(*inputs)
        n = len(inputs[0])
        if any(len(x) != n for x in inputs):
            raise ValueError(f"DataParallel.forward: the inputs have {[len(x) for x in inputs]} "
                             f"rows; they must share their first axis")
        if not self._batches_checked:
            self._check_same_batch(inputs)
        lo, hi = shard_bounds(n, self.size, self.rank)
        self._weight = (hi - lo) / n
        loss = self.module.forward(*(x[lo:hi] for x in inputs))
        xp = get_array_module(loss)
        total = xp.asarray(loss, dtype=np.float64).reshape(1) * self._weight  # (1,)
        self.collectives.allreduce_sum(total)
        return total[0]

    def backward(self, dout=1):
        """The model's backward on this rank's rows, then every gradient averaged
        over the ranks (weighted by their rows) in place. Returns the model's
        result (the gradient of this rank's inputs, if any)."""
        result = self.module.backward(dout)
        if self.module.training:
            self._reduce_grads()
        return result

    # -- the recurrent state -----------------------------------------------------------
    def get_state(self) -> dict:
        """Training mode: the state of the whole batch, each array ``(N, H)`` made of
        every rank's rows (a collective call). Evaluation mode: the model's."""
        local = self.module.get_state()
        if not self.module.training:
            return local
        xp = get_array_module(*self.module.params[:1])
        parts = self.collectives.allgather({k: to_cpu(v) for k, v in local.items()})
        keys = set(parts[0])
        if any(set(p) != keys for p in parts):
            raise DistributedError("DataParallel.get_state: the ranks hold different states "
                                   f"({[sorted(p) for p in parts]})")
        return {k: xp.asarray(np.concatenate([p[k] for p in parts])) for k in parts[0]}

    def set_state(self, state: dict) -> None:
        """Training mode: this rank's rows of ``state`` (the whole batch's, as
        :meth:`get_state` gives it). Evaluation mode: the model's."""
        if self.module.training and state:
            n = len(next(iter(state.values())))
            lo, hi = shard_bounds(n, self.size, self.rank)
            state = {k: v[lo:hi] for k, v in state.items()}
        self.module.set_state(state)

    # -- inside ------------------------------------------------------------------------
    def _reduce_grads(self) -> None:
        # the model's gradients live in the flat buffers (flatten_grads): weighting by
        # this rank's rows and the collective copy nothing
        start = time.perf_counter()
        ids = [id(g) for g in self.module.grads]
        if ids != self._grad_ids:  # the first call, or the model's arrays were replaced
            allocate = getattr(self.collectives, "allocate", None)
            self._grad_buffers = (flatten_grads(self.module, allocate)
                                  if callable(getattr(self.module, "replace_arrays", None))
                                  else flat_buffers(self.module.grads, allocate))
            self._grad_ids = [id(g) for g in self.module.grads]
        for buf in self._grad_buffers:
            data = buf.gather(scale=self._weight)
            self.collectives.allreduce_sum(data)
            buf.scatter()
        self.reduce_seconds += time.perf_counter() - start

    def _check_same_batch(self, inputs) -> None:
        """Refuse ranks that were given different batches (a trainer seeded
        differently on some rank): checked on the first training batch."""
        digest = hashlib.sha256()
        for x in inputs:
            x = np.ascontiguousarray(to_cpu(x))
            digest.update(repr((x.shape, x.dtype.str)).encode())
            digest.update(x.tobytes())
        digests = self.collectives.allgather(digest.hexdigest())
        different = [r for r, d in enumerate(digests) if d != digests[0]]
        if different:
            raise DistributedError(f"DataParallel: the first batch of rank(s) {different} is not "
                                   f"rank 0's; every rank must be given the same full batches "
                                   f"(seed the trainer's rng alike on every rank)")
        self._batches_checked = True


def parallelize(trainer, comm, seed: int) -> DataParallel:
    """Make ``trainer`` train data-parallel over ``comm``: its model becomes a
    :class:`DataParallel` (rank 0's weights broadcast) and a
    :class:`~timelayers.distributed.seeding.ReseedEachEpoch` callback makes the
    model's random draws differ across ranks, reproducibly from ``seed``.

    Call it on every rank, after the model is on its device and after a
    checkpoint is loaded, and give each rank a trainer whose ``rng`` is seeded
    alike. Every rank runs the trainer's callbacks and ``eval_fn``: let one rank
    write files (``fit(checkpoint=...)`` on rank 0 only, as
    :func:`timelayers.runs.recipes.train` does). Returns the wrapper."""
    if isinstance(trainer.model, DataParallel):
        raise DistributedError("parallelize: the trainer's model is already a DataParallel")
    wrapper = DataParallel(trainer.model, comm)
    trainer.model = wrapper
    trainer.callbacks.insert(0, ReseedEachEpoch(seed, wrapper.rank))
    return wrapper



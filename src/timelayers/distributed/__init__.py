"""Synchronous data-parallel training over MPI (the ``timelayers[mpi]`` extra).

Start ``K`` processes with ``mpiexec -n K``; each builds the same model and
trainer, and :func:`parallelize` makes the trainer data-parallel: every rank
holds a replica of the model (rank 0's initial weights broadcast), computes the
gradients of its share of each batch, and the ranks average the gradients
(``Allreduce`` in place over one flat buffer per dtype) before the trainer clips
them and makes the same optimizer step everywhere. ``timelayers train`` does all
of this by itself when started by ``mpiexec``.

The modules: :mod:`.world` (the MPI environment, :func:`mpi_world`),
:mod:`.data_parallel` (:class:`DataParallel`, :func:`parallelize`),
:mod:`.collectives` (MPI, shared memory, NCCL, host staging), :mod:`.seeding` (random draws per
rank); the flat buffers are :mod:`timelayers.distributed.flat_buffers`.
"""

from .collectives import (HostCollectives, NcclCollectives, SharedMemoryCollectives,
                          StagedCollectives, collectives_for)
from .data_parallel import DataParallel, parallelize, shard_bounds
from .seeding import ReseedEachEpoch, model_generators, reseed_generators
from .world import (DistributedError, ReportedByRank0, abort_on_error, check_same_on_every_rank,
                    local_rank_and_size, mpi_world, processes_in_environment, use_local_gpu)

__all__ = ["DataParallel", "parallelize", "shard_bounds", "mpi_world",
           "processes_in_environment", "use_local_gpu", "local_rank_and_size",
           "abort_on_error", "DistributedError", "ReportedByRank0", "check_same_on_every_rank",
           "HostCollectives", "SharedMemoryCollectives",
           "NcclCollectives",
           "StagedCollectives", "collectives_for", "ReseedEachEpoch", "model_generators",
           "reseed_generators"]

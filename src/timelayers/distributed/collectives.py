"""The three collective operations data-parallel training needs, over an mpi4py
communicator, for NumPy and for CuPy buffers.

- :class:`HostCollectives`: NumPy buffers through MPI (``Allreduce`` in place,
  ``Bcast``);
- :class:`SharedMemoryCollectives`: NumPy buffers of processes on one machine,
  allocated in memory they share and summed there (the host collectives'
  choice when every rank is on one machine);
- :class:`NcclCollectives`: CuPy buffers reduced on the GPUs through NCCL
  (``cupy.cuda.nccl``), the communicator set up with an id that MPI broadcasts;
  each process needs a GPU of its own;
- :class:`StagedCollectives`: CuPy buffers copied to the host, reduced through
  MPI and copied back (when NCCL is missing or GPUs are shared).

Every one also gathers small Python objects from all ranks (``allgather``,
through MPI's pickling). The CuPy classes run in the tests on the CuPy stand-in
(``tests/cupy_standin``, whose ``cupy.cuda.nccl`` has CuPy's signatures and
reduces through MPI on the host), not yet on a GPU.
"""

from __future__ import annotations

import numpy as np

from ..backend import import_cupy
from .world import import_mpi, local_rank_and_size

__all__ = ["HostCollectives", "SharedMemoryCollectives", "NcclCollectives", "StagedCollectives",
           "collectives_for"]


class HostCollectives:
    """Collectives over ``comm`` (an mpi4py communicator) for NumPy buffers."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def allreduce_sum(self, buf) -> None:
        """Replace the 1-D buffer ``buf`` on every rank by its sum over the ranks."""
        MPI = import_mpi()
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def broadcast(self, buf, root=0) -> None:
        """Replace the 1-D buffer ``buf`` on every rank by rank ``root``'s."""
        self.comm.Bcast(buf, root=root)

    def allgather(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        return self.comm.allgather(obj)


class SharedMemoryCollectives(HostCollectives):
    """Collectives for NumPy buffers of processes on one machine: a buffer made by
    :meth:`allocate` lies in an MPI shared-memory window, where every rank can
    read every other rank's. Its sum is made in two passes over memory: each
    rank adds the other ranks' copies of its own ``1/K`` of the elements into its
    copy, then copies the other ranks' finished parts (``Allreduce`` moves the
    data several times more). Every element is summed by one rank, in one order,
    so every rank ends with the same bits. Other buffers go through ``Allreduce``.
    """

    def __init__(self, comm):
        super().__init__(comm)
        self._windows = {}  # id(this rank's array) -> (window, every rank's array)

    def allocate(self, size: int, dtype) -> np.ndarray:
        """A 1-D array of ``size`` elements in shared memory (a collective call)."""
        MPI = import_mpi()
        dtype = np.dtype(dtype)
        window = MPI.Win.Allocate_shared(max(1, size) * dtype.itemsize, dtype.itemsize,
                                         comm=self.comm)
        arrays = [np.frombuffer(window.Shared_query(r)[0], dtype=dtype, count=size)
                  for r in range(self.size)]
        window.Lock_all(MPI.MODE_NOCHECK)
        self._windows[id(arrays[self.rank])] = (window, arrays)
        return arrays[self.rank]

    def allreduce_sum(self, buf) -> None:
        entry = self._windows.get(id(buf))
        if entry is None or entry[1][self.rank] is not buf:
            super().allreduce_sum(buf)
            return
        window, arrays = entry
        bounds = [buf.size * r // self.size for r in range(self.size + 1)]
        lo, hi = bounds[self.rank], bounds[self.rank + 1]
        self._sync(window)  # every rank's buffer is complete
        mine = buf[lo:hi]
        for r, other in enumerate(arrays):
            if r != self.rank:
                np.add(mine, other[lo:hi], out=mine)
        self._sync(window)  # every part is summed
        for r, other in enumerate(arrays):
            if r != self.rank:
                buf[bounds[r]:bounds[r + 1]] = other[bounds[r]:bounds[r + 1]]
        self._sync(window)  # nobody reads this rank's buffer any more

    def _sync(self, window) -> None:
        window.Sync()
        self.comm.Barrier()
        window.Sync()


class StagedCollectives(HostCollectives):
    """CuPy buffers through host copies and MPI."""

    def allreduce_sum(self, buf) -> None:
        host = buf.get()
        super().allreduce_sum(host)
        buf.set(host)

    def broadcast(self, buf, root=0) -> None:
        host = buf.get()
        super().broadcast(host, root)
        buf.set(host)


class NcclCollectives(HostCollectives):
    """CuPy buffers reduced on the GPUs through NCCL, on the current stream."""

    def __init__(self, comm):
        super().__init__(comm)
        nccl = _nccl()
        self._nccl = nccl
        uid = comm.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
        self._comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float16): nccl.NCCL_FLOAT16,
                       np.dtype(np.float32): nccl.NCCL_FLOAT32,
                       np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def _type(self, buf):
        try:
            return self._types[np.dtype(buf.dtype)]
        except KeyError:
            raise TypeError(f"NcclCollectives: no NCCL type for dtype {buf.dtype}") from None

    def allreduce_sum(self, buf) -> None:
        cupy = import_cupy()
        stream = cupy.cuda.get_current_stream().ptr
        self._comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._type(buf),
                             self._nccl.NCCL_SUM, stream)

    def broadcast(self, buf, root=0) -> None:
        cupy = import_cupy()
        stream = cupy.cuda.get_current_stream().ptr
        self._comm.bcast(buf.data.ptr, buf.size, self._type(buf), root, stream)


def collectives_for(comm, on_gpu: bool):
    """The collectives for buffers on the host (``on_gpu`` False) or on the GPU:
    NCCL when CuPy has it and every process on a machine has a GPU of its own
    (:func:`~timelayers.distributed.world.use_local_gpu` chose it), else staging.
    A collective call: every rank of ``comm`` makes it."""
    if not on_gpu:
        MPI = import_mpi()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        one_machine = node.Get_size() == comm.Get_size()
        node.Free()
        return SharedMemoryCollectives(comm) if one_machine else HostCollectives(comm)
    cupy = import_cupy()
    try:
        usable = getattr(_nccl(), "available", True)
    except ImportError:
        usable = False
    _, processes_here = local_rank_and_size(comm)
    usable = usable and processes_here <= cupy.cuda.runtime.getDeviceCount()
    if all(comm.allgather(usable)):  # NCCL's set-up is collective: all ranks or none
        return NcclCollectives(comm)
    return StagedCollectives(comm)


def _nccl():
    """CuPy's NCCL bindings (ImportError where CuPy was built without them)."""
    from cupy.cuda import nccl
    return nccl

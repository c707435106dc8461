"""``cupy.cuda.nccl`` of the stand-in: NCCL's communicator over MPI (mpi4py's
``COMM_WORLD``) on the arrays' host memory, with the signatures of CuPy's
(``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` and
``bcast(buff, count, datatype, root, stream)``, buffers as pointers), so that the
library's NCCL code runs where there is no GPU. It is taken only where the
stand-in reports a GPU for every process (``CUPY_STANDIN_DEVICES``)."""

import ctypes
import os

import numpy as np

available = True
NCCL_UNIQUE_ID_BYTES = 128
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
_DTYPES = {NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32, NCCL_FLOAT64: np.float64}


def get_unique_id():
    return tuple(int(b) - 128 for b in os.urandom(NCCL_UNIQUE_ID_BYTES))


def _array(pointer, count, datatype):
    """The ``count`` elements of ``datatype`` at ``pointer``, as a NumPy view."""
    dtype = np.dtype(_DTYPES[datatype])
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(pointer)
    return np.frombuffer(raw, dtype=dtype, count=count)


class NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI

        assert len(commId) == NCCL_UNIQUE_ID_BYTES
        self._mpi = MPI.COMM_WORLD
        if (ndev, rank) != (self._mpi.Get_size(), self._mpi.Get_rank()):
            raise ValueError(f"nccl stand-in: ndev {ndev} and rank {rank} are not MPI's "
                             f"{self._mpi.Get_size()} and {self._mpi.Get_rank()}")

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        from mpi4py import MPI

        if op != NCCL_SUM:
            raise NotImplementedError("nccl stand-in: only NCCL_SUM")
        recv = _array(recvbuf, count, datatype)
        if sendbuf == recvbuf:
            self._mpi.Allreduce(MPI.IN_PLACE, recv, op=MPI.SUM)
        else:
            self._mpi.Allreduce(_array(sendbuf, count, datatype), recv, op=MPI.SUM)

    def bcast(self, buff, count, datatype, root, stream):
        self._mpi.Bcast(_array(buff, count, datatype), root=root)

    def destroy(self):
        pass

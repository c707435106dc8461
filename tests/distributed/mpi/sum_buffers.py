"""Sum buffers across the ranks with the collectives the host chooses, against
MPI's Allreduce; rank 0 prints one JSON line. Run by tests/test_distributed.py
under ``mpiexec -n K``; not a test module itself."""

import json

import numpy as np
from mpi4py import MPI

from timelayers.distributed import collectives_for

comm = MPI.COMM_WORLD
collectives = collectives_for(comm, on_gpu=False)
rank = comm.Get_rank()
report = {"collectives": type(collectives).__name__, "equal": True, "same_bits_everywhere": True}
for size, dtype in ((10, np.float32), (7, np.float64), (1, np.float32), (1001, np.float32)):
    values = np.random.default_rng(rank).standard_normal(size).astype(dtype)
    buf = collectives.allocate(size, dtype)
    buf[...] = values
    collectives.allreduce_sum(buf)
    want = values.copy()
    comm.Allreduce(MPI.IN_PLACE, want, op=MPI.SUM)
    tol = 1e-6 if dtype == np.float32 else 1e-14  # another order of three additions
    report["equal"] &= bool(np.allclose(buf, want, rtol=tol, atol=tol))
    every = comm.allgather(buf.tobytes())
    report["same_bits_everywhere"] &= all(b == every[0] for b in every)
    buf[...] = rank  # the next step writes again: the sum must not read it late
    comm.Barrier()
plain = np.full(5, rank, dtype=np.float64)  # not from allocate: through Allreduce
collectives.allreduce_sum(plain)
report["plain"] = plain.tolist()
if rank == 0:
    print(json.dumps(report))

"""The gradient reduction alone: MPI's ``Allreduce`` against the shared-memory sum
of :class:`timelayers.distributed.collectives.SharedMemoryCollectives`, on one
buffer of BetterRnnlm's gradient size (13.3 million float32, 53 MB), in turn.

    mpiexec -n 2 python benchmarks/bench_collectives.py [--elements N] [--repeats R]

Rank 0 prints the median milliseconds of each (every call between two barriers).
"""

import argparse
import statistics
import time

import numpy as np
from mpi4py import MPI

from timelayers.distributed.collectives import HostCollectives, SharedMemoryCollectives


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=13_300_000)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    shared, host = SharedMemoryCollectives(comm), HostCollectives(comm)
    cases = {"MPI Allreduce": (host, np.ones(args.elements, dtype=np.float32)),
             "shared memory": (shared, shared.allocate(args.elements, np.float32))}
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (collectives, buf) in cases.items():
            buf[...] = 1
            comm.Barrier()
            start = time.perf_counter()
            collectives.allreduce_sum(buf)
            times[name].append(time.perf_counter() - start)
            assert buf[0] == comm.Get_size()
    if comm.Get_rank() == 0:
        mb = args.elements * 4 / 1e6
        print(f"{comm.Get_size()} processes, {mb:.0f} MB of float32, median of {args.repeats}:")
        for name, values in times.items():
            print(f"  {name}: {statistics.median(values) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

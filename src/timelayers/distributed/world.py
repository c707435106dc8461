"""The MPI world this process was started in: how many processes the launcher
started, the communicator joining them, and the GPU of each.

A process started by ``mpiexec -n K`` (MPICH, Intel MPI, Open MPI, MVAPICH) finds
``K`` in its environment before MPI is initialised; :func:`mpi_world` then imports
``mpi4py`` (the ``timelayers[mpi]`` extra) and returns ``MPI.COMM_WORLD``. A
process started alone, or by ``mpiexec -n 1``, runs without MPI.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager

from ..errors import TimelayersError

from ..backend import import_cupy

__all__ = ["DistributedError", "ReportedByRank0", "processes_in_environment", "mpi_world",
           "use_local_gpu", "local_rank_and_size", "abort_on_error", "check_same_on_every_rank"]

SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
"""Where the MPI launchers put the number of processes (MPICH and Intel MPI, Open
MPI, MVAPICH)."""

INSTALL_HINT = "pip install 'timelayers[mpi]' (mpi4py and MPICH)"


class DistributedError(TimelayersError):
    """Data-parallel training cannot start or continue (MPI missing or mismatched,
    ranks that disagree)."""


class ReportedByRank0(DistributedError):
    """What stops the other ranks when rank 0 reports an error they all found (the
    command prints nothing for it: one line, rank 0's, says what happened)."""


def check_same_on_every_rank(comm, values: dict) -> None:
    """Compare ``values`` (name -> a picklable value, e.g. the options and the data
    file's SHA-256) across the ranks of ``comm`` (a collective call). The first
    name whose values differ raises, on rank 0, :class:`DistributedError` naming
    it and the ranks of each value, and on the others :class:`ReportedByRank0`."""
    everyone = comm.allgather(values)
    names = list(dict.fromkeys(name for each in everyone for name in each))
    for name in names:
        ranks_of = {}
        for rank, each in enumerate(everyone):
            ranks_of.setdefault(repr(each.get(name)), []).append(rank)
        if len(ranks_of) > 1:
            where = "; ".join(f"{value} on rank{'s' if len(ranks) > 1 else ''} "
                              f"{', '.join(map(str, ranks))}" for value, ranks in ranks_of.items())
            message = (f"the {len(everyone)} processes were started with different {name}: "
                       f"{where}; start every process with the same command and data")
            raise (DistributedError if comm.Get_rank() == 0 else ReportedByRank0)(message)


def processes_in_environment() -> int:
    """The number of processes the MPI launcher started (1 when none did)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 1


def import_mpi():
    """mpi4py's ``MPI`` module: the library's one import of mpi4py, made on first
    use. Raises :class:`DistributedError` when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(f"mpi4py is not installed: {INSTALL_HINT}") from None
    return MPI


def mpi_world():
    """``MPI.COMM_WORLD`` when this process is one of several started by an MPI
    launcher, else None.

    Raises
    ------
    DistributedError
        When the launcher started several processes but mpi4py is not installed,
        or when mpi4py's MPI library is not the launcher's (each process would
        then be alone, and every one would write the run folder).
    """
    expected = processes_in_environment()
    if expected <= 1:
        return None
    try:
        MPI = import_mpi()
    except DistributedError:
        raise DistributedError(f"this process is one of {expected} started by mpiexec, but "
                               f"mpi4py is not installed: {INSTALL_HINT}") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != expected:
        raise DistributedError(f"mpiexec started {expected} processes, but mpi4py's MPI sees "
                               f"{comm.Get_size()}: the mpiexec on the PATH belongs to another "
                               f"MPI than mpi4py's (use the mpiexec installed beside it, e.g. "
                               f"the virtual environment's bin/mpiexec)")
    return comm


def use_local_gpu(comm) -> None:
    """Make the current CuPy device the one of this process's rank among the
    processes on its machine (local rank modulo the GPUs there). Call it before
    the model moves to the GPU."""
    cupy = import_cupy()
    rank, _ = local_rank_and_size(comm)
    cupy.cuda.Device(rank % cupy.cuda.runtime.getDeviceCount()).use()


def local_rank_and_size(comm):
    """This process's rank among the processes of ``comm`` on its machine, and
    their number (a collective call)."""
    local = comm.Split_type(import_mpi().COMM_TYPE_SHARED)

    try:
        return local.Get_rank(), local.Get_size()
    finally:
        local.Free()


def _print_traceback(exc) -> int:
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return 1


ABORT_GRACE = 0.5
"""Seconds between a failed rank's report and ``Abort``: the launcher forwards a
process's output through a pipe of its own, and what it has not forwarded when
``Abort`` kills the job is lost (a report cut after its first lines was seen)."""


@contextmanager
def abort_on_error(comm, report=_print_traceback):
    """Stop every rank of ``comm`` when the ``with`` block raises on this one.

    Without it, the other ranks would wait forever in their next collective
    call. The exception is handed to ``report(exc) -> exit status`` (default:
    print its traceback, status 1), then ``comm.Abort(status)`` ends every
    process of the job (``mpiexec`` exits with a non-zero status). With ``comm``
    None the exception is raised as usual.
    """
    try:
        yield
    except BaseException as exc:
        if comm is None:
            raise
        status = report(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)
        comm.Abort(status)

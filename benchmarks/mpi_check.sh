#!/usr/bin/env bash
# Data-parallel scaling at 1, 2, 4 and 8 processes on the GPU machine's 16 cores
# (issue 16), for a session that is lent one and has device time left after
# benchmarks/gpu_check.sh. That machine has mpi4py but no MPI library: the
# wheels of MPICH and of the mpi4py that works with it travel in the ignored
# folder .whl/. Everything it writes goes under $OUT (default mpi_out/).
#
# Before the call, on this machine (the device's Python is 3.12):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_5_x86_64 \
#       --platform manylinux1_x86_64 -d .whl mpich==5.0.2 mpi4py==4.1.2
#   run(command="bash benchmarks/mpi_check.sh", carry=[".whl"], timeout_s=420)
# (right after gpu_check.sh, before the machine goes back, to save a start).
# BENCH_SECONDS bounds the benchmark, REPEATS sets its rounds, BENCH_ARGS adds
# arguments (--quick to check the script itself).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-mpi_out}
BENCH_SECONDS=${BENCH_SECONDS:-360}
REPEATS=${REPEATS:-1}
PREFIX=/tmp/mpi
mkdir -p "$OUT"
PYVER=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTAG=cp${PYVER/./}
python3 -m pip install -q --no-index --no-deps --no-compile --ignore-installed --prefix "$PREFIX" \
    .whl/mpich-*.whl .whl/mpi4py-*-"$PYTAG"-*.whl > "$OUT/install.log" 2>&1 || {
    echo "no MPICH or mpi4py wheel for $PYTAG in .whl/ (see this script's header)"; exit 1; }
# where the prefix's scheme put them (Debian's Python adds local/ and dist-packages)
BIN=$(dirname "$(find "$PREFIX" -name mpiexec -type f | head -n 1)")
LIB=$(dirname "$(find "$PREFIX" -name 'libmpi.so.12*' | head -n 1)")
SITE=$(dirname "$(find "$PREFIX" -type d -name mpi4py | head -n 1)")
export PATH=$BIN:$PATH
export LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation -e . >> "$OUT/install.log" 2>&1
{ nproc; lscpu | grep -m1 "Model name"; } | tee "$OUT/machine.txt"
mpiexec -n 2 python3 -c "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.Get_rank(), 'of', c.Get_size(), MPI.Get_library_version().splitlines()[0])" \
    2>&1 | tee -a "$OUT/machine.txt"

echo "== bench_distributed, 1 2 4 8 processes ($(date -u +%T))"
timeout "$BENCH_SECONDS" python3 benchmarks/bench_distributed.py --ranks 1,2,4,8 \
    --repeats "$REPEATS" --ceiling ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_distributed.log"
echo "== done ($(date -u +%T))"

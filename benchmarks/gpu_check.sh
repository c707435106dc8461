#!/usr/bin/env bash
# The GPU issue's whole check in one call on a GPU machine (issue 14), for a
# session that is lent one: the CuPy test suite, the five-case benchmark with
# its profile, then the book's best model (BetterRnnlm, 40 epochs) for what
# time is left. Everything it writes goes under $OUT (default gpu_out/).
#
# Before the call, on this machine: copy the Penn Treebank into the ignored
# folder data/ptb/ (cp ../shared/datasets/ptb/ptb.*.txt data/ptb/) and carry it:
#   run(command="bash benchmarks/gpu_check.sh", carry=["data"], timeout_s=600)
# BETTER_SECONDS bounds the BetterRnnlm run (its run folder keeps a checkpoint
# after every epoch: continue it with --resume in a later call).
# With device time left, benchmarks/mpi_check.sh measures data parallel at 1-8
# processes on the machine's 16 cores (issue 16; see its header).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
BETTER_SECONDS=${BETTER_SECONDS:-300}
mkdir -p "$OUT"
export TIMELAYERS_DATA=$PWD/data/ptb
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)" | tee -a "$OUT/device.txt"

echo "== tests on CuPy ($(date -u +%T))"
TIMELAYERS_TEST_CUPY=1 timeout 240 python3 -m pytest -q -n 12 -p no:cacheprovider tests \
    > "$OUT/tests.log" 2>&1
tail -n 25 "$OUT/tests.log"

echo "== bench_gpu ($(date -u +%T))"
timeout 180 python3 benchmarks/bench_gpu.py --profile --json "$OUT/bench_gpu.json" \
    2>&1 | tee "$OUT/bench_gpu.log"

echo "== BetterRnnlm, the book's recipe, for ${BETTER_SECONDS} s ($(date -u +%T))"
timeout "$BETTER_SECONDS" python3 -m timelayers train better-rnnlm --device gpu \
    --out "$OUT/better-rnnlm" --force > "$OUT/better_rnnlm.log" 2>&1
tail -n 15 "$OUT/better_rnnlm.log"
echo "== done ($(date -u +%T))"

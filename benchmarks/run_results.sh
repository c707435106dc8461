#!/usr/bin/env bash
# Run every results script in full, one after the other (they take tens of minutes
# in all on 2 cores; transformer_lm alone takes its --minutes budget, 60 by default, and
# BetterRnnlm's saved epoch is its reference; word2vec_ptb, CBOW and skip-gram 10
# epochs each, about an hour), logging to docs/results/logs/.
# Usage: benchmarks/run_results.sh [NAME ...]
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p docs/results/logs
names=${*:-"attention_dates seq2seq_addition rnnlm_ptb gru_ptb word2vec_ptb ppmi better_rnnlm distributed_ptb transformer_seq2seq transformer_lm"}
for name in $names; do
  case $name in
    ppmi) script=benchmarks/bench_ppmi.py ;;
    *) script=benchmarks/results_$name.py ;;
  esac
  echo "== $name: $script ($(date -u +%H:%M:%S))"
  /usr/bin/time -v "$PY" "$script" > "docs/results/logs/$name.log" 2>&1
  tail -n 3 "docs/results/logs/$name.log"
done

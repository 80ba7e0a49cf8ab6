#!/usr/bin/env bash
# Runs every benchmark of the suite once, each waiting (up to MAX_WAIT_S) for a 1-minute load
# average below MAX_LOAD first, and leaves the JSON files in bench/results/. About 40 minutes
# on 2 cores. Arguments go to every script: only the flags they all take (--quick, --steps,
# --batch_size).
#
#   bash bench/run_all.sh                 # full runs
#   bash bench/run_all.sh --quick         # sanity runs, a few minutes each
#   JAX_PYTHON=.venv/bin/python bash bench/run_all.sh   # + Keras-on-JAX in vs_torch
#
# vs_torch.py needs PyTorch (a benchmark-only extra) and jax_step.py JAX: each is skipped, with a
# line saying so, where its framework is not installed. bench/gpu.py is for a GPU machine and
# bench/experiments/ holds prototypes: neither runs here.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=${PYTHON:-.venv/bin/python}
MAX_LOAD=${MAX_LOAD:-1.3}
MAX_WAIT_S=${MAX_WAIT_S:-600}
WAIT=(--max_load="$MAX_LOAD" --max_wait_s="$MAX_WAIT_S")
EXTRA=("$@")
JAX=()
if [[ -n "${JAX_PYTHON:-}" ]]; then JAX=(--jax_python="$JAX_PYTHON"); fi
PATCHES=--patches=keras_bn+sliced_shortcut

has() { "$PY" -c "import $1" 2>/dev/null; }

"$PY" bench/step_cost.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/step_cost.py "$PATCHES" "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/vs_keras.py "${WAIT[@]}" "${EXTRA[@]}"
if has torch; then
  "$PY" bench/vs_torch.py "$PATCHES" "${JAX[@]}" "${WAIT[@]}" "${EXTRA[@]}"
else
  echo "[bench] skipping vs_torch.py: PyTorch is not installed in $PY (see docs/benchmarks.md)"
fi
if has jax; then
  "$PY" bench/jax_step.py "${WAIT[@]}" "${EXTRA[@]}"
else
  echo "[bench] skipping jax_step.py: JAX is not installed in $PY"
fi
"$PY" bench/determinism.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/input_pipeline.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/memory.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/profile_step.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/profile_step.py "$PATCHES" "${WAIT[@]}" "${EXTRA[@]}"

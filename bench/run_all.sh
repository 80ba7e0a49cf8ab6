#!/usr/bin/env bash
# Runs every benchmark once, each waiting (up to MAX_WAIT_S) for a 1-minute load average below
# MAX_LOAD first, and leaves the JSON files in bench/results/. About 20-25 minutes on 2 cores.
#
#   bash bench/run_all.sh                 # full runs
#   bash bench/run_all.sh --quick         # sanity runs, a few minutes
#   JAX_PYTHON=/tmp/jaxvenv/bin/python bash bench/run_all.sh   # + Keras-on-JAX in vs_torch
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

"$PY" bench/step_cost.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/step_cost.py --patches=fused_bn+pool_shortcut "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/vs_keras.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/vs_torch.py --patches=fused_bn+pool_shortcut "${JAX[@]}" "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/input_pipeline.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/memory.py "${WAIT[@]}" "${EXTRA[@]}"
"$PY" bench/profile_step.py "${EXTRA[@]}"
"$PY" bench/profile_step.py --patches=fused_bn+pool_shortcut "${EXTRA[@]}"

#!/usr/bin/env bash
# The figures behind the speed targets of docs/benchmarks.md: ROUNDS rounds (default 3), each
# running vs_torch (with the previous layers as a patched variant), step_cost, vs_keras and
# profile_step in sequence, then input_pipeline and memory once. Every script waits (up to
# MAX_WAIT_S) for a 1-minute load average below MAX_LOAD and records the load at its start and
# end; the outputs are bench/results/<script>_run<N>.json. About 8 minutes per round on 2 cores.
#
#   bash bench/run_targets.sh            # 3 rounds + pipeline + memory, about 30 minutes
#   ROUNDS=1 bash bench/run_targets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=${PYTHON:-.venv/bin/python}
ROUNDS=${ROUNDS:-3}
WAIT=(--max_load="${MAX_LOAD:-1.3}" --max_wait_s="${MAX_WAIT_S:-300}")
for round in $(seq 1 "$ROUNDS"); do
  echo "[bench] round $round: $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" bench/vs_torch.py --patches=keras_bn+sliced_shortcut "${WAIT[@]}" --output="vs_torch_run$round"
  "$PY" bench/step_cost.py "${WAIT[@]}" --output="step_cost_run$round"
  "$PY" bench/vs_keras.py "${WAIT[@]}" --output="vs_keras_run$round"
  "$PY" bench/profile_step.py "${WAIT[@]}" --output="profile_run$round"
done
"$PY" bench/input_pipeline.py "${WAIT[@]}"
"$PY" bench/memory.py "${WAIT[@]}"

# Sourced by the examples' run.sh: the steps every example takes after building its model.
#   archive ARGS...           model-archiver with ARGS, into $OUT/model_store
#   predict MODEL INPUTS...   model-server predict on the inputs, answers checked against $OUT/expected.json
#   serve MODEL INPUTS...     model-server start, one HTTP request per input, answers checked; then a bad input
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLES="$ROOT/examples"
# One choice of Python for building, predict and the server: MAR_PYTHON (the torch tests use /usr/bin/python3).
export MAR_PYTHON="${MAR_PYTHON:-python3}"
OUT="${OUT:-build}"
PORT="${PORT:-8380}"

archive() {
  node "$ROOT/bin/model-archiver.js" "$@" --export-path "$OUT/model_store" --force
}

predict() {
  local model=$1
  shift
  local args=() names=()
  for input in "$@"; do
    args+=(--input "$OUT/inputs/$input")
    names+=("$input")
  done
  node "$ROOT/bin/model-server.js" predict "$OUT/model_store/$model.mar" --json --quiet "${args[@]}" >"$OUT/predict.json"
  "$MAR_PYTHON" "$EXAMPLES/check_answers.py" "$OUT/expected.json" "$OUT/predict.json" "${names[@]}"
}

serve() {
  local model=$1 bad=$2
  shift 2
  # --config /dev/null: no ./config.properties; the settings come from the environment (MMS_<KEY>). One worker,
  # as predict: it gets all the cores, as the direct call in build_model.py did (see _build.match_worker_threads).
  MMS_INFERENCE_ADDRESS="http://127.0.0.1:$PORT" MMS_MANAGEMENT_ADDRESS="http://127.0.0.1:$((PORT + 1))" MMS_DEFAULT_WORKERS_PER_MODEL=1 \
    node "$ROOT/bin/model-server.js" start --config /dev/null --model-store "$OUT/model_store" --models "$model=$model.mar" \
    >"$OUT/server.log" 2>&1 &
  local server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  until curl -sf "http://127.0.0.1:$PORT/ping" | grep -q Healthy; do
    kill -0 $server 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
    sleep 0.5
  done
  mkdir -p "$OUT/answers"
  for input in "$@"; do
    curl -sf "http://127.0.0.1:$PORT/predictions/$model" -T "$OUT/inputs/$input" >"$OUT/answers/$input"
  done
  "$MAR_PYTHON" "$EXAMPLES/check_answers.py" "$OUT/expected.json" --answers "$OUT/answers"
  echo "a bad input gets a 4xx JSON error, and the worker keeps serving:"
  curl -s -w ' (HTTP %{http_code})\n' "http://127.0.0.1:$PORT/predictions/$model" -T "$OUT/inputs/$bad"
  curl -s -o /dev/null -w "then $1: HTTP %{http_code}\n" "http://127.0.0.1:$PORT/predictions/$model" -T "$OUT/inputs/$1"
  kill $server
  wait $server || true
  trap - EXIT
}

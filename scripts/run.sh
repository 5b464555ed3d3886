#!/usr/bin/env bash
# The main job: set up, serve the dashboard on http://127.0.0.1:8501 (after a warm start of about 10 s), and build the artifacts
# with the default config meanwhile (a cache hit when nothing changed). The Overview page shows the
# training's progress and the pages fill as models finish. Ctrl+C stops both.
# Usage: bash scripts/run.sh [train flags...]   e.g. --config full, --data /path/to/faces
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PORT="${PORT:-8501}"

.venv/bin/python -m dashboard.serve --server.address 127.0.0.1 --server.port "$PORT" \
  --server.headless true --browser.gatherUsageStats false &
SERVER=$!
TRAIN=""
stop() {
  trap - INT TERM
  [[ -n "$TRAIN" ]] && kill "$TRAIN" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  exit 130
}
trap stop INT TERM
echo "==> dashboard: http://127.0.0.1:${PORT}  (answers in about 10 s; training below; Ctrl+C stops both)"

.venv/bin/python -m pipeline train "$@" &
TRAIN=$!
if wait "$TRAIN"; then
  echo "==> training done; dashboard: http://127.0.0.1:${PORT}  (Ctrl+C stops it)"
else
  code=$?
  echo "==> training stopped (exit $code); the dashboard still shows the finished models:" \
       "http://127.0.0.1:${PORT}  (Ctrl+C stops it)" >&2
fi
TRAIN=""
wait "$SERVER"

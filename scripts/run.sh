#!/usr/bin/env bash
# The main job: set up, build the artifacts with the default config (a cache hit when nothing
# changed), then serve the dashboard on http://127.0.0.1:8501.
# Usage: bash scripts/run.sh [train flags...]   e.g. --config full, --data /path/to/faces
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pipeline train "$@"
echo "==> dashboard: http://127.0.0.1:${PORT:-8501}  (Ctrl+C stops it)"
exec .venv/bin/python -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false

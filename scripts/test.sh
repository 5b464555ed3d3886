#!/usr/bin/env bash
# Set up (venv, pinned requirements, test tools, Debian chromium for the browser test) and run
# the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_REQUIREMENTS=requirements-dev.txt bash scripts/setup.sh
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
      fonts-noto-color-emoji > /dev/null) || echo "could not install chromium: the browser test will skip"
  elif command -v sudo > /dev/null; then
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
      fonts-noto-color-emoji > /dev/null) || echo "could not install chromium: the browser test will skip"
  fi
fi
exec .venv/bin/python -m pytest "$@"

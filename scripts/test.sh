#!/usr/bin/env bash
# Set up (venv, pinned requirements, test tools, Debian chromium for the browser test) and run
# the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_REQUIREMENTS=requirements-dev.txt bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
      fonts-noto-color-emoji > /dev/null) || echo "could not install chromium: the browser test will skip"
  elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    (sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      chromium-driver fonts-noto-color-emoji > /dev/null) || echo "could not install chromium: the browser test will skip"
  else
    echo "Debian chromium is not installed and this user cannot install it (needs root or sudo):"
    echo "  apt-get install chromium chromium-driver   -- until then the browser tests skip"
  fi
fi
echo "==> import layers (pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"

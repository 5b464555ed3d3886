#!/usr/bin/env bash
# Create .venv and install the pinned requirements (idempotent: a second run only checks).
# Also puts the offline ImageNet MobileNet weights from ../shared/keras into Keras' cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements-$(cat requirements.txt ${EXTRA_REQUIREMENTS:-} | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing requirements (first time: about 2 minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt ${EXTRA_REQUIREMENTS:+-r $EXTRA_REQUIREMENTS}
  rm -f .venv/.requirements-*
  touch "$stamp"
fi
keras_models="${KERAS_HOME:-$HOME/.keras}/models"
if compgen -G "../shared/keras/models/*.h5" > /dev/null; then
  mkdir -p "$keras_models"
  for f in ../shared/keras/models/*.h5; do
    [ -f "$keras_models/$(basename "$f")" ] || cp "$f" "$keras_models/"
  done
fi

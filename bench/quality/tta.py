"""Test-time augmentation on validation: a run's model scored on each image and on its mirror image,
the two P(fake) averaged in log-odds. ``python bench/quality/tta.py artifacts/<run-id> MODEL``.
Validation only; writes nothing but the log line."""
from __future__ import annotations

import argparse

import numpy as np

from common import load_run, val_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("model")
    args = ap.parse_args()
    from pathlib import Path

    from pipeline import artifacts, store
    from pipeline.detectors import keras_model
    from pipeline.models import load_model

    folder = store.model_dir(Path(args.run_dir), args.model)
    size = int(artifacts.read_json(folder / "metrics.json")["image_size"])
    manifest, x = load_run(args.run_dir, size)
    model = load_model(folder / "model.keras")
    va = np.flatnonzero((manifest["split"] == "val").to_numpy())
    plain = keras_model.predict_arrays(model, x[va])
    mirror = keras_model.predict_arrays(model, x[va][:, :, ::-1])
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))  # noqa: E731
    scores = np.full(len(manifest), 0.5)
    for name, p in (("plain", plain), ("mirror", mirror), ("flip-TTA", 1 / (1 + np.exp(-(logit(plain) + logit(mirror)) / 2)))):
        scores[va] = p
        val_report(f"TTA {args.model} {name}", manifest, scores)


if __name__ == "__main__":
    main()

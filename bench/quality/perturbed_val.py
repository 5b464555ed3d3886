"""Validation AUC per dataset of saved model variants under the robustness sweep's perturbations.

``python bench/quality/perturbed_val.py artifacts/<run-id> NAME=bench/out/quality/NAME.keras [...]``
scores the run's validation images (decoded at the model's size) clean and under JPEG 75,
downscaling by 0.5 and Gaussian blur sigma 1 (the functions of pipeline.experiments.robustness),
and prints one val_report line per (model, perturbation). Validation only."""
from __future__ import annotations

import argparse

import numpy as np

from common import load_run, val_report

LEVELS = [("none", 0), ("jpeg", 75), ("scale", 0.5), ("blur", 1.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("models", nargs="+", help="NAME=path to a .keras file")
    args = ap.parse_args()
    from pipeline.experiments.robustness import perturb
    from pipeline.models import load_model

    for item in args.models:
        name, path = item.split("=", 1)
        model = load_model(path)
        size = int(model.inputs[0].shape[1])
        manifest, x = load_run(args.run_dir, size)
        val = np.flatnonzero((manifest["split"] == "val").to_numpy())
        for perturbation, level in LEVELS:
            scores = np.full(len(manifest), 0.5, dtype="float32")
            for i in range(0, len(val), 64):
                rows = val[i:i + 64]
                batch = np.stack([perturb(x[r], perturbation, level) for r in rows]).astype("float32")
                scores[rows] = np.asarray(model.predict_on_batch(batch)).ravel()
            val_report(f"{name} {perturbation} {level}", manifest, scores)


if __name__ == "__main__":
    main()

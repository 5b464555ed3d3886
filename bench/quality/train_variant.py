"""Train one model variant on a run's train split and report validation AUC per dataset.

``python bench/quality/train_variant.py artifacts/<run-id> NAME '<json>'`` where the JSON has
``spec`` (pipeline.config.ModelSpec fields), ``aug`` (pipeline.config.Augmentation fields; default
flips only) and optionally ``max_train`` and ``datasets`` (train and early-stop on these datasets
only: a specialist; validation AUC is still reported on every dataset). The model and its validation scores are written to
bench/out/quality/NAME.*. Validation only; the test split is never scored here."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import ROOT, load_run, val_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("name")
    ap.add_argument("settings", help="JSON: {spec: {...}, aug: {...}, max_train: N}")
    args = ap.parse_args()
    from pipeline.config import Augmentation, ModelSpec
    from pipeline.training import group_weights, train_model

    cfg = json.loads(args.settings)
    spec = ModelSpec(**cfg["spec"])
    aug = Augmentation(**{**dict(flip=True, shift=0, zoom=0, brightness=0, jpeg_quality=None), **cfg.get("aug", {})})
    manifest, x = load_run(args.run_dir, spec.image_size)
    split, y = manifest["split"].to_numpy(), manifest["y"].to_numpy().astype("float32")
    keep = manifest["dataset"].isin(cfg["datasets"]).to_numpy() if cfg.get("datasets") else True
    tr, va = np.flatnonzero((split == "train") & keep), np.flatnonzero((split == "val") & keep)
    va_all = np.flatnonzero(split == "val")
    if cfg.get("max_train"):
        tr = np.sort(np.random.default_rng(0).permutation(tr)[:cfg["max_train"]])
    weights = None
    if spec.balance_datasets:
        weights = group_weights(manifest["dataset"].astype(str).to_numpy()[tr] + "|" + y[tr].astype(str))
    start = time.perf_counter()
    result = train_model(spec, x[tr], y[tr], x[va], y[va], augmentation=aug, seed=cfg.get("seed", 42),
                         sample_weight=weights)
    seconds = time.perf_counter() - start
    scores = np.full(len(manifest), 0.5, dtype="float32")
    for i in range(0, len(va_all), 64):
        scores[va_all[i:i + 64]] = result.model.predict_on_batch(x[va_all[i:i + 64]].astype("float32")).ravel()
    print(result.history.to_string())
    out = ROOT / "bench" / "out" / "quality"
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / f"{args.name}.keras")
    np.save(out / f"{args.name}_val_scores.npy", scores)
    val_report(args.name, manifest, scores, f"train_s={seconds:.0f} n_train={len(tr)} settings={json.dumps(cfg)}")


if __name__ == "__main__":
    main()

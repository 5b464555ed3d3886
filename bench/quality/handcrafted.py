"""Probe: do hand-made noise-residual features separate real from fake, per kind of fake?

Residual co-occurrences (SPAM-style: first-order pixel differences, truncated to [-T, T], joint
histogram of neighbouring residual pairs) on the grey image and on each colour channel (RGB and
the YCbCr chroma planes, after Li et al., "Identification of deep network generated images using
disparities in color components"), and the azimuthally averaged log power spectrum. A logistic
regression / RBF SVM is fitted on one dataset's train split and scored on that dataset's
validation split. ``python bench/quality/handcrafted.py artifacts/<run-id>``."""
from __future__ import annotations

import argparse

import numpy as np

from common import load_run

T = 2  # residual truncation: (2T+1)^2 = 25 bins per co-occurrence


def cooccurrence(plane: np.ndarray) -> np.ndarray:
    """Joint histograms of horizontally / vertically adjacent truncated first-order residuals."""
    p = plane.astype(np.float32)
    out = []
    for axis in (1, 2):
        d = np.diff(p, axis=axis)
        q = np.clip(np.rint(d), -T, T).astype(np.int64) + T
        # each residual with its neighbour along the same direction
        a, b = (q[:, :, :-1], q[:, :, 1:]) if axis == 2 else (q[:, :-1, :], q[:, 1:, :])
        idx = (a * (2 * T + 1) + b).reshape(len(p), -1)
        hist = np.stack([np.bincount(row, minlength=(2 * T + 1) ** 2) for row in idx]).astype(np.float32)
        out.append(hist / hist.sum(axis=1, keepdims=True))
    return np.hstack(out)


def spectrum(grey: np.ndarray, bins: int = 64) -> np.ndarray:
    f = np.fft.fftshift(np.fft.fft2(grey - grey.mean(axis=(1, 2), keepdims=True)), axes=(1, 2))
    power = np.log1p(np.abs(f) ** 2)
    h, w = grey.shape[1:]
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h / 2, xx - w / 2)
    which = np.minimum((r / r.max() * bins).astype(int), bins - 1).ravel()
    counts = np.bincount(which, minlength=bins)
    return np.stack([np.bincount(which, weights=p.ravel(), minlength=bins) / counts for p in power])


def features(x: np.ndarray) -> dict[str, np.ndarray]:
    x = x.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    out = {}
    out["grey"] = np.vstack([cooccurrence(y[i:i + 200]) for i in range(0, len(x), 200)])
    out["rgb"] = np.hstack([np.vstack([cooccurrence(c[i:i + 200]) for i in range(0, len(x), 200)])
                            for c in (r, g, b)])
    out["chroma"] = np.hstack([np.vstack([cooccurrence(c[i:i + 200]) for i in range(0, len(x), 200)])
                               for c in (cb, cr)])
    out["spectrum"] = np.vstack([spectrum(y[i:i + 200]) for i in range(0, len(x), 200)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    manifest, x = load_run(args.run_dir, 256)
    feats = features(x)
    feats["all"] = np.hstack(list(feats.values()))
    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy()
    for ds in sorted(manifest["dataset"].unique()):
        ds_mask = (manifest["dataset"] == ds).to_numpy()
        tr, va = ds_mask & (split == "train"), ds_mask & (split == "val")
        for name, f in feats.items():
            for cname, clf in (("lr", make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))),
                               ("svm", make_pipeline(StandardScaler(), SVC(C=3.0)))):
                clf.fit(f[tr], y[tr])
                auc = roc_auc_score(y[va], clf.decision_function(f[va]))
                print(f"{ds:13s} {name:9s} {cname:4s} dim={f.shape[1]:4d} val AUC={auc:.3f}", flush=True)


if __name__ == "__main__":
    main()

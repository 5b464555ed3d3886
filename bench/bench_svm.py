"""SVM refit times for the SVM lab: ``python bench/bench_svm.py`` (writes the "svm" section of BENCHMARKS.md).

What the lab refits on every control change: an SVC on cached, standardised PCA scores (only the
SVC; the PCA is stored by the pipeline). Data: the PCA scores of a real run's model when one exists
(``--run``/``--model``, default: the latest run's first model with embeddings), else synthetic
50-D scores with overlapping classes. Reports the median of 3 fits and the test AUC.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table, write_section  # noqa: E402
from pipeline import results, run_embeddings, svm  # noqa: E402


def synthetic(n: int, dims: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA-like scores: decreasing variance per component, class signal in the first ten, overlapping."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, dims)) * np.linspace(3, 0.3, dims)
    X[:, :10] += (y[:, None] * 2 - 1) * np.linspace(1.0, 0.2, 10)
    return X.astype(np.float32), y


def real_scores(run_ref: str | None, model: str | None):
    try:
        run = results.load_run(run_ref)
    except results.RunNotFound:
        return None
    models = [m for m in run_embeddings.embedding_models(run) if model in (None, m)]
    if not models:
        return None
    scores = run_embeddings.pca(run, models[0])["scores"].astype(np.float32)
    man = run.manifest()
    return f"{run.run_id} / {models[0]}", scores, man["y"].to_numpy().astype(int), man["split"].to_numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    real = real_scores(args.run, args.model)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        if real is not None:
            source, scores, y, split = real
            rng = np.random.default_rng(0)
            tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
            tr = np.sort(rng.choice(tr, min(n, len(tr)), replace=False))
            Xtr, ytr, Xte, yte = scores[tr], y[tr], scores[te], y[te]
        else:
            source = "synthetic 50-D scores"
            Xtr, ytr = synthetic(n, seed=1)
            Xte, yte = synthetic(2000, seed=2)
        for kernel in svm.KERNELS:
            times, out = [], None
            for _ in range(args.repeats):
                out = svm.fit_and_score(Xtr, ytr, Xte, yte, kernel=kernel, C=1.0, degree=3, gamma="scale")
                times.append(out["fit_seconds"])
            surf = svm.decision_surface(Xtr, ytr, resolution=80, kernel=kernel)
            rows.append({"kernel": kernel, "n": len(ytr), "dims": Xtr.shape[1],
                         "fit seconds (p50)": statistics.median(times), "AUC": out["roc_auc"],
                         "support vectors": out["n_support"] if out["n_support"] is not None else "-",
                         "2-D surface (fit on <=1,500 + 80x80 grid, s)": surf["fit_seconds"]})
            print(rows[-1], flush=True)
    body = (f"Data: {source}. `pipeline.svm.fit_and_score` with C=1, degree 3, gamma=scale (what one control "
            "change in the SVM lab costs; the PCA scores are cached, only the SVC is fitted). The linear kernel "
            "uses LinearSVC (liblinear): libsvm's linear kernel took about 2 s on 5,000 x 50 (STACK.md).\n\n"
            + markdown_table(rows))
    write_section("svm", "SVM lab refit (PCA-SVM)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

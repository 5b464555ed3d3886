"""Shared helpers of the quality experiments (EXPERIMENTS.md): the split of an existing run, its
cached decoded images, and per-dataset validation AUC. Validation only: these scripts never score
the test split (a finished configuration is scored once, by `python -m pipeline train`)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline import artifacts, data  # noqa: E402

LOG = ROOT / "bench" / "out" / "quality_log.txt"


def load_run(run_dir: str | Path, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The run's manifest (with its split) and the images at ``size`` px (decoded once, cached)."""
    run_dir = Path(run_dir)
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    cfg = artifacts.read_json(run_dir / "run.json")["config"]
    cache = artifacts.cache_dir(cfg.get("artifacts_dir") or str(run_dir.parent))
    return manifest, data.load_arrays(manifest, size, cache)


def val_report(name: str, manifest: pd.DataFrame, scores: np.ndarray, note: str = "") -> dict:
    """Validation ROC-AUC per dataset and pooled; printed and appended to bench/out/quality_log.txt."""
    from sklearn.metrics import roc_auc_score

    val = (manifest["split"] == "val").to_numpy()
    out = {}
    for ds in sorted(manifest["dataset"].unique()) + ["pooled"]:
        m = val & ((manifest["dataset"] == ds).to_numpy() if ds != "pooled" else True)
        out[ds] = float(roc_auc_score(manifest["y"].to_numpy()[m], scores[m]))
    line = f"{name:44s} " + " ".join(f"{k}={v:.3f}" for k, v in out.items()) + (f"  {note}" if note else "")
    print(line, flush=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a") as fh:
        fh.write(line + "\n")
    return out

"""What training achieved, one row per model: the table the Training page opens with.

Read from each model's ``history.csv`` (one row per epoch: ``epoch, phase, loss, accuracy, auc,
val_loss, val_accuracy, val_auc, ...``) and the run's comparison rows (``summary.csv``, scope ``all``:
the pooled test split), nothing recomputed.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

COLUMNS = ["model", "epochs", "best validation AUC", "at epoch", "test ROC-AUC", "training time (s)"]


def training_table(histories: Mapping[str, pd.DataFrame], summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model of ``histories`` (in their order): ``epochs`` (rows of its history, all phases),
    ``best validation AUC`` (max of ``val_auc``; NaN without that column) and ``at epoch`` (1-based
    position of that row in the history, counting every phase), ``test ROC-AUC`` (pooled test split, from
    ``summary`` scope ``all``; NaN when absent) and ``training time (s)`` (``train_seconds`` of the same
    row). Sorted by test ROC-AUC, best first (models without one last)."""
    pooled = pd.DataFrame()
    if summary is not None and len(summary) and "scope" in summary.columns:
        pooled = summary[summary["scope"] == "all"].drop_duplicates("model").set_index("model")
    rows = []
    for model, h in histories.items():
        val = pd.to_numeric(h["val_auc"], errors="coerce") if "val_auc" in h.columns else pd.Series(dtype=float)
        best = int(np.nanargmax(val.to_numpy())) if val.notna().any() else None
        rows.append({"model": model, "epochs": int(len(h)),
                     "best validation AUC": float(val.iloc[best]) if best is not None else float("nan"),
                     "at epoch": best + 1 if best is not None else None,
                     "test ROC-AUC": float(pooled.at[model, "roc_auc"]) if model in pooled.index and
                     "roc_auc" in pooled.columns and pd.notna(pooled.at[model, "roc_auc"]) else float("nan"),
                     "training time (s)": float(pooled.at[model, "train_seconds"]) if model in pooled.index and
                     "train_seconds" in pooled.columns and pd.notna(pooled.at[model, "train_seconds"]) else float("nan")})
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["at epoch"] = out["at epoch"].astype("Int64")
    return out.sort_values("test ROC-AUC", ascending=False, na_position="last", kind="mergesort").reset_index(drop=True)

"""Scoring predictions: the decision threshold, metrics per scope, curves, and latency.

Threshold rule (chosen on the validation split, never on test):
* ``youden`` (default): maximise Youden's J = TPR - FPR, which is the threshold of best balanced
  accuracy; ties go to the threshold nearest 0.5.
* ``f1``: maximise F1 of the fake class.
* ``fixed``: 0.5.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd


def _skm():
    """sklearn.metrics, imported on first use (about 1-3 s: not paid by a cached `train` or a page that
    only reads tables)."""
    from sklearn import metrics

    return metrics


from pipeline import store

CURVE_POINTS = 200
SUMMARY_COLUMNS = store.SUMMARY_COLUMNS  # summary.csv


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str = "youden") -> float:
    y, p = np.asarray(y).ravel(), np.asarray(p, dtype=float).ravel()
    if rule == "fixed" or len(np.unique(y)) < 2:
        return 0.5
    if rule == "youden":
        fpr, tpr, thresholds = _skm().roc_curve(y, p)
        score = tpr - fpr
    elif rule == "f1":
        precision, recall, thresholds = _skm().precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]
        score = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    else:
        raise ValueError(f"unknown threshold rule {rule!r}")
    finite = np.isfinite(thresholds)
    thresholds, score = thresholds[finite], score[finite]
    best = np.flatnonzero(np.isclose(score, score.max()))
    chosen = thresholds[best[np.argmin(np.abs(thresholds[best] - 0.5))]]
    return float(np.clip(chosen, 0.0, 1.0))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Metrics of the verdict ``p >= threshold`` (scikit-learn): accuracy, precision / recall / F1 of "fake",
    balanced accuracy (mean recall of the classes present), and the confusion counts."""
    y = np.asarray(y).ravel().astype(int)
    pred = (np.asarray(p).ravel() >= threshold).astype(int)
    tn, fp, fn, tp = _skm().confusion_matrix(y, pred, labels=[0, 1]).ravel()
    precision, recall, f1, _ = _skm().precision_recall_fscore_support(y, pred, labels=[1], average=None,
                                                                   zero_division=0.0)
    per_class = _skm().recall_score(y, pred, labels=[0, 1], average=None, zero_division=0.0)
    present = [per_class[c] for c in (0, 1) if (y == c).any()]  # balanced accuracy over the classes present
    return {"accuracy": float(_skm().accuracy_score(y, pred)) if len(y) else 0.0, "precision": float(precision[0]),
            "recall": float(recall[0]), "f1": float(f1[0]),
            "balanced_accuracy": float(np.mean(present)) if present else 0.0,
            "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def _downsample(*arrays: np.ndarray, n: int = CURVE_POINTS) -> list[list[float]]:
    idx = np.unique(np.linspace(0, len(arrays[0]) - 1, min(n, len(arrays[0]))).round().astype(int))
    return [np.round(a[idx], 5).tolist() for a in arrays]


def scope_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    y, p = np.asarray(y).ravel().astype(int), np.asarray(p, dtype=float).ravel()
    out = {"n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
           "roc_auc": None, "average_precision": None, "roc": None, "pr": None,
           "at_threshold": binary_metrics(y, p, threshold), "at_0.5": binary_metrics(y, p, 0.5)}
    if len(np.unique(y)) == 2:
        out["roc_auc"] = float(_skm().roc_auc_score(y, p))
        out["average_precision"] = float(_skm().average_precision_score(y, p))
        fpr, tpr, _ = _skm().roc_curve(y, p)
        precision, recall, _ = _skm().precision_recall_curve(y, p)
        fpr, tpr = _downsample(fpr, tpr)
        precision, recall = _downsample(precision, recall)
        out["roc"] = {"fpr": fpr, "tpr": tpr}
        out["pr"] = {"precision": precision, "recall": recall}
    return out


def chance_auc_band(n: int) -> float:
    """How far from 0.5 the AUC of a scorer that knows nothing lands on ``n`` test images (about
    half of each class) in 19 of 20 draws: two standard errors of a random scorer's AUC (Hanley and
    McNeil, 1982: SE^2 = (n_real + n_fake + 1) / (12 n_real n_fake)). On 157 images it is 0.09,
    on 600 images 0.05: an AUC inside 0.5 +- this band is no evidence that a model learned anything."""
    if n < 2:
        return 0.5
    half = n / 2
    return float(2 * np.sqrt((n + 1) / (12 * half * half)))


def above_chance(auc: float | None, n: int) -> bool:
    """``auc`` on ``n`` test images is better than chance by more than sampling noise."""
    return auc is not None and not pd.isna(auc) and auc - 0.5 > chance_auc_band(int(n))


def chance_verdict(auc: float | None, n: int) -> str:
    """``"above chance"``, ``"within chance"`` or ``"below chance"`` for an ROC-AUC on ``n`` images, by
    :func:`chance_auc_band`; ``"n/a"`` without an AUC. Below chance means the model ranks the classes
    the wrong way round by more than sampling noise."""
    if auc is None or pd.isna(auc):
        return "n/a"
    band = chance_auc_band(int(n))
    if auc - 0.5 > band:
        return "above chance"
    return "below chance" if 0.5 - auc > band else "within chance"


def evaluate_predictions(predictions: pd.DataFrame, threshold: float) -> dict[str, dict]:
    """Metrics for the pooled rows ("all") and per dataset. Needs columns dataset, y, p_fake."""
    scopes = {"all": scope_metrics(predictions["y"], predictions["p_fake"], threshold)}
    for name, part in predictions.groupby("dataset", sort=True):
        scopes[str(name)] = scope_metrics(part["y"], part["p_fake"], threshold)
    return scopes


def summary_rows(metrics: dict) -> list[dict]:
    """Rows of summary.csv for one model's metrics.json."""
    rows = []
    for scope, m in metrics["scopes"].items():
        at = m["at_threshold"]
        rows.append({
            "model": metrics["model"], "scope": scope, "n": m["n"],
            **{k: at[k] for k in ("accuracy", "precision", "recall", "f1", "balanced_accuracy")},
            "recall_real": at["tn"] / (at["tn"] + at["fp"]) if at["tn"] + at["fp"] else None,
            "recall_fake": at["recall"] if at["tp"] + at["fn"] else None,
            "roc_auc": m["roc_auc"], "average_precision": m["average_precision"],
            "accuracy_at_0.5": m["at_0.5"]["accuracy"], "threshold": metrics["threshold"],
            "params": metrics.get("params"), "file_size_mb": round(metrics.get("file_size_bytes", 0) / 2**20, 3),
            "train_seconds": metrics.get("train_seconds"),
            "latency_ms_batch1": metrics.get("latency_ms", {}).get("batch1_p50"),
            "latency_ms_batch64": metrics.get("latency_ms", {}).get("batch64_p50"),
        })
    return rows


def measure_latency(predict_batch, image_size: int, repeats: int = 15, warmup: int = 3) -> dict:
    """p50 latency of ``predict_batch(x)`` at batch 1 and 64, after warm-up, in milliseconds."""
    rng = np.random.default_rng(0)
    out = {}
    for batch, key in ((1, "batch1_p50"), (64, "batch64_p50")):
        x = rng.integers(0, 256, size=(batch, image_size, image_size, 3)).astype(np.float32)
        for _ in range(warmup):
            predict_batch(x)
        times = []
        for _ in range(repeats if batch == 1 else max(3, repeats // 3)):
            t = time.perf_counter()
            predict_batch(x)
            times.append((time.perf_counter() - t) * 1000)
        out[key] = round(float(np.median(times)), 3)
    out["per_image_batch64"] = round(out["batch64_p50"] / 64, 3)
    return out


# --------------------------------------------------------------------------- the run's comparison table

def write_summary(run_dir, names: list[str], keep_others: bool = False) -> pd.DataFrame:
    """Write summary.csv: :func:`summary_rows` of each finished model folder of ``names`` (in that order).
    ``keep_others``: keep the rows of every other model already in the table (rows other steps added)."""
    from pipeline import artifacts, store

    path = store.run_file(run_dir, store.SUMMARY)
    old = pd.read_csv(path) if keep_others and path.exists() else pd.DataFrame(columns=SUMMARY_COLUMNS)
    old = old[~old["model"].isin(names)]
    rows = []
    for name in names:
        if store.is_model_done(run_dir, name):
            rows += summary_rows(store.read_metrics(run_dir, name))
    new = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary = pd.concat([df for df in (old, new) if len(df)], ignore_index=True) if len(old) or len(new) else new
    summary = summary.reindex(columns=list(dict.fromkeys(list(SUMMARY_COLUMNS) + list(old.columns))))
    artifacts.write_csv(path, summary)
    return summary


def add_to_summary(run_dir, names: list[str]) -> pd.DataFrame:
    """Put the rows of the finished model folders ``names`` into summary.csv, keeping every other row."""
    return write_summary(run_dir, names, keep_others=True)

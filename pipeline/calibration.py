"""Calibration and operating-point metrics of a detector's probabilities of "fake".

* Calibration maps a detector's raw score to a probability that means what it says: of the photos
  given 0.8, about 80% are fake. :func:`fit_calibrator` fits it on the validation split (never on
  test): Platt scaling (Platt, 1999: a one-feature logistic regression on the score's log-odds,
  scikit-learn's ``LogisticRegression``) or isotonic regression (Zadrozny & Elkan, 2002:
  scikit-learn's ``IsotonicRegression``). A calibrator is a small JSON-ready dict (two numbers, or
  the isotonic step function's knots): nothing is pickled.
* :func:`calibration_metrics`: expected calibration error (ECE, 10 equal-width bins: the share-
  weighted mean gap between the mean predicted probability and the fraction of fakes in each bin;
  Naeini et al., 2015), Brier score and log loss (``sklearn.metrics``).
* :func:`operating_metrics`: what a threshold does to each class (recall of the real and of the fake
  class, balanced accuracy), the equal error rate and the true-positive rate at 1% and 5% false-
  positive rate, read off ``sklearn.metrics.roc_curve``.
* :func:`max_fpr_threshold`: the ``threshold_rule`` "at most X% of real images called fake", applied
  per dataset so that it holds on every one of them, not only pooled.

All probabilities are of the class "fake" (label 1), floats in [0, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _skm():
    """sklearn.metrics, imported on first use (about 1-3 s: not paid by a cached `train` or a page that
    only reads tables)."""
    from sklearn import metrics

    return metrics


EPS = 1e-6
ECE_BINS = 10
METHODS = ("platt", "isotonic", "none")


def logit(p) -> np.ndarray:
    """Log-odds of probabilities (clipped to [1e-6, 1 - 1e-6]); float64 array of the input's shape."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_calibrator(p, y, method: str = "platt") -> dict[str, Any]:
    """A calibrator of raw probabilities ``p`` (n,) against labels ``y`` (n,) in {0, 1}, fitted on
    validation predictions. Returns a JSON-ready dict for :func:`apply_calibrator`. With one class
    only (or ``method="none"``) it is the identity. Raises ``ValueError`` for an unknown method."""
    if method not in METHODS:
        raise ValueError(f"calibration must be one of {', '.join(METHODS)}, got {method!r}")
    p, y = np.asarray(p, dtype=np.float64).ravel(), np.asarray(y).ravel().astype(int)
    if method == "none" or len(np.unique(y)) < 2:
        return {"method": "none", "n_fit": int(len(y))}
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e4, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a <= 0:  # the detector ranks validation the wrong way round (or not at all): it says nothing,
            a, b = 0.0, float(logit(y.mean()))  # so every score maps to the base rate
        return {"method": "platt", "a": a, "b": b, "n_fit": int(len(y))}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return {"method": "isotonic", "x": [float(v) for v in iso.X_thresholds_],
            "y": [float(v) for v in iso.y_thresholds_], "n_fit": int(len(y))}


def apply_calibrator(calibrator: dict[str, Any] | None, p) -> np.ndarray:
    """Calibrated probabilities of raw ``p`` (any shape); the identity for None or ``method="none"``."""
    p = np.asarray(p, dtype=np.float64)
    method = (calibrator or {}).get("method", "none")
    if method == "platt":
        return sigmoid(calibrator["a"] * logit(p) + calibrator["b"])
    if method == "isotonic":
        return np.interp(p, calibrator["x"], calibrator["y"])
    return p


def expected_calibration_error(y, p, n_bins: int = ECE_BINS) -> float:
    """ECE over ``n_bins`` equal-width bins of ``p`` (Naeini et al., 2015); 0 = perfectly calibrated."""
    y, p = np.asarray(y, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    if len(y) == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    conf = np.bincount(bins, weights=p, minlength=n_bins)
    hits = np.bincount(bins, weights=y, minlength=n_bins)
    used = counts > 0
    return float(np.sum(np.abs(hits[used] - conf[used])) / len(y))


def ece_noise_floor(p, n_bins: int = ECE_BINS, n_draws: int = 400, seed: int = 0) -> tuple[float, float]:
    """The ECE a perfectly calibrated model would show on these probabilities: ``(mean, 95th percentile)``
    of :func:`expected_calibration_error` over ``n_draws`` label sets drawn as Bernoulli(``p``) (fixed
    ``seed``). Binned ECE is biased upwards by sampling noise: with 150 images and 10 bins it is about
    0.05 even for exact probabilities, so an observed ECE is only evidence of miscalibration above this
    floor. ``(nan, nan)`` for no probabilities."""
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(p) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.array([expected_calibration_error(rng.random(len(p)) < p, p, n_bins) for _ in range(n_draws)])
    return float(draws.mean()), float(np.percentile(draws, 95))


def reliability_table(y, p, n_bins: int = ECE_BINS) -> dict[str, list]:
    """Per non-empty bin: mean predicted probability, observed fraction of fakes, and the count (a
    reliability diagram's points)."""
    y, p = np.asarray(y, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    out: dict[str, list] = {"mean_predicted": [], "fraction_fake": [], "n": []}
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            out["mean_predicted"].append(round(float(p[sel].mean()), 5))
            out["fraction_fake"].append(round(float(y[sel].mean()), 5))
            out["n"].append(int(sel.sum()))
    return out


def calibration_metrics(y, p) -> dict[str, float | None]:
    """``ece`` (10 bins), ``brier`` and ``log_loss`` of probabilities ``p`` against labels ``y``."""
    y, p = np.asarray(y).ravel().astype(int), np.clip(np.asarray(p, dtype=np.float64).ravel(), EPS, 1 - EPS)
    if len(y) == 0:
        return {"ece": None, "brier": None, "log_loss": None}
    # Brier score and log loss (scikit-learn's brier_score_loss and log_loss, the same numbers) written out:
    # importing sklearn.metrics costs the Compare page's first visit 1-3 s (tests/test_calibration_formulas.py)
    return {"ece": expected_calibration_error(y, p), "brier": float(np.mean((p - y) ** 2)),
            "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))}


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest true-positive rate of an ROC curve whose false-positive rate is <= ``max_fpr``."""
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def operating_metrics(y, p, threshold: float) -> dict[str, float | None]:
    """At ``threshold`` ("fake" when p >= threshold): ``recall_real`` (real photos called real),
    ``recall_fake``, ``balanced_accuracy`` (their mean), ``fpr`` (real photos called fake); and, from
    the ROC curve, ``eer`` (where FPR = 1 - TPR), ``tpr_at_fpr_1pct`` and ``tpr_at_fpr_5pct``.
    A rate of a class that is absent is None."""
    y, p = np.asarray(y).ravel().astype(int), np.asarray(p, dtype=np.float64).ravel()
    pred = p >= threshold
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    recall_real = float((~pred[y == 0]).mean()) if n_real else None
    recall_fake = float(pred[y == 1].mean()) if n_fake else None
    present = [r for r in (recall_real, recall_fake) if r is not None]
    out: dict[str, float | None] = {
        "recall_real": recall_real, "recall_fake": recall_fake, "fpr": None if recall_real is None else 1 - recall_real,
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "eer": None, "tpr_at_fpr_1pct": None, "tpr_at_fpr_5pct": None}
    if n_real and n_fake:
        fpr, tpr, _ = _skm().roc_curve(y, p)
        fnr = 1 - tpr
        i = int(np.argmin(np.abs(fnr - fpr)))
        out["eer"] = float((fpr[i] + fnr[i]) / 2)
        out["tpr_at_fpr_1pct"] = tpr_at_fpr(fpr, tpr, 0.01)
        out["tpr_at_fpr_5pct"] = tpr_at_fpr(fpr, tpr, 0.05)
    return out


def max_fpr_threshold(p_real, groups, max_fpr: float) -> float:
    """The lowest threshold at which, in every group (dataset) of real images, at most ``max_fpr`` of
    them score >= it ("at most X% of real images called fake on validation", on each dataset).
    ``p_real``: (n,) probabilities of real images; ``groups``: (n,) their dataset. Raises
    ``ValueError`` when ``max_fpr`` is outside [0, 1) or there is no real image."""
    if not 0.0 <= max_fpr < 1.0:
        raise ValueError(f"max_false_positive_rate must be in [0, 1), got {max_fpr}")
    p_real, groups = np.asarray(p_real, dtype=np.float64).ravel(), np.asarray(groups).ravel()
    if len(p_real) == 0:
        raise ValueError("no real image to choose a false-positive-rate threshold on")
    best = 0.0
    for g in np.unique(groups):
        p = np.sort(p_real[groups == g])
        allowed = int(np.floor(max_fpr * len(p)))  # this many reals may reach the threshold
        # the threshold sits just above the (allowed+1)-th highest real score
        cut = p[len(p) - allowed - 1]
        best = max(best, float(np.nextafter(cut, np.inf)))
    return float(min(best, 1.0))


def trust_rows(model: str, val, test, threshold: float, method: str = "platt") -> list[dict]:
    """Per scope (``all`` and each dataset of ``test``): calibration and operating-point metrics of
    ``model``. ``val``/``test``: DataFrames with ``dataset``, ``y``, ``p_fake`` (raw); the calibrator
    is fitted on ``val`` and judged on ``test``. Columns: ``n``, ``ece_raw`` (uncalibrated), ``ece``,
    ``brier``, ``log_loss`` (calibrated), and :func:`operating_metrics` at ``threshold`` (raw scale)."""
    cal = fit_calibrator(val["p_fake"].to_numpy(), val["y"].to_numpy(), method)
    rows = []
    scopes = [("all", test)] + [(str(k), g) for k, g in sorted(test.groupby("dataset"))]
    for scope, part in scopes:
        y, p = part["y"].to_numpy().astype(int), part["p_fake"].to_numpy(dtype=np.float64)
        cm = calibration_metrics(y, apply_calibrator(cal, p))
        rows.append({"model": model, "scope": scope, "n": int(len(part)),
                     "ece_raw": expected_calibration_error(y, p) if len(y) else None,
                     **cm, **operating_metrics(y, p, threshold)})
    return rows

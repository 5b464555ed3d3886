"""Calibration and the operating point of a detector, from its stored test predictions.

* Reliability diagram: the test images are put in ``n_bins`` equal-width bins of predicted
  P(fake); per bin the mean predicted P(fake) is plotted against the observed share of fakes
  (:func:`pipeline.calibration.reliability_table`, the binning the Compare page uses). A calibrated
  model lies on the diagonal.
* Expected calibration error (ECE; Naeini et al. 2015, Guo et al. 2017): the mean over bins of
  |observed share of fakes - mean predicted P(fake)|, weighted by the bin's share of images.
  0 is perfect; 0.1 means the stated probabilities are off by ten points on average.
* Brier score (:func:`sklearn.metrics.brier_score_loss`): mean squared error of P(fake).
* Operating point: the model's decision threshold (chosen on the validation split) and what it
  does on the test split, in words a reader without statistics can check: "about N in 1,000 real
  photos wrongly called fake".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

N_BINS = 10


@dataclass(frozen=True)
class Reliability:
    """One model's calibration on ``n`` test images: ``mean_predicted`` and ``fraction_fake`` per
    non-empty bin (probabilities 0-1), ``count`` images per such bin, ``ece`` and ``brier`` (0-1)."""

    model: str
    n: int
    mean_predicted: list[float]
    fraction_fake: list[float]
    count: list[int]
    ece: float | None
    brier: float | None


def reliability(model: str, y: np.ndarray, p_fake: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Calibration of predicted ``p_fake`` (shape (n,), 0-1) against labels ``y`` (shape (n,), 1 = fake).
    Fewer than two images or one class only: no curve and ``ece``/``brier`` from what there is
    (``None`` when empty). Raises ``ValueError`` for shapes that differ or probabilities outside 0-1."""
    from pipeline import calibration

    y = np.asarray(y, dtype=int).ravel()
    p = np.asarray(p_fake, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length ({len(y)} vs {len(p)})")
    if len(p) and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError("p_fake must lie in 0..1")
    if len(p) == 0:
        return Reliability(model, 0, [], [], [], None, None)
    table = calibration.reliability_table(y, p, n_bins)  # the one binning and ECE of the project
    metrics = calibration.calibration_metrics(y, p)
    return Reliability(model, int(len(p)), table["mean_predicted"], table["fraction_fake"], table["n"],
                       metrics["ece"], metrics["brier"])


def reliability_table(items: list[Reliability]) -> pd.DataFrame:
    """model, n, ECE, Brier score: one row per model, best calibrated (lowest ECE) first."""
    df = pd.DataFrame([{"model": r.model, "n": r.n, "ECE": r.ece, "Brier score": r.brier} for r in items],
                      columns=["model", "n", "ECE", "Brier score"])
    return df.sort_values("ECE", kind="stable", na_position="last").reset_index(drop=True)


def reliability_figure(items: list[Reliability], colors: Mapping[str, str] | None = None):
    """Reliability diagram (:func:`pipeline.figures.reliability_figure`, the Compare page's): one line
    per model, named with its ECE."""
    from pipeline import figures

    curves = {f"{r.model} (ECE {r.ece:.3f})": {"mean_predicted": r.mean_predicted, "fraction_fake": r.fraction_fake,
                                               "n": r.count} for r in items if r.mean_predicted}
    return figures.reliability_figure(curves, colors, title="Reliability diagram (test split)", height=520)


def per_thousand(k: int, n: int) -> str:
    """``"about 34 in 1,000"`` for k of n (``"no"`` with k = 0; ``n == 0``: ``"unknown"``)."""
    if n <= 0:
        return "unknown"
    if k == 0:
        return "no"
    rate = 1000 * k / n
    return f"about {rate:,.0f} in 1,000" if rate >= 1 else f"about {rate:.1f} in 1,000"


@dataclass(frozen=True)
class OperatingPoint:
    """A model's decision threshold (0-1, P(fake) at or above it means "fake"), the rule that chose it on
    the validation split, and the test-split counts at it (``fp`` of ``n_real`` real photos called fake,
    ``tp`` of ``n_fake`` fakes caught)."""

    model: str
    scope: str
    threshold: float | None
    rule: str
    fp: int
    n_real: int
    tp: int
    n_fake: int

    @property
    def fpr(self) -> float | None:
        return self.fp / self.n_real if self.n_real else None

    @property
    def tpr(self) -> float | None:
        return self.tp / self.n_fake if self.n_fake else None

    def in_words(self) -> str:
        """E.g. "At threshold 0.482 (chosen on the validation split by Youden's J), about 344 in 1,000 real
        photos are wrongly called fake (31 of 90) and about 889 in 1,000 fakes are caught (80 of 90)."""
        rule = RULES.get(self.rule, self.rule or "an unrecorded rule")
        thr = "an unrecorded threshold" if self.threshold is None else f"threshold {self.threshold:.3f}"
        return (f"At {thr} (chosen on the validation split {rule}), {per_thousand(self.fp, self.n_real)} real "
                f"photos are wrongly called fake ({self.fp} of {self.n_real}) and {per_thousand(self.tp, self.n_fake)} "
                f"fakes are caught ({self.tp} of {self.n_fake}).")


RULES = {"youden": "by Youden's J, the threshold of best balanced accuracy", "f1": "by the best F1 of the fake class",
         "fixed": "as the fixed 0.5", "fixed 0.5": "as the fixed 0.5"}


def operating_point(model: str, metrics: Mapping[str, Any], scope: str = "all") -> OperatingPoint | None:
    """The operating point of one model's ``metrics.json`` (``artifacts/README.md``) in ``scope``; None
    when the scope is absent."""
    sc = (metrics.get("scopes") or {}).get(scope)
    if not isinstance(sc, dict):
        return None
    at = sc.get("at_threshold") or {}
    thr = metrics.get("threshold")
    return OperatingPoint(model=model, scope=scope, threshold=None if thr is None else float(thr),
                          rule=str(metrics.get("threshold_rule") or ""), fp=int(at.get("fp") or 0),
                          n_real=int(sc.get("n_real") or 0), tp=int(at.get("tp") or 0),
                          n_fake=int(sc.get("n_fake") or 0))

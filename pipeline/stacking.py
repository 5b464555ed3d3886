"""Stacking: a logistic regression over detectors' scores (Wolpert, "Stacked generalization", 1992).

The features are ``logit(p_fake)`` of each member; the regression is fitted on the validation split (never on
test) and stored as JSON coefficients (no pickle). Its own validation predictions are out of fold
(:func:`out_of_fold`, scikit-learn's ``cross_val_predict`` over a stratified 5-fold split), so a threshold
chosen on them is not chosen on rows the regression was fitted on. Used by the combined models
(:mod:`pipeline.detectors.combined`) and by the per-dataset stackers of the router (:mod:`pipeline.routing`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities clipped to [1e-6, 1 - 1e-6], float64."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def mean_probability(p: np.ndarray) -> np.ndarray:
    """(n, k) member probabilities -> (n,) mean."""
    return np.asarray(p, dtype=np.float64).mean(axis=1)


def _regression(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=1000, random_state=seed)


@dataclass(frozen=True)
class Copies:
    """Members' probabilities of "fake" on augmented copies of validation rows, for stackers that also fit on
    them (the copies a photo goes through when shared: cropped, blurred, downscaled, re-saved as JPEG).
    ``p``: (m, k) float, one row per copy; ``of``: (m,) int, the position of each copy's original among the
    validation rows (its label and kind are the original's)."""

    p: np.ndarray
    of: np.ndarray

    def subset(self, rows: np.ndarray) -> "Copies":
        """The copies of validation rows ``rows`` (positions, or a boolean mask), with ``of`` counted within
        ``rows``, in order: the copies that belong to ``p_val[rows]``."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(int)
        position = np.full(max(int(self.of.max(initial=-1)), int(rows.max(initial=-1))) + 1, -1)
        position[rows] = np.arange(len(rows))
        at = position[self.of]
        keep = at >= 0
        return Copies(self.p[keep], at[keep])


def fit_stacker(p_val: np.ndarray, y_val: np.ndarray, members: list[str], seed: int = 0, C: float = 1.0,
                copies: Copies | None = None) -> dict:
    """Logistic regression on logit(p) of the members: ``p_val`` (n, k) probabilities of "fake", ``y_val`` (n,)
    0/1; ``C`` the inverse L2 strength; ``copies``: augmented copies of these rows fitted on as well, each with
    its original's label. Returns JSON-ready coefficients (:func:`apply_stacker` applies them)."""
    y_val = np.asarray(y_val).astype(int)
    x, y = logit(p_val), y_val
    n_copies = 0 if copies is None else len(copies.of)
    if n_copies:
        x, y = np.vstack([x, logit(copies.p)]), np.concatenate([y, y_val[copies.of]])
    lr = _regression(seed, C).fit(x, y)
    return {"members": list(members), "features": "logit(p_fake) of each member", "intercept": float(lr.intercept_[0]),
            "coef": [float(c) for c in lr.coef_[0]], "C": C,
            "fitted_on": "validation split" + (f" and {n_copies} augmented copies of its rows" if n_copies else ""),
            "n_fit": int(len(y_val)), "n_copies": int(n_copies)}


def apply_stacker(stacker: dict, p: np.ndarray) -> np.ndarray:
    """(n,) stacked probability of "fake" for (n, k) member probabilities."""
    z = logit(p) @ np.asarray(stacker["coef"], dtype=np.float64) + stacker["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


def out_of_fold(p_val: np.ndarray, y_val: np.ndarray, members: list[str], seed: int = 0,
                copies: Copies | None = None) -> np.ndarray:
    """(n,) stacked validation predictions, each from a regression that did not see that row nor its copies
    (``sklearn.model_selection.cross_val_predict``, stratified, shuffled with ``seed``, up to 5 folds; with fewer
    than 2 rows of a class, the in-sample fit). ``copies``: as :func:`fit_stacker`; a copy is fitted on in the
    folds its original is fitted on."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y_val = np.asarray(y_val).astype(int)
    n_splits = int(min(5, np.bincount(y_val, minlength=2).min()))
    if n_splits < 2:
        return apply_stacker(fit_stacker(p_val, y_val, members, seed, copies=copies), p_val)
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    if copies is None:
        return cross_val_predict(_regression(seed, 1.0), logit(p_val), y_val, cv=folds, method="predict_proba")[:, 1]
    out = np.empty(len(y_val))
    for fit_idx, pred_idx in folds.split(p_val, y_val):
        stacker = fit_stacker(p_val[fit_idx], y_val[fit_idx], members, seed, copies=copies.subset(fit_idx))
        out[pred_idx] = apply_stacker(stacker, p_val[pred_idx])
    return out

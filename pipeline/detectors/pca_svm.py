"""Kind ``pca_svm``: a PCA + SVM probe on the embedding of one of the run's Keras models.

Written by the embedding step (:func:`pipeline.embeddings.train_svm`) as ``models/<base>+pca_svm/``; scored
as the base model's embedding layer (:data:`pipeline.models.EMBEDDING_LAYER`) -> standardise -> PCA -> SVC,
``p_fake = sigmoid(decision_function)`` (:class:`pipeline.svm.PcaSvm`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.detectors import register_kind

KIND = "pca_svm"


class PcaSvmDetector:
    """A PCA-SVM probe: ``base`` (the Keras detector whose embedding it reads), ``estimator`` (a fitted
    :class:`pipeline.svm.PcaSvm`), ``threshold`` chosen on validation."""

    kind = KIND

    def __init__(self, name: str, base, estimator, threshold: float):
        from pipeline.models import embedding_model

        self.name, self.base, self.estimator, self.threshold = name, base, estimator, threshold
        self.image_size = base.image_size
        self._embed = embedding_model(base.model)

    def embed(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, D) float32 embedding-layer outputs of the base model."""
        x = self.base.arrays(rgb_images)
        if not len(x):
            return np.zeros((0, int(self._embed.outputs[0].shape[-1])), dtype=np.float32)
        return np.concatenate([np.asarray(self._embed.predict_on_batch(x[i:i + 64])).reshape(len(x[i:i + 64]), -1)
                               for i in range(0, len(x), 64)])

    def from_embedding(self, embedding: np.ndarray) -> np.ndarray:
        """(n,) p(fake) from the base model's (n, D) embeddings."""
        return self.estimator.predict_proba(np.asarray(embedding))[:, 1].astype(np.float64)

    def predict_proba(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n,) p(fake) of (H, W, 3) uint8 images."""
        return self.from_embedding(self.embed(rgb_images))


def load_run_svm(run_dir: str | Path, model: str) -> tuple:
    """The stored default PCA-SVM of ``model`` (base name): the projection from ``pca.npz``, the fitted SVC
    from ``svc.skops`` (skops, scikit-learn's trusted types only), ``svm.json``: (:class:`pipeline.svm.PcaSvm`, svm.json).
    Nothing pickled is read; raises :class:`pipeline.persist.PersistError` for a bad ``svc.skops``."""
    from sklearn.svm import SVC, LinearSVC

    from pipeline import artifacts, embeddings, store
    from pipeline.persist import load_estimator
    from pipeline.svm import SVC_FILE, PcaSvm, svm_model_name

    run_dir = Path(run_dir)
    folder = store.model_dir(run_dir, svm_model_name(model))
    spec = artifacts.read_json(folder / "svm.json")
    proj, _ = embeddings.load_pca(run_dir, model)
    svc = load_estimator(folder / SVC_FILE, expect=(SVC, LinearSVC))
    est = PcaSvm(n_components=spec["n_components"], random_state=spec.get("random_state", 0), **spec["params"])
    return est.with_fitted(proj, svc), spec


def base_name(name: str) -> str:
    from pipeline.svm import base_model_name

    return base_model_name(name)


def load_with_base(run_dir: Path, name: str, base) -> PcaSvmDetector:
    """The probe ``name`` of a run over an already loaded Keras ``base`` detector."""
    from pipeline import store

    est, _ = load_run_svm(run_dir, base.name)
    return PcaSvmDetector(name, base, est, float(store.read_metrics(run_dir, name)["threshold"]))


def load(run_dir: Path, name: str) -> PcaSvmDetector:
    """The probe ``models/<name>`` (``<base>+pca_svm``) with its base model loaded (safe mode)."""
    from pipeline.detectors.keras_model import load as load_keras

    return load_with_base(run_dir, name, load_keras(run_dir, base_name(name)))


register_kind(KIND, load=load, description="a PCA + SVM probe on a Keras model's embedding (written by the "
                                           "embedding step)")

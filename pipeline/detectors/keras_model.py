"""Kind ``keras``: a Keras model of the zoo (:mod:`pipeline.models`) trained end to end on the run's images.

Folder: ``model.keras`` (loaded in safe mode: no Lambda layers, no code from the file), plus the files every
model folder has (:mod:`pipeline.store`). Images are resized to the model's square ``image_size``
(:func:`pipeline.images.resize_square`, the same function that made the training arrays) and fed as
float32 0-255; each model scales inside.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline import artifacts, evaluation, splits, store
from pipeline.detectors import TrainContext, register_kind

KIND = "keras"


def predict_batch(model, x: np.ndarray) -> np.ndarray:
    """P(fake) for one batch of (N, S, S, 3) float images in 0..255, through the compiled predict path."""
    return np.asarray(model.predict_on_batch(np.asarray(x, dtype=np.float32))).reshape(-1)


def predict_arrays(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N,) P(fake) of (N, S, S, 3) float images in 0..255, batch by batch."""
    if len(x) == 0:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate([predict_batch(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


class KerasDetector:
    """A trained Keras model of a run: ``model`` (the ``keras.Model``), its ``threshold`` and input
    ``image_size`` (pixels, square)."""

    kind = KIND

    def __init__(self, name: str, model, threshold: float, image_size: int):
        self.name, self.model, self.threshold, self.image_size = name, model, threshold, image_size

    def arrays(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, S, S, 3) float32 0-255: the images as this model sees them."""
        from pipeline.images import resize_square

        if not len(rgb_images):
            return np.zeros((0, self.image_size, self.image_size, 3), dtype=np.float32)
        return np.stack([resize_square(im, self.image_size) for im in rgb_images]).astype(np.float32)

    def predict_proba(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n,) P(fake) of (H, W, 3) uint8 RGB images, each resized to ``image_size``."""
        return predict_arrays(self.model, self.arrays(rgb_images)).astype(np.float64)


def load(run_dir: Path, name: str) -> KerasDetector:
    """The Keras model in ``models/<name>/`` of a run, loaded in safe mode, with its threshold and input size
    from metrics.json. KeyError when the folder has no finished model.keras."""
    from pipeline.models import load_model

    file = store.model_file(run_dir, name, store.KERAS_MODEL)
    if not store.is_model_done(run_dir, name) or not file.is_file():
        raise KeyError(f"model {name!r} of run {Path(run_dir).name} has no finished model.keras")
    metrics = store.read_metrics(run_dir, name)
    return KerasDetector(name, load_model(file), float(metrics["threshold"]), int(metrics["image_size"]))


def train(ctx: TrainContext) -> dict:
    """Train, save and score one Keras model; returns its metrics (also written to metrics.json).

    Trains on the spec's training rows (its ``datasets``, capped by ``max_train_images``), early-stops and
    picks the threshold on its own validation rows, and scores every validation and test row."""
    from pipeline import training  # TensorFlow is imported only when training
    from pipeline.config import model_augmentation

    spec, cfg, manifest = ctx.spec, ctx.cfg, ctx.manifest
    x = ctx.images_at(spec.image_size)
    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy()
    own = splits.specialist_rows(manifest, spec)
    train_idx = splits.stratified_subsample(np.flatnonzero((split == "train") & own), manifest, spec.max_train_images,
                                          cfg.seed)
    own_val_idx = np.flatnonzero((split == "val") & own)  # early stopping and the threshold
    val_idx, test_idx = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")  # scored: every image
    result = training.train_model(spec, x[train_idx], y[train_idx], x[own_val_idx], y[own_val_idx],
                                  augmentation=model_augmentation(cfg, spec), seed=cfg.seed, progress=ctx.progress,
                                  strategy=cfg.strategy,
                                  sample_weight=training.balancing_weights(spec, manifest, train_idx))
    p_val = predict_arrays(result.model, x[val_idx])
    p_test = predict_arrays(result.model, x[test_idx])
    threshold = evaluation.choose_threshold(y[val_idx][own[val_idx]], p_val[own[val_idx]], cfg.threshold_rule)
    preds = store.prediction_rows(manifest, val_idx, p_val, test_idx, p_test)
    size = {}

    def write_model_file(path: Path) -> None:
        artifacts.save_keras_model(result.model, path)
        size["bytes"] = path.stat().st_size

    metrics = {
        "kind": KIND, "image_size": spec.image_size, "spec": dataclasses.asdict(spec),
        "params": int(result.model.count_params()),
        "train_seconds": round(result.train_seconds, 2), "n_train": int(len(train_idx)),
        "epochs_run": int(len(result.history)), "kept_phase": result.kept_phase,
        "threshold": threshold, "threshold_rule": cfg.threshold_rule,
        "latency_ms": evaluation.measure_latency(lambda b: predict_batch(result.model, b), spec.image_size),
        "scopes": evaluation.evaluate_predictions(preds[preds["split"] == "test"], threshold),
        "validation": evaluation.scope_metrics(y[val_idx][own[val_idx]], p_val[own[val_idx]], threshold),
        "datasets": list(spec.datasets),  # a specialist's own datasets; empty = trained on all
        "trained": store.now(),
    }
    store.unmark_done(ctx.run_dir, spec.name)
    write_model_file(store.model_file(ctx.run_dir, spec.name, store.KERAS_MODEL))
    metrics["file_size_bytes"] = size["bytes"]
    return store.write_model(ctx.run_dir, spec.name, metrics=metrics, predictions=preds,
                             history=pd.DataFrame(result.history))


register_kind(KIND, load=load, train=train, description="a Keras model of the zoo, trained end to end")

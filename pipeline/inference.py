"""Scoring images with trained models: the one predict path used by the CLI, the dashboard,
the evaluation of a run and the latency benchmark."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def predict_batch(model, x: np.ndarray) -> np.ndarray:
    """P(fake) for one batch of (N, S, S, 3) images in 0..255, through the compiled predict path."""
    return np.asarray(model.predict_on_batch(np.asarray(x, dtype=np.float32))).reshape(-1)


def predict_proba(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(fake) for any number of images, batch by batch."""
    if len(x) == 0:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate([predict_batch(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def verdict(p_fake: float, threshold: float) -> str:
    return "fake" if p_fake >= threshold else "real"


class LoadedModel:
    """A trained model of a run with what is needed to score: its threshold and input size."""

    def __init__(self, name: str, model, threshold: float, image_size: int):
        self.name, self.model, self.threshold, self.image_size = name, model, threshold, image_size

    def score(self, rgb_images: list[np.ndarray]) -> np.ndarray:
        from pipeline.images import resize_square

        x = np.stack([resize_square(im, self.image_size) for im in rgb_images]) if rgb_images else np.zeros((0,))
        return predict_proba(self.model, x)


def load_run_models(run_dir, names: list[str] | None = None) -> dict[str, LoadedModel]:
    """The complete models of a run (run.json's "models"), or the named ones (any finished Keras model
    of the run, also ``searched_cnn``), loaded in safe mode."""
    from pipeline import artifacts

    run_dir = Path(run_dir)
    run_json = artifacts.read_json(run_dir / "run.json")
    available = [m for m in run_json["models"] if artifacts.is_model_done(run_dir, m)]
    for name in names or []:
        keras_file = artifacts.model_dir(run_dir, name) / "model.keras"
        if name not in available and not (artifacts.is_model_done(run_dir, name) and keras_file.is_file()):
            raise KeyError(f"model {name!r} is not a trained model of run {run_dir.name}; "
                           f"trained: {', '.join(available) or 'none'}")
    return {name: load_model_dir(run_dir, name) for name in names or available}


def load_model_dir(run_dir, name: str) -> LoadedModel:
    """The Keras model in ``models/<name>/`` of a run (any finished one, also ``searched_cnn``, which
    run.json does not list), loaded in safe mode, with its threshold and input size from metrics.json."""
    from pipeline import artifacts
    from pipeline.models import load_model

    folder = artifacts.model_dir(run_dir, name)
    if not artifacts.is_model_done(run_dir, name) or not (folder / "model.keras").is_file():
        raise KeyError(f"model {name!r} of run {Path(run_dir).name} has no finished model.keras")
    metrics = artifacts.read_json(folder / "metrics.json")
    return LoadedModel(name, load_model(folder / "model.keras"), float(metrics["threshold"]),
                       int(metrics["image_size"]))


def score_arrays(rgb_images: list[np.ndarray], models: dict[str, LoadedModel]) -> dict[str, np.ndarray]:
    """``{model: (n,) p_fake}`` of each image, unrounded (what :func:`score_rgb` reports)."""
    return {name: lm.score(rgb_images) for name, lm in models.items()}


def score_rgb(rgb_images: list[np.ndarray], models: dict[str, LoadedModel],
              per_model: dict[str, np.ndarray] | None = None) -> list[list[dict]]:
    """For each image, one record per model: model, p_fake, threshold, verdict (``per_model``: the
    :func:`score_arrays` of these images when already computed)."""
    per_model = score_arrays(rgb_images, models) if per_model is None else per_model
    return [[{"model": name, "p_fake": round(float(per_model[name][i]), 6), "threshold": round(lm.threshold, 6),
              "verdict": verdict(float(per_model[name][i]), lm.threshold)} for name, lm in models.items()]
            for i in range(len(rgb_images))]

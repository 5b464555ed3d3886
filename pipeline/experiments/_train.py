"""Training helpers shared by the ablation, the cross-dataset matrix and the search."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, config, data, evaluation, store
from pipeline.config import ModelSpec, augmentation_fingerprint, model_augmentation
from pipeline.experiments import subsample


def base_spec(cfg, name: str | None = None, **changes) -> ModelSpec:
    """The config's spec of ``name`` (default: ``[experiments] model``), or a default one, changed."""
    name = name or cfg.experiments.model
    spec = cfg.model(name) if name in cfg.model_names else ModelSpec(name=name)
    return dataclasses.replace(spec, **changes)


def spec_settings(spec: ModelSpec) -> dict:
    """``spec`` as the experiments' cache keys hash it: whole, but for the options added after those
    keys were first written while they keep their default (cached results keep their keys)."""
    return config.spec_fingerprint(spec, config.OPTIONS_AFTER_EXPERIMENT_KEYS)


def training_key(cfg, spec: ModelSpec) -> dict:
    """What an experiment's trainings of ``spec`` depend on besides the data: the spec and the
    augmentation it trains with (the run's, with the model's own changes) and, when it balances the
    datasets, that marker: trainings before the experiments honoured it were unweighted, so their
    cached results must not be reused. Keys of other specs are as they were."""
    key = {"spec": spec_settings(spec), "augmentation": augmentation_fingerprint(model_augmentation(cfg, spec))}
    if spec.balance_datasets:
        key["weights"] = "balanced by (dataset, label)"
    return key


def arrays(cfg, manifest: pd.DataFrame, size: int, progress=None) -> np.ndarray:
    return data.load_arrays(manifest, size, artifacts.cache_dir(cfg.artifacts_dir), progress)


def train_and_score(cfg, spec: ModelSpec, manifest: pd.DataFrame, x: np.ndarray, train_mask: np.ndarray,
                    val_mask: np.ndarray, progress=None):
    """Train ``spec`` on the rows of ``train_mask`` (capped by ``spec.max_train_images``) the way the
    run trains it (its own augmentation changes, ``balance_datasets``); choose the threshold on
    ``val_mask``. Returns (TrainResult, threshold, p_val, val_idx, train_idx)."""
    from pipeline import training
    from pipeline.detectors import keras_model

    train_idx = subsample(np.flatnonzero(train_mask), manifest, spec.max_train_images, cfg.seed)
    val_idx = np.flatnonzero(val_mask)
    y = manifest["y"].to_numpy()
    result = training.train_model(spec, x[train_idx], y[train_idx], x[val_idx], y[val_idx],
                                  augmentation=model_augmentation(cfg, spec), seed=cfg.seed, progress=progress,
                                  strategy=cfg.strategy,
                                  sample_weight=training.balancing_weights(spec, manifest, train_idx))
    p_val = keras_model.predict_arrays(result.model, x[val_idx])
    threshold = evaluation.choose_threshold(y[val_idx], p_val, cfg.threshold_rule)
    return result, threshold, p_val, val_idx, train_idx


def read_manifest(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / store.MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: train the run first with `python -m pipeline train`")
    return pd.read_parquet(path)

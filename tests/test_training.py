"""Training schedules: what ``lr_schedule`` does to the rate, what the history records, and that the
option leaves the ids of runs that do not use it alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline import config
from pipeline.config import Augmentation, ModelSpec
from pipeline.training import COSINE_FLOOR, train_model

NO_AUGMENTATION = Augmentation(flip=False, shift=0, zoom=0, brightness=0)


def _train(schedule: str, epochs: int = 4):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(48, 16, 16, 3)).astype(np.uint8)
    y = np.tile([0.0, 1.0], 24).astype(np.float32)
    spec = ModelSpec(name="baseline_cnn", image_size=16, epochs=epochs, batch_size=16, learning_rate=1e-2,
                     early_stopping_patience=0, lr_schedule=schedule)
    return train_model(spec, x[:32], y[:32], x[32:], y[32:], augmentation=NO_AUGMENTATION, seed=3)


def test_cosine_schedule_decays_the_rate_epoch_by_epoch_and_the_history_records_it():
    rates = _train("cosine").history["learning_rate"].to_numpy()
    assert rates[0] == pytest.approx(1e-2)
    assert np.all(np.diff(rates) < 0)
    # 4 epochs of 2 steps: epoch 4 starts at step 6 of 8 on the cosine
    expected = 1e-2 * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + np.cos(np.pi * 6 / 8)))
    assert rates[-1] == pytest.approx(expected, rel=1e-4)


def test_constant_schedule_keeps_the_rate():
    rates = _train("constant", epochs=2).history["learning_rate"].to_numpy()
    assert rates == pytest.approx([1e-2, 1e-2])


def test_an_unknown_schedule_is_named_in_the_error():
    raw = {"data": [], "models": [{"name": "baseline_cnn", "lr_schedule": "linear"}]}
    with pytest.raises(config.ConfigError, match="lr_schedule must be one of constant, cosine, got 'linear'"):
        config.from_dict(raw)


def test_the_schedule_changes_the_run_id_only_when_used():
    cfg = config.load("default")
    fingerprint = config.config_fingerprint(cfg)
    assert all("lr_schedule" not in m for m in fingerprint["models"])  # runs made before it keep their ids
    cosine = dataclasses.replace(cfg, models=(dataclasses.replace(cfg.models[0], lr_schedule="cosine"),
                                              *cfg.models[1:]))
    assert config.config_fingerprint(cosine)["models"][0]["lr_schedule"] == "cosine"
    assert config.from_json_dict(config.to_dict(cosine)).models[0].lr_schedule == "cosine"

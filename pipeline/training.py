"""Training one registry model: optimizer, phases (head, then fine-tuning), early stopping, history.

Transfer models with pretrained weights train in two phases: ``epochs`` with the backbone frozen
(only the head learns), then ``fine_tune_epochs`` with the top ``fine_tune_layers`` of the backbone
unfrozen at ``fine_tune_learning_rate``. A transfer model without pretrained weights, and every
custom CNN, trains all its layers for ``epochs``. Early stopping watches validation AUC and
restores the best weights, across phases too: when no fine-tuning epoch beats the head phase's best
validation AUC (a rate too high for the backbone can wipe out its pretrained features), the model
keeps the head phase's weights (``TrainResult.kept_phase``). ``lr_schedule = "cosine"`` decays each
phase's rate along a cosine to 1% of it by the phase's last step; the history records the rate each
epoch started with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from pipeline import inputs, store
from pipeline.config import Augmentation, ModelSpec
from pipeline.models import REGISTRY, backbone_layers, build_model, set_backbone_trainable
from pipeline.progress import ProgressFn, report

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True),
}
HISTORY_COLUMNS = store.HISTORY_COLUMNS


@dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame
    train_seconds: float
    kept_phase: str = ""  # the phase whose weights the model keeps (early stopping picks the best epoch)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    try:
        return OPTIMIZERS[name.lower()](learning_rate=learning_rate)
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None


def class_weights(y: np.ndarray) -> dict[int, float] | None:
    """Balanced class weights when the classes are imbalanced (minority under 45%), else None."""
    y = np.asarray(y).ravel()
    fake_fraction = float(y.mean())
    if 0.45 <= fake_fraction <= 0.55:
        return None
    n = len(y)
    return {0: n / (2 * max(1, (y == 0).sum())), 1: n / (2 * max(1, (y == 1).sum()))}


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, progress: ProgressFn, stage: str, total_steps: int):
        super().__init__()
        self.progress, self.stage, self.total, self.done = progress, stage, total_steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        report(self.progress, self.stage, min(self.done, self.total), self.total)

    def on_train_end(self, logs=None):  # early stopping ends a phase before its last step
        if self.done < self.total:
            report(self.progress, self.stage, self.total, self.total)


COSINE_FLOOR = 0.01  # a cosine schedule ends its phase at this fraction of the phase's rate


def learning_rate_schedule(spec: ModelSpec, learning_rate: float, total_steps: int):
    """The rate of one training phase of ``total_steps`` steps: ``learning_rate`` itself, or a
    cosine decay from it to ``COSINE_FLOOR`` of it (``spec.lr_schedule``)."""
    if spec.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps),
                                                      alpha=COSINE_FLOOR)
    return learning_rate


class _LearningRateLog(keras.callbacks.Callback):
    """The rate each epoch starts with (Keras' history has none for a schedule)."""

    def __init__(self):
        super().__init__()
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))


def _compile(model: keras.Model, spec: ModelSpec, learning_rate) -> None:
    model.compile(
        optimizer=make_optimizer(spec.optimizer, learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=spec.label_smoothing),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )


def _fit(model, spec, train_ds, val_ds, epochs, weights, phase, progress, steps_per_epoch) -> pd.DataFrame:
    rates = _LearningRateLog()
    callbacks = [_ProgressCallback(progress, f"{spec.name}: {phase}", epochs * steps_per_epoch), rates]
    if spec.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=spec.early_stopping_patience,
                                                       restore_best_weights=True))
    hist = model.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=weights,
                     callbacks=callbacks, verbose=0, shuffle=False)  # the dataset shuffles
    df = pd.DataFrame(hist.history)
    df["phase"] = phase
    df["learning_rate"] = rates.rates[:len(df)]
    return df


def group_weights(groups: np.ndarray) -> np.ndarray:
    """Per-image loss weights that give every group (e.g. each (dataset, label) pair) the same total
    weight; the mean weight is 1, so the learning rate means the same as without weights."""
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    w = (len(inverse) / (len(counts) * counts))[inverse]
    return w.astype(np.float32)


def balancing_weights(spec: ModelSpec, manifest: pd.DataFrame, train_idx: np.ndarray) -> np.ndarray | None:
    """Loss weights for the training rows ``train_idx`` of ``manifest`` when ``spec.balance_datasets``
    is set (every (dataset, label) group weighs the same), else None."""
    if not spec.balance_datasets:
        return None
    groups = manifest["dataset"].astype(str).to_numpy()[train_idx] + "|" + manifest["y"].to_numpy()[train_idx].astype(str)
    return group_weights(groups)


def seed_training(seed: int) -> None:
    """Make the training that follows repeatable: seed Python, NumPy and TensorFlow
    (``keras.utils.set_random_seed``) and switch on TensorFlow's op determinism
    (``tf.config.experimental.enable_op_determinism``, process-wide). Without the switch, TensorFlow's
    multi-threaded CPU kernels sum in a varying order: two trainings of `default`'s models with the same
    config, data and seed gave different models (spectrum test AUC 0.540 and 0.534, custom_cnn 0.505 and
    0.482); with it they give the same predictions bit for bit, at little cost (within timing noise on
    `default`, 13% of the Keras training time on `best`: BENCHMARKS.md, "Deterministic training"). Same
    library versions and CPU assumed: other hardware may sum differently."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


def train_model(spec: ModelSpec, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                *, augmentation: Augmentation, seed: int = 42, progress: ProgressFn = None,
                strategy: str = "default", sample_weight: np.ndarray | None = None) -> TrainResult:
    """Train ``spec`` under the ``tf.distribute`` strategy named ``strategy`` (see
    ``pipeline.strategy``): built, compiled and fitted inside its scope.
    ``sample_weight``: per training image loss weights (then no class weights are added)."""
    from pipeline.strategy import make_strategy

    seed_training(seed)
    start = time.perf_counter()
    # The default strategy enters no scope at all: single-device training stays exactly as before.
    with contextlib.nullcontext() if strategy == "default" else make_strategy(strategy).scope():
        model = build_model(spec)
        train_ds = inputs.make_dataset(x_train, y_train, batch_size=spec.batch_size, training=True,
                                       augmentation=augmentation, seed=seed, sample_weight=sample_weight)
        val_ds = inputs.make_dataset(x_val, y_val, batch_size=max(spec.batch_size, 64))
        steps = int(np.ceil(len(x_train) / spec.batch_size))
        weights = class_weights(y_train) if sample_weight is None else None
        is_transfer = REGISTRY[spec.registry_name].family == "transfer" and bool(backbone_layers(model))
        pretrained = spec.weights.lower() != "none"
        histories, kept_phase = [], ""
        if is_transfer and pretrained:
            set_backbone_trainable(model, False)
            _compile(model, spec, learning_rate_schedule(spec, spec.learning_rate, spec.epochs * steps))
            if spec.epochs:
                histories.append(_fit(model, spec, train_ds, val_ds, spec.epochs, weights, "head", progress, steps))
            head_weights = model.get_weights() if spec.epochs and spec.fine_tune_epochs else None
            if spec.fine_tune_epochs:
                set_backbone_trainable(model, True, top_layers=spec.fine_tune_layers)
                _compile(model, spec, learning_rate_schedule(spec, spec.fine_tune_learning_rate,
                                                             spec.fine_tune_epochs * steps))
                histories.append(_fit(model, spec, train_ds, val_ds, spec.fine_tune_epochs, weights, "fine_tune",
                                      progress, steps))
                if spec.early_stopping_patience and head_weights is not None and \
                        _best_auc(histories[-1]) < _best_auc(histories[0]):
                    model.set_weights(head_weights)  # fine-tuning made it worse: back to the best of the head phase
                    kept_phase = "head"
        else:
            if is_transfer:
                set_backbone_trainable(model, True)
            epochs = max(1, spec.epochs)
            _compile(model, spec, learning_rate_schedule(spec, spec.learning_rate, epochs * steps))
            histories.append(_fit(model, spec, train_ds, val_ds, epochs, weights, "train", progress, steps))
    if strategy != "default":
        # Scoring runs outside the strategy: under MirroredStrategy, predict_on_batch feeds the whole
        # batch to every replica and returns replicas x N rows. Hand back a plain copy (same weights).
        plain = build_model(dataclasses.replace(spec, weights="none"))
        plain.set_weights(model.get_weights())
        model = plain
    history = pd.concat(histories, ignore_index=True)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history = history.reindex(columns=HISTORY_COLUMNS)
    return TrainResult(model=model, history=history, train_seconds=time.perf_counter() - start,
                       kept_phase=kept_phase or str(history["phase"].iloc[-1]))


def _best_auc(history: pd.DataFrame) -> float:
    auc = history["val_auc"].to_numpy(dtype=float) if "val_auc" in history else np.array([])
    return float(np.nanmax(auc)) if np.isfinite(auc).any() else -np.inf


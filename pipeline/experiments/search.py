"""Hyper-parameter search over the custom CNN family (model ``searched_cnn``) with Keras Tuner.

Searched: number of blocks (2 to 4, fewer for small images), base filters (8, 16, 32; doubling per
block), kernel size (3, 5), dense units (32, 64, 128), dropout (0 to 0.5), flatten vs global
average pooling, and the Adam learning rate (1e-2 to 1e-4). ``search_tuner`` = ``random``
(RandomSearch, ``search_max_trials`` trials of ``search_epochs`` epochs) or ``hyperband``
(Hyperband up to ``search_epochs`` epochs per model). The objective is validation AUC.

Written to ``experiments/search/<key>/``: ``trials.csv`` (one row per trial: hyper-parameters,
status, best validation AUC and accuracy, seconds), ``best.json`` (the best parameters and the
``[[models]]`` entry that trains them), ``tuner/`` (Keras Tuner's own JSON and weight files, which
let an interrupted search resume). The best parameters are then trained like any model for
``search_final_epochs`` into ``models/searched_cnn`` and added to summary.csv.

Keras Tuner needs ``tensorboard`` installed: without it every trial fails while ``search()``
returns normally; here a search with no completed trial is an error.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, store
from pipeline.config import ModelSpec, augmentation_fingerprint
from pipeline.evaluation import add_to_summary
from pipeline.experiments import Log, experiment_dir, is_done, mark_done, subsample
from pipeline.experiments._train import arrays, base_spec, read_manifest
from pipeline.progress import report

MODEL = "searched_cnn"
HP_COLUMNS = ["blocks", "filters", "kernel_size", "dense_units", "dropout", "pooling", "learning_rate"]
COLUMNS = ["trial_id", "status", "val_auc", "val_accuracy", "val_loss", "best_epoch", "seconds"] + HP_COLUMNS


class SearchFailed(RuntimeError):
    """No trial of the search completed."""


def max_blocks(image_size: int) -> int:
    return int(max(1, min(4, math.floor(math.log2(image_size)) - 2)))


def _hypermodel(image_size: int, batch_size: int, times: dict):
    import keras
    import keras_tuner as kt

    from pipeline.models import build_model

    class SearchedCNN(kt.HyperModel):
        def build(self, hp):
            top = max_blocks(image_size)
            params = {"blocks": hp.Int("blocks", min(2, top), top), "filters": hp.Choice("filters", [8, 16, 32]),
                      "kernel_size": hp.Choice("kernel_size", [3, 5]),
                      "dense_units": hp.Choice("dense_units", [32, 64, 128]),
                      "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
                      "pooling": hp.Choice("pooling", ["gap", "flatten"])}
            lr = hp.Choice("learning_rate", [1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
            model = build_model(ModelSpec(name=MODEL, image_size=image_size, params=params))
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="binary_crossentropy",
                          metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
            return model

        def fit(self, hp, model, *args, **kwargs):
            start = time.perf_counter()
            history = super().fit(hp, model, *args, **kwargs)
            times[json.dumps(hp.values, sort_keys=True)] = time.perf_counter() - start
            return history

    return SearchedCNN()


def _progress_callback(progress, total_epochs: int):
    import keras

    class EpochProgress(keras.callbacks.Callback):
        done = 0

        def on_epoch_end(self, epoch, logs=None):
            EpochProgress.done += 1
            report(progress, "search: epochs over all trials", min(EpochProgress.done, total_epochs), total_epochs)

    return EpochProgress()


def _plain(v):
    """JSON/TOML-friendly value: numpy scalars to Python, floats without step artefacts (0.30000000000000004)."""
    v = v.item() if hasattr(v, "item") else v
    return round(v, 8) if isinstance(v, float) else v


def trials_table(tuner, times: dict) -> pd.DataFrame:
    rows = []
    for trial in tuner.oracle.trials.values():
        hps = trial.hyperparameters.values
        row = {"trial_id": trial.trial_id, "status": str(trial.status), **{k: _plain(hps.get(k)) for k in HP_COLUMNS},
               "seconds": times.get(json.dumps(hps, sort_keys=True))}
        for metric in ("val_auc", "val_accuracy", "val_loss"):
            try:
                row[metric] = trial.metrics.get_best_value(metric) if trial.metrics.exists(metric) else None
            except (KeyError, ValueError):
                row[metric] = None
        row["best_epoch"] = trial.best_step
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["val_auc", "trial_id"], ascending=[False, True], na_position="last").reset_index(drop=True)


def run_search(cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path:
    import keras_tuner as kt

    from pipeline import detectors, inputs
    from pipeline.strategy import make_strategy

    run_dir = Path(run_dir)
    exp = cfg.experiments
    manifest = read_manifest(run_dir)
    size = exp.search_image_size
    batch_size = base_spec(cfg).batch_size
    settings = {"tuner": exp.search_tuner, "max_trials": exp.search_max_trials, "epochs": exp.search_epochs,
                "image_size": size, "max_train_images": exp.search_max_train_images, "seed": cfg.seed,
                "batch_size": batch_size, "final_epochs": exp.search_final_epochs,
                "augmentation": augmentation_fingerprint(cfg.augmentation), "data": artifacts.manifest_hash(manifest)[:16]}
    out = experiment_dir(run_dir, "search", settings)
    if is_done(out) and not force and store.is_model_done(run_dir, MODEL):
        log(f"search: cached ({out.relative_to(run_dir)})")
        add_to_summary(run_dir, [MODEL])
        return out
    (out / store.DONE).unlink(missing_ok=True)
    artifacts.write_json(out / "settings.json", settings)
    x = arrays(cfg, manifest, size, progress)
    split, y = manifest["split"].to_numpy(), manifest["y"].to_numpy()
    train_idx = subsample(np.flatnonzero(split == "train"), manifest, exp.search_max_train_images, cfg.seed)
    val_idx = np.flatnonzero(split == "val")
    from pipeline.training import seed_training

    seed_training(cfg.seed)
    train_ds = inputs.make_dataset(x[train_idx], y[train_idx], batch_size=batch_size, training=True,
                                   augmentation=cfg.augmentation, seed=cfg.seed)
    val_ds = inputs.make_dataset(x[val_idx], y[val_idx], batch_size=max(64, batch_size))
    times: dict = {}
    common = dict(objective=kt.Objective("val_auc", direction="max"), seed=cfg.seed, directory=str(out),
                  project_name="tuner", overwrite=force)
    if cfg.strategy != "default":
        common["distribution_strategy"] = make_strategy(cfg.strategy)
    hypermodel = _hypermodel(size, batch_size, times)
    if exp.search_tuner == "hyperband":
        tuner = kt.Hyperband(hypermodel, max_epochs=max(2, exp.search_epochs), factor=3, **common)
        total = max(1, exp.search_epochs) * 10
    else:
        tuner = kt.RandomSearch(hypermodel, max_trials=exp.search_max_trials, **common)
        total = exp.search_max_trials * exp.search_epochs
    log(f"search: {exp.search_tuner} over {MODEL} at {size}px, {len(train_idx)} training images "
        f"({exp.search_max_trials if exp.search_tuner == 'random' else 'hyperband'} trials x {exp.search_epochs} epochs)")
    tuner.search(train_ds, validation_data=val_ds, epochs=exp.search_epochs, verbose=0,
                 callbacks=[_progress_callback(progress, total)])
    table = trials_table(tuner, times)
    artifacts.write_csv(out / "trials.csv", table)
    completed = table[table["status"] == "COMPLETED"]
    if completed.empty or completed["val_auc"].isna().all():
        raise SearchFailed(f"no search trial completed ({len(table)} trial(s), statuses "
                           f"{sorted(table['status'].unique())}); Keras Tuner needs tensorboard installed "
                           f"(`pip install tensorboard`); trial logs are in {out / 'tuner'}")
    best = tuner.oracle.get_best_trials(1)[0]
    hps = dict(best.hyperparameters.values)
    lr = float(hps.pop("learning_rate"))
    params = {k: _plain(v) for k, v in hps.items()}
    spec = ModelSpec(name=MODEL, image_size=size, epochs=exp.search_final_epochs, batch_size=batch_size,
                     optimizer="adam", learning_rate=lr, max_train_images=exp.search_max_train_images,
                     early_stopping_patience=base_spec(cfg).early_stopping_patience, params=params)
    toml_params = ", ".join(f"{k} = {json.dumps(v)}" for k, v in params.items())
    artifacts.write_json(out / "best.json", {
        "trial_id": best.trial_id, "val_auc": best.score, "learning_rate": lr, "params": params,
        "spec": dataclasses.asdict(spec),
        "config_entry": f'[[models]]\nname = "{MODEL}"\nimage_size = {size}\nlearning_rate = {lr:g}\n'
                        f"params = {{{toml_params}}}\n"})
    log(f"search: best trial {best.trial_id} (val AUC {best.score:.3f}): {params}, learning rate {lr:g}; "
        f"training {MODEL} for {spec.epochs} epochs")
    if MODEL in cfg.model_names:
        log(f"search: note: the config also lists {MODEL}; models/{MODEL} now holds the search's best parameters")
    metrics = detectors.kind("keras").train(detectors.TrainContext(
        spec=spec, cfg=cfg, run_dir=run_dir, manifest=manifest, images_at=lambda _size: x, progress=progress, log=log))
    add_to_summary(run_dir, [MODEL])
    mark_done(out, best_trial=best.trial_id)
    auc = metrics["scopes"]["all"]["roc_auc"]
    log(f"{MODEL}: test AUC {'n/a' if auc is None else round(auc, 3)}, "
        f"accuracy {metrics['scopes']['all']['at_threshold']['accuracy']:.3f}")
    return out

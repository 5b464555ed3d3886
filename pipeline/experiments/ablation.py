"""Ablation: optimizer x learning rate for one model (``[experiments] model``).

Every cell of ``optimizers`` x ``learning_rates`` trains the model from the same seed for
``ablation_epochs`` epochs at ``image_size`` (early stopping off, so every cell gets the same
budget) on the run's training split. Result: ``experiments/ablation/<key>/ablation.csv`` with
columns optimizer, learning_rate, epochs_run, best_val_auc, final_val_auc, final_val_loss,
final_loss, test_auc, test_accuracy, threshold, train_seconds, diverged. Cells are written one by
one (``cells/``), so a killed grid resumes.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, evaluation, store
from pipeline.experiments import Log, experiment_dir, is_done, mark_done
from pipeline.experiments._train import arrays, base_spec, read_manifest, spec_settings, train_and_score, training_key
from pipeline.progress import report

COLUMNS = ["optimizer", "learning_rate", "epochs_run", "best_val_auc", "final_val_auc", "final_val_loss",
           "final_loss", "test_auc", "test_accuracy", "threshold", "train_seconds", "diverged"]


def grid(cfg) -> list[tuple[str, float]]:
    exp = cfg.experiments
    return [(o.lower(), float(lr)) for o in exp.optimizers for lr in exp.learning_rates]


def run_ablation(cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path:
    from pipeline.detectors import keras_model

    run_dir = Path(run_dir)
    exp = cfg.experiments
    manifest = read_manifest(run_dir)
    spec = base_spec(cfg, image_size=exp.image_size, epochs=exp.ablation_epochs, early_stopping_patience=0,
                     max_train_images=exp.max_train_images or base_spec(cfg).max_train_images)
    cells = grid(cfg)
    out = experiment_dir(run_dir, "ablation", {
        **training_key(cfg, spec), "grid": cells, "seed": cfg.seed, "rule": cfg.threshold_rule,
        "data": artifacts.manifest_hash(manifest)[:16]})
    if is_done(out) and not force:
        log(f"ablation: cached ({out.relative_to(run_dir)})")
        return out
    (out / store.DONE).unlink(missing_ok=True)
    artifacts.write_json(out / "settings.json", {"model": spec.name, "spec": spec_settings(spec), "grid": cells})
    x = arrays(cfg, manifest, spec.image_size, progress)
    split, y = manifest["split"].to_numpy(), manifest["y"].to_numpy()
    test_idx = np.flatnonzero(split == "test")
    for i, (opt, lr) in enumerate(cells):
        cell = out / "cells" / f"{opt}_{lr:g}.json"
        report(progress, f"ablation: {spec.name} optimizer x learning rate", i, len(cells))
        if cell.exists() and not force:
            continue
        cell_spec = dataclasses.replace(spec, optimizer=opt, learning_rate=lr)
        result, threshold, _, _, _ = train_and_score(cfg, cell_spec, manifest, x, split == "train", split == "val")
        h = result.history
        p_test = keras_model.predict_arrays(result.model, x[test_idx])
        finite = bool(np.isfinite(h["loss"]).all() and np.isfinite(p_test).all())
        m = evaluation.scope_metrics(y[test_idx], np.nan_to_num(p_test, nan=0.5), threshold)
        row = {"optimizer": opt, "learning_rate": lr, "epochs_run": int(len(h)),
               "best_val_auc": float(h["val_auc"].max()), "final_val_auc": float(h["val_auc"].iloc[-1]),
               "final_val_loss": float(h["val_loss"].iloc[-1]), "final_loss": float(h["loss"].iloc[-1]),
               "test_auc": m["roc_auc"], "test_accuracy": m["at_threshold"]["accuracy"], "threshold": threshold,
               "train_seconds": round(result.train_seconds, 2), "diverged": not finite}
        artifacts.write_json(cell, row)
        log(f"ablation: {opt} lr={lr:g}: best val AUC {row['best_val_auc']:.3f}, test AUC "
            f"{'n/a' if row['test_auc'] is None else round(row['test_auc'], 3)}")
    report(progress, f"ablation: {spec.name} optimizer x learning rate", len(cells), len(cells))
    table = pd.DataFrame([artifacts.read_json(out / "cells" / f"{o}_{lr:g}.json") for o, lr in cells], columns=COLUMNS)
    artifacts.write_csv(out / "ablation.csv", table)
    mark_done(out)
    return out

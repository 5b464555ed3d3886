"""Cross-dataset generalisation: train a model on each dataset alone, test it on every dataset.

With datasets D1..Dk in the run, the ``[experiments] model`` is trained k times (at
``image_size``, for ``crossdataset_epochs``, on the training split of one dataset, threshold
chosen on that dataset's validation split) and scored on the test split of every dataset. The
result is the k x k generalisation matrix (diagonal = in-domain). ``crossdataset_models`` adds the
matrix of detectors of the run that can be re-fitted per dataset cheaply (kind ``clip_linear``: one
head per dataset on the cached CLIP embeddings, :func:`pipeline.detectors.clip_linear.per_dataset_rows`).
``experiments/crossdataset/<key>/matrix.csv`` has columns model, train_on, test_on, in_domain, n,
roc_auc, accuracy, balanced_accuracy, threshold, n_train, train_seconds. One file per model and training
dataset (``cells/<model>__<dataset>.csv``) is written as soon as it is done, so a killed run resumes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, evaluation, store
from pipeline.experiments import Log, experiment_dir, is_done, mark_done
from pipeline.experiments._train import arrays, base_spec, read_manifest, spec_settings, train_and_score, training_key

COLUMNS = ["model", "train_on", "test_on", "in_domain", "n", "roc_auc", "accuracy", "balanced_accuracy", "threshold",
           "n_train", "train_seconds"]


def spec_for(cfg):
    """The matrix's spec: ``crossdataset_epochs`` replaces the epochs of the training phase, which
    for a pretrained transfer model with fine-tuning is the fine-tuning (its head epochs are kept).
    ``[experiments] model`` may name a Keras model of the run (e.g. a fine-tuned specialist); its recipe is
    then trained on each data set in turn."""
    exp = cfg.experiments
    spec = base_spec(cfg)
    fine_tuned = spec.fine_tune_epochs > 0 and spec.weights.lower() != "none"
    epochs = {"fine_tune_epochs": exp.crossdataset_epochs} if fine_tuned else {"epochs": exp.crossdataset_epochs}
    return base_spec(cfg, image_size=exp.image_size, max_train_images=exp.max_train_images or spec.max_train_images,
                     datasets=(), **epochs)  # a specialist of the run is trained here on each data set in turn


def matrix_rows(train_on: str, test: pd.DataFrame, p_test: np.ndarray, threshold: float, n_train: int,
                seconds: float, model: str = "") -> list[dict]:
    rows = []
    test = test.assign(p_fake=p_test)
    for test_on, part in test.groupby("dataset", sort=True):
        m = evaluation.scope_metrics(part["y"], part["p_fake"], threshold)
        rows.append({"model": model, "train_on": train_on, "test_on": str(test_on), "in_domain": train_on == test_on, "n": m["n"],
                     "roc_auc": m["roc_auc"], "accuracy": m["at_threshold"]["accuracy"],
                     "balanced_accuracy": m["at_threshold"]["balanced_accuracy"], "threshold": threshold,
                     "n_train": n_train, "train_seconds": round(seconds, 2)})
    return rows


METRIC_SHORT = {"roc_auc": "AUC", "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def transfer_findings(matrix: pd.DataFrame, metric: str = "roc_auc") -> list[str]:
    """What a generalisation matrix shows, one markdown sentence per training dataset, judged
    against sampling noise (:func:`pipeline.evaluation.above_chance`): a row whose model is at chance
    on its own data set learned nothing, so its other cells say nothing about transfer. When no row
    learned, the first sentence says the matrix cannot show transfer at all. The sentences quote
    ``metric`` (a column of the matrix); whether a cell beats chance is always judged on its ROC-AUC
    (the chance band is a band of AUC), and a sentence says so when ``metric`` is another one."""
    findings: list[str] = []
    learned_any = False
    short = METRIC_SHORT.get(metric, metric)
    is_auc = metric == "roc_auc"

    def val(r) -> str:
        v = r[metric] if isinstance(r, pd.Series) else getattr(r, metric)
        return f"{short} {v:.3f}" if is_auc else f"{short} {v:.3f}, AUC {(r['roc_auc'] if isinstance(r, pd.Series) else r.roc_auc):.3f}"

    for train_on, rows in matrix.groupby(matrix["train_on"].astype(str), sort=True):
        own = rows[rows["in_domain"].astype(bool)]
        others = rows[~rows["in_domain"].astype(bool)].sort_values("roc_auc", ascending=False)
        if not len(own):
            continue
        auc, n = own["roc_auc"].iloc[0], int(own["n"].iloc[0])
        if not evaluation.above_chance(auc, n):
            findings.append(f"Trained on **{train_on}**, the model is at chance even on {train_on}'s own test split "
                            f"(AUC {auc:.3f} on {n} images; chance gives 0.5 ± {evaluation.chance_auc_band(n):.3f}), "
                            "so its other cells say nothing about transfer.")
            continue
        learned_any = True
        carries = [f"**{r.test_on}** ({val(r)})" for r in others.itertuples()
                   if evaluation.above_chance(r.roc_auc, r.n)]
        head = f"Trained on **{train_on}** ({val(own.iloc[0])} on its own test split)"
        if carries:
            findings.append(f"{head}, it carries over to " + ", ".join(carries) + ".")
        elif len(others):
            best = others.iloc[0]
            findings.append(f"{head}, it carries over to none of the others: the best, {best['test_on']} "
                            f"({val(best)}), is within chance on {int(best['n'])} images.")
        else:
            findings.append(f"{head}.")
    if findings and not learned_any:
        findings.insert(0, "The model learned none of the data sets at this budget, so this matrix cannot show "
                           "transfer: give it a stronger `[experiments] model` or more `crossdataset_epochs`.")
    return findings


def run_crossdataset(cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path | None:
    from pipeline.detectors import keras_model

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    datasets = sorted(manifest["dataset"].unique().tolist())
    if len(datasets) < 2:
        log(f"crossdataset: the run has one dataset ({datasets[0]}); the generalisation matrix needs at least two")
        return None
    spec = spec_for(cfg)
    extra = [m for m in cfg.experiments.crossdataset_models if m != spec.name]
    extra_settings = {}
    for m in extra:
        if m not in cfg.model_names or cfg.model(m).kind != "clip_linear" or not store.is_model_done(run_dir, m):
            raise ValueError(f"crossdataset_models: {m!r} is not a finished clip_linear detector of this run")
        extra_settings[m] = {"spec": spec_settings(cfg.model(m)), "stamp": store.model_stamp(run_dir, m)}
    out = experiment_dir(run_dir, "crossdataset", {
        **training_key(cfg, spec), "datasets": datasets, "seed": cfg.seed, "rule": cfg.threshold_rule,
        "data": artifacts.manifest_hash(manifest)[:16], **({"extra": extra_settings} if extra else {})})
    if is_done(out) and not force:
        log(f"crossdataset: cached ({out.relative_to(run_dir)})")
        return out
    (out / store.DONE).unlink(missing_ok=True)
    artifacts.write_json(out / "settings.json", {"model": spec.name, "spec": spec_settings(spec), "datasets": datasets,
                                                 "models": [spec.name, *extra]})
    x = arrays(cfg, manifest, spec.image_size, progress)
    split, ds = manifest["split"].to_numpy(), manifest["dataset"].to_numpy()
    test_idx = np.flatnonzero(split == "test")
    for train_on in datasets:
        cell = out / "cells" / f"{spec.name}__{train_on}.csv"
        if cell.exists() and not force:
            continue
        log(f"crossdataset: {spec.name} trained on {train_on} ({spec.epochs} + {spec.fine_tune_epochs} fine-tuning epochs at {spec.image_size}px)")
        result, threshold, _, _, train_idx = train_and_score(
            cfg, spec, manifest, x, (split == "train") & (ds == train_on), (split == "val") & (ds == train_on),
            progress)
        p_test = keras_model.predict_arrays(result.model, x[test_idx])
        rows = matrix_rows(train_on, manifest.iloc[test_idx], p_test, threshold, len(train_idx), result.train_seconds,
                           spec.name)
        artifacts.write_csv(cell, pd.DataFrame(rows, columns=COLUMNS))
    for m in extra:
        from pipeline.detectors import clip_linear

        if all((out / "cells" / f"{m}__{d}.csv").exists() for d in datasets) and not force:
            continue
        log(f"crossdataset: {m} (frozen CLIP) with a head fitted on each data set's training sample")
        for train_on, p_test, threshold, n_train, seconds in clip_linear.per_dataset_rows(cfg, cfg.model(m), manifest,
                                                                                           progress):
            rows = matrix_rows(train_on, manifest.iloc[test_idx], p_test, threshold, n_train, seconds, m)
            artifacts.write_csv(out / "cells" / f"{m}__{train_on}.csv", pd.DataFrame(rows, columns=COLUMNS))
    cells = sorted((out / "cells").glob("*__*.csv"))
    matrix = pd.concat([pd.read_csv(c) for c in cells], ignore_index=True)
    artifacts.write_csv(out / "matrix.csv", matrix[COLUMNS])
    mark_done(out)
    for m, part in matrix.groupby("model", sort=False):
        pivot = part.pivot(index="train_on", columns="test_on", values="roc_auc")
        log(f"crossdataset {m}: test AUC (rows: trained on, columns: tested on)\n" + pivot.round(3).to_string())
    return out

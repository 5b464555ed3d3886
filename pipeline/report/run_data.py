"""What the run report's sections share, read once from the run folder: :class:`RunData` and :func:`load`
(the model cards of :mod:`pipeline.report.model_card` read it too)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.results import ArtifactError, ExperimentNotRun, Run

ROBUSTNESS_COLUMNS = {"model", "perturbation", "level", "dataset", "n", "roc_auc", "auc_drop"}  # what the report reads


@dataclass
class RunData:
    """What several sections share, read once: the run, its summary, finished models, their
    metrics.json and test predictions (``None`` when unreadable), a colour per model and the
    verdict model (the run's combined model, else its best single model by pooled test ROC-AUC)."""

    run: Run
    summary: pd.DataFrame
    models: list[str]
    metrics: dict[str, dict]
    test_predictions: dict[str, pd.DataFrame | None]
    colors: dict[str, str]
    verdict_model: str | None
    verdict_combined: bool  # the verdict model is the run's combined model (else its best single model)
    robustness: pd.DataFrame | None
    robustness_settings: dict
    robustness_error: str | None = None  # why a sweep the run has cannot be shown


def load(run: Run) -> RunData:
    """Read what the report needs from ``run``; a model whose metrics.json is unreadable is left out."""
    from pipeline import checking, figures
    from pipeline.detectors import combined as ensemble

    summary = run.summary()
    metrics: dict[str, dict] = {}
    for m in run.models():
        try:
            metrics[m] = run.metrics(m)
        except ArtifactError:
            continue
    models = list(metrics)
    preds: dict[str, pd.DataFrame | None] = {}
    for m in models:
        try:
            p = run.predictions(m)
            preds[m] = p[p["split"] == "test"].reset_index(drop=True)
        except ArtifactError:
            preds[m] = None
    from pipeline import verdict as verdict_mod

    verdict = verdict_mod.verdict_model_name(run.path)  # the model the Check page's verdict is built on
    if verdict not in models or preds.get(verdict) is None:
        verdict = checking.best_model(summary, [m for m in models if preds.get(m) is not None])
    combined = verdict == ensemble.combiner_name(run.path)
    table, settings, error = None, {}, None
    try:
        table, settings = run.experiment("robustness"), run.experiment_settings("robustness")
    except ExperimentNotRun:
        pass
    except ArtifactError as exc:
        error = str(exc)
    lacking = ROBUSTNESS_COLUMNS - set(table.columns) if table is not None else set()
    if lacking:
        table, error = None, (f"The run's robustness table lacks the column(s) {', '.join(sorted(lacking))} "
                              "(written by an older pipeline); rerun the sweep with `python -m pipeline experiment "
                              f"robustness --run {run.run_id} --force`.")
    return RunData(run, summary, models, metrics, preds, figures.model_colors(models), verdict, combined, table,
                   settings, error)

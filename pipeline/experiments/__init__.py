"""Experiments an analyst runs on a trained run: search, ablation, ensemble, robustness, cross-dataset.

One module per idea (``search``, ``ablation``, ``ensemble``, ``robustness``, ``crossdataset``, plus
``strategy`` for ``tf.distribute``). Settings come from the config's ``[experiments]`` section
(:class:`pipeline.config.ExperimentConfig`). Results live in the run folder::

    <run-id>/experiments/<name>/<key>/     key = 12 hex of sha256 over the experiment's settings
        settings.json                      what was run (and with which models / data)
        <table>                            trials.csv | ablation.csv | robustness.csv | matrix.csv
        ...                                partial files, so an interrupted experiment resumes
        done.json                          written last; a folder without it is incomplete
    <run-id>/models/searched_cnn/          the search's best trial, retrained like any model
    <run-id>/models/ensemble_mean/         the ensembles, laid out like any model (no model.keras;
    <run-id>/models/ensemble_stacked/      stacked: stacking.json holds the logistic regression)
    <run-id>/models/ensemble_routed/       routed: routing.json holds the router and its stackers)

Everything is written atomically with :mod:`pipeline.artifacts` (CSV, Parquet, JSON; no pickle).
This module imports neither TensorFlow nor Keras: ``pipeline.results`` and the dashboard use it.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline import artifacts

NAMES = ("search", "ablation", "ensemble", "robustness", "crossdataset")
EXPERIMENTS_DIR = "experiments"
TABLES = {"search": "trials.csv", "ablation": "ablation.csv", "robustness": "robustness.csv",
          "crossdataset": "matrix.csv"}
EXTRA_MODELS = ("searched_cnn", "ensemble_mean", "ensemble_stacked", "ensemble_routed")  # model folders experiments write
SETTINGS_FILE = "settings.json"

Log = Callable[[str], None]


def command(name: str, run_id: str | None = None) -> str:
    """The command that runs experiment ``name`` (shown by pages whose experiment is missing)."""
    return f"python -m pipeline experiment {name}" + (f" --run {run_id}" if run_id else "")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def experiment_dir(run_dir: Path, name: str, settings: dict[str, Any]) -> Path:
    """``<run>/experiments/<name>/<key>``: the key hashes the settings (the run id is the parent)."""
    key = artifacts.stable_hash({"experiment": name, "settings": settings, "v": 1})[:12]
    return Path(run_dir) / EXPERIMENTS_DIR / name / key


def is_done(folder: Path) -> bool:
    return (Path(folder) / artifacts.DONE_FILE).exists()


def mark_done(folder: Path, **extra) -> None:
    artifacts.write_json(Path(folder) / artifacts.DONE_FILE, {"finished": now(), **extra})


def latest_dir(run_dir: Path, name: str) -> Path | None:
    """The most recently finished result folder of experiment ``name`` (None if it never finished)."""
    base = Path(run_dir) / EXPERIMENTS_DIR / name
    if not base.is_dir():
        return None
    done = [d for d in base.iterdir() if d.is_dir() and is_done(d)]
    if not done:
        return None
    return max(done, key=lambda d: ((d / artifacts.DONE_FILE).stat().st_mtime, d.name))


def model_stamp(run_dir: Path, model: str) -> str:
    """Identifies one training of ``model``: its done.json content (rewritten on every retrain)."""
    f = artifacts.model_dir(run_dir, model) / artifacts.DONE_FILE
    return f.read_text() if f.exists() else ""


def subsample(idx: np.ndarray, manifest: pd.DataFrame, limit: int, seed: int) -> np.ndarray:
    """A fixed-seed subsample of ``idx`` stratified by (dataset, label), at most about ``limit`` rows."""
    from pipeline.data import stratified_subsample

    return stratified_subsample(np.asarray(idx), manifest, limit, seed)


def add_to_summary(run_dir: Path, names: list[str]) -> pd.DataFrame:
    """Put the rows of the finished model folders ``names`` into summary.csv, keeping every other row
    (models trained by ``train`` and rows other steps added)."""
    from pipeline import evaluation

    run_dir = Path(run_dir)
    path = run_dir / "summary.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=evaluation.SUMMARY_COLUMNS)
    old = old[~old["model"].isin(names)]
    rows = []
    for name in names:
        if artifacts.is_model_done(run_dir, name):
            rows += evaluation.summary_rows(artifacts.read_json(artifacts.model_dir(run_dir, name) / "metrics.json"))
    new = pd.DataFrame(rows, columns=evaluation.SUMMARY_COLUMNS)
    summary = pd.concat([df for df in (old, new) if len(df)], ignore_index=True) if len(old) or len(new) else new
    summary = summary.reindex(columns=list(dict.fromkeys(list(evaluation.SUMMARY_COLUMNS) + list(old.columns))))
    artifacts.write_csv(path, summary)
    return summary

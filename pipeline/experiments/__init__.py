"""Experiments an analyst runs on a trained run: search, ablation, robustness, cross-dataset.

One module per idea (``search``, ``ablation``, ``robustness``, ``crossdataset``, plus
``strategy`` for ``tf.distribute``). Settings come from the config's ``[experiments]`` section
(:class:`pipeline.config.ExperimentConfig`). Results live in the run folder::

    <run-id>/experiments/<name>/<key>/     key = 12 hex of sha256 over the experiment's settings
        settings.json                      what was run (and with which models / data)
        <table>                            trials.csv | ablation.csv | robustness.csv | matrix.csv
        ...                                partial files, so an interrupted experiment resumes
        done.json                          written last; a folder without it is incomplete
    <run-id>/models/searched_cnn/          the search's best trial, retrained like any model

The run's combined models (the ensembles and the verdict model) are part of the run, not an experiment:
:mod:`pipeline.detectors.combined`. Everything is written atomically with :mod:`pipeline.artifacts` (CSV, Parquet, JSON; no pickle).
This module imports neither TensorFlow nor Keras: ``pipeline.results`` and the dashboard use it.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline import artifacts, store

NAMES = ("search", "ablation", "robustness", "crossdataset")
EXPERIMENTS_DIR = "experiments"
TABLES = {"search": "trials.csv", "ablation": "ablation.csv", "robustness": "robustness.csv",
          "crossdataset": "matrix.csv"}
EXTRA_MODELS = ("searched_cnn",)  # model folders experiments write
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
    return (Path(folder) / store.DONE).exists()


def mark_done(folder: Path, **extra) -> None:
    artifacts.write_json(Path(folder) / store.DONE, {"finished": now(), **extra})


def finished_dirs(run_dir: Path, name: str) -> list[Path]:
    """Every finished result folder of experiment ``name``, the most recently finished first."""
    base = Path(run_dir) / EXPERIMENTS_DIR / name
    if not base.is_dir():
        return []
    done = [d for d in base.iterdir() if d.is_dir() and is_done(d)]
    return sorted(done, key=lambda d: ((d / store.DONE).stat().st_mtime, d.name), reverse=True)


def latest_dir(run_dir: Path, name: str) -> Path | None:
    """The most recently finished result folder of experiment ``name`` (None if it never finished)."""
    done = finished_dirs(run_dir, name)
    return done[0] if done else None


def subsample(idx: np.ndarray, manifest: pd.DataFrame, limit: int, seed: int) -> np.ndarray:
    """A fixed-seed subsample of ``idx`` stratified by (dataset, label), at most about ``limit`` rows."""
    from pipeline.splits import stratified_subsample

    return stratified_subsample(np.asarray(idx), manifest, limit, seed)

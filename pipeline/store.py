"""The run folder: the one module that knows its layout, its file names and its tables' columns.

A run folder (``artifacts/<run id>/``, layout in ``artifacts/README.md``)::

    run.json  manifest.parquet  skipped.csv  summary.csv
    models/<name>/done.json  metrics.json  predictions.parquet  history.csv  [model.keras | head.skops | ...]
    experiments/<step>/<key>/...   evaluations/<data>-<hash>/...

Every other module asks this one for a path (:func:`run_file`, :func:`model_dir`, :func:`model_file`),
reads through its readers and writes a model's results through :func:`write_model`, the only writer of a
model folder: it removes ``done.json`` first, writes every file atomically (:mod:`pipeline.artifacts`) and
writes ``done.json`` last, so a folder with ``done.json`` is always complete and a killed run leaves none.

:data:`FORMAT` versions the layout. ``run.json`` records it; :func:`check_format` turns a folder written by an
older version into :class:`StaleRunError` ("made by an older version: retrain with --force") instead of a
traceback deep in a reader.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from pipeline import artifacts

FORMAT = 2  # 2: metrics.json names its detector kind; run.json records "format"

# ---- files of a run
RUN_JSON = "run.json"
MANIFEST = "manifest.parquet"
SKIPPED = "skipped.csv"
SUMMARY = "summary.csv"
MODELS_DIR = "models"
EXPERIMENTS_DIR = "experiments"
EVALUATIONS_DIR = "evaluations"

# ---- files of a model folder
DONE = "done.json"  # written last
METRICS = "metrics.json"
PREDICTIONS = "predictions.parquet"
HISTORY = "history.csv"
KERAS_MODEL = "model.keras"

# ---- columns of the tables
MANIFEST_COLUMNS = ["dataset", "label", "y", "path", "relpath", "sha256", "size_bytes", "given_split", "split",
                    "group"]
SKIPPED_COLUMNS = ["dataset", "path", "reason"]
HISTORY_COLUMNS = ["epoch", "phase", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc",
                   "learning_rate"]
PREDICTION_COLUMNS = ["path", "relpath", "dataset", "label", "y", "split", "p_fake"]
SUMMARY_COLUMNS = ["model", "scope", "n", "accuracy", "precision", "recall", "f1", "balanced_accuracy",
                   "recall_real", "recall_fake", "roc_auc", "average_precision", "accuracy_at_0.5", "threshold",
                   "params", "file_size_mb", "train_seconds", "latency_ms_batch1", "latency_ms_batch64"]


class StaleRunError(ValueError):
    """A run folder written by an older version of the pipeline (its layout or files differ)."""


def now() -> str:
    """The current UTC time, ISO 8601 to the second (what done.json and metrics.json record)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- paths

def run_file(run_dir: str | Path, name: str) -> Path:
    """``<run>/<name>`` for one of the run's files (:data:`RUN_JSON`, :data:`MANIFEST`, ...)."""
    return Path(run_dir) / name


def models_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / MODELS_DIR


def model_dir(run_dir: str | Path, model: str) -> Path:
    """``<run>/models/<model>``: everything one detector of the run wrote."""
    return models_dir(run_dir) / model


def model_file(run_dir: str | Path, model: str, name: str) -> Path:
    """``<run>/models/<model>/<name>`` (:data:`METRICS`, :data:`PREDICTIONS`, :data:`KERAS_MODEL`, ...)."""
    return model_dir(run_dir, model) / name


def is_run(path: str | Path) -> bool:
    return run_file(path, RUN_JSON).is_file()


# --------------------------------------------------------------------------- model folders

def is_model_done(run_dir: str | Path, model: str) -> bool:
    """True when ``models/<model>/done.json`` exists: the folder holds every file of a finished model."""
    return model_file(run_dir, model, DONE).exists()


def done_models(run_dir: str | Path) -> list[str]:
    """Names of every finished model folder of the run, sorted."""
    folder = models_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / DONE).is_file())


def read_done(run_dir: str | Path, model: str) -> dict[str, Any]:
    """The model's done.json ({} when missing or unreadable)."""
    try:
        done = artifacts.read_json(model_file(run_dir, model, DONE))
    except (OSError, ValueError):
        return {}
    return done if isinstance(done, dict) else {}


def model_finished_at(run_dir: str | Path, model: str) -> str:
    """When the model finished training: the ISO time in its done.json ("" when missing or unreadable).
    A model copied from another run keeps its time, so this dates the training, not the copy."""
    return str(read_done(run_dir, model).get("finished", ""))


def model_stamp(run_dir: str | Path, model: str) -> str:
    """Identifies one training of a model: done.json's text (rewritten, with a new time, whenever the model
    is retrained) and the size of its model file. Unlike file times it survives copying or moving the run
    folder, so caches keyed on it (embeddings, LIME, combined models) stay valid there."""
    parts = []
    for name, read in ((DONE, lambda f: f.read_text()), (KERAS_MODEL, lambda f: str(f.stat().st_size))):
        try:
            parts.append(read(model_file(run_dir, model, name)))
        except OSError:
            parts.append("-")
    return "|".join(parts)


def read_metrics(run_dir: str | Path, model: str) -> dict[str, Any]:
    """The model's metrics.json (raises OSError / ValueError when missing or unreadable)."""
    return artifacts.read_json(model_file(run_dir, model, METRICS))


def read_predictions(run_dir: str | Path, model: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The model's predictions.parquet: validation and test rows, :data:`PREDICTION_COLUMNS` (+ extras)."""
    return pd.read_parquet(model_file(run_dir, model, PREDICTIONS), columns=columns)


def prediction_rows(manifest: pd.DataFrame, val_idx, p_val, test_idx, p_test) -> pd.DataFrame:
    """predictions.parquet's table: the manifest rows ``val_idx`` then ``test_idx`` (int positions) with their
    split and ``p_fake`` (probabilities of "fake"), :data:`PREDICTION_COLUMNS`."""
    cols = ["path", "relpath", "dataset", "label", "y"]
    man = manifest.reset_index(drop=True)
    return pd.concat([man.iloc[val_idx][cols].assign(split="val", p_fake=p_val),
                      man.iloc[test_idx][cols].assign(split="test", p_fake=p_test)], ignore_index=True)


def write_model(run_dir: str | Path, model: str, *, metrics: dict[str, Any], predictions: pd.DataFrame,
                history: pd.DataFrame | None = None, files: dict[str, Callable[[Path], None]] | None = None,
                done: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one finished model folder: the only writer of ``models/<model>/``.

    Order: done.json is removed, then ``files`` (``{file name: write(path)}``, e.g. the Keras model or a
    fitted head; each writer must write atomically, e.g. through :func:`pipeline.artifacts.atomic_path`),
    predictions.parquet, history.csv (``history`` or an empty table with :data:`HISTORY_COLUMNS`),
    metrics.json (``model`` and ``kind`` filled in when absent) and, last, done.json (``{"finished": time,
    **done}``). Returns the metrics as written.
    """
    out = model_dir(run_dir, model)
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE).unlink(missing_ok=True)
    for name, write in (files or {}).items():
        write(out / name)
    artifacts.write_parquet(out / PREDICTIONS, predictions)
    artifacts.write_csv(out / HISTORY, history if history is not None else pd.DataFrame(columns=HISTORY_COLUMNS))
    metrics = {"model": model, **metrics}
    metrics.setdefault("kind", "keras")
    artifacts.write_json(out / METRICS, metrics)
    artifacts.write_json(out / DONE, {"finished": now(), **(done or {})})
    return metrics


def unmark_done(run_dir: str | Path, model: str) -> None:
    """Remove done.json: the folder is incomplete until :func:`write_model` finishes it again."""
    model_file(run_dir, model, DONE).unlink(missing_ok=True)


# --------------------------------------------------------------------------- run files

def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    return artifacts.read_json(run_file(run_dir, RUN_JSON))


def read_manifest(run_dir: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(run_file(run_dir, MANIFEST), columns=columns)


def run_format(run_json: dict[str, Any]) -> int:
    """The layout version a run.json was written with (1 for folders from before it was recorded)."""
    return int(run_json.get("format", 1))


def check_format(run_dir: str | Path, run_json: dict[str, Any] | None = None) -> None:
    """Raise :class:`StaleRunError` when the run folder was written by an older layout than :data:`FORMAT`.

    The message says what to do: retrain with ``--force`` (models of the same settings are reused)."""
    run_json = read_run_json(run_dir) if run_json is None else run_json
    fmt = run_format(run_json)
    if fmt < FORMAT:
        raise StaleRunError(
            f"run {Path(run_dir).name} was made by an older version of Deepfake Lens (run folder format {fmt}, "
            f"this version reads {FORMAT}): retrain it with `python -m pipeline train --config "
            f"<its config> --force`, or delete the folder")
    if fmt > FORMAT:
        raise StaleRunError(f"run {Path(run_dir).name} was made by a newer version of Deepfake Lens (format {fmt}, "
                            f"this version reads {FORMAT}): update this checkout")

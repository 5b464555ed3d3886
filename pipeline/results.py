"""Read-only access to a trained run in ``artifacts/`` (layout: ``artifacts/README.md``; finding runs:
:mod:`pipeline.runs`).

Shared by the CLI (``info``, ``evaluate``, ``predict``) and the dashboard. The embeddings step's files
(embeddings, PCA, projections, separability) are read by :mod:`pipeline.run_embeddings`. This module never
imports TensorFlow: it reads JSON, CSV and Parquet only, so pages and tests stay fast.

Errors are meant to be shown to a user as they are: a missing run raises :class:`RunNotFound`,
a missing, stale or corrupt file inside a run raises :class:`ArtifactError` (a ``ValueError``);
both messages say what to run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import store

from pipeline.runs import (  # noqa: F401  (the reading API: discovery lives in pipeline.runs)
    ARTIFACTS_ENV,
    REPO_ROOT,
    TRAIN_COMMAND,
    TRAIN_HINT,
    ArtifactError,
    ExperimentNotRun,
    ModelNotFound,
    RunInfo,
    RunNotFound,
    _complete_models,
    _info_from,
    _read_json,
    artifacts_dir,
    info_at,
    latest_run,
    list_runs,
    resolve_run,
)

SPLITS = ("train", "val", "test")
LABELS = ("real", "fake")

MANIFEST_COLUMNS = store.MANIFEST_COLUMNS
SKIPPED_COLUMNS = store.SKIPPED_COLUMNS
HISTORY_COLUMNS = store.HISTORY_COLUMNS
PREDICTION_COLUMNS = store.PREDICTION_COLUMNS
SUMMARY_COLUMNS = store.SUMMARY_COLUMNS  # summary.csv: written by pipeline.evaluation.summary_rows
COUNTS_COLUMNS = ["dataset", "split", "label", "n"]

# Columns of :meth:`Run.comparison` (one row per model for one scope).
COMPARISON_COLUMNS = ["model", "scope", "n", "n_real", "n_fake", "accuracy", "precision", "recall", "f1",
                      "balanced_accuracy", "roc_auc", "average_precision", "threshold", "threshold_rule",
                      "tn", "fp", "fn", "tp", "params", "file_size_mb", "train_seconds", "latency_ms_batch1",
                      "latency_ms_per_image_batch64", "latency_ms_batch64", "image_size"]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@dataclass
class Run:
    """A run folder; every accessor reads its file when called (callers cache)."""

    info: RunInfo
    run_json: dict[str, Any]
    path: Path

    # ----- helpers (also used by pipeline.run_embeddings)
    def retrain_hint(self) -> str:
        """The sentence that tells the user how to rebuild this run."""
        return f"rebuild it with: {TRAIN_COMMAND} --config {self.info.config_name}"

    def _missing(self, rel: str, what: str) -> ArtifactError:
        return ArtifactError(f"Run {self.info.run_id}: {rel} is missing ({what}); {self.retrain_hint()}")

    def read_table(self, rel: str, kind: str, required: list[str], what: str) -> pd.DataFrame:
        """The CSV or Parquet (``kind``) file ``rel`` of the run; :class:`ArtifactError` naming ``what`` when it is
        missing, unreadable or lacks a ``required`` column."""
        file = self.path / rel
        if not file.is_file():
            raise self._missing(rel, what)
        try:
            df = pd.read_parquet(file) if kind == "parquet" else pd.read_csv(file)
        except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types on corrupt files
            raise ArtifactError(f"Run {self.info.run_id}: {rel} cannot be read ({type(exc).__name__}: {exc}); "
                                f"delete it and {self.retrain_hint()}") from exc
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise ArtifactError(f"Run {self.info.run_id}: {rel} lacks column(s) {missing} (written by an older "
                                f"pipeline?); {self.retrain_hint()}")
        return df

    def file_mtime(self, rel: str) -> float:
        """Modification time of a file of the run (0 if missing): a cache key that changes on retrain."""
        return _mtime(self.path / rel)

    # ----- run level
    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.run_json.get("config")
        return cfg if isinstance(cfg, dict) else {}

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's entry in the run config (``{}`` if not listed)."""
        for m in self.config.get("models") or []:
            if isinstance(m, dict) and m.get("name") == model:
                return m
        return {}

    def manifest(self) -> pd.DataFrame:
        """manifest.parquet: one row per usable image with :data:`MANIFEST_COLUMNS`. A run written before
        groups existed has no ``group`` column; it gets one in which each image is its own group (its relpath)."""
        required = [c for c in MANIFEST_COLUMNS if c != "group"]
        df = self.read_table(store.MANIFEST, "parquet", required, "the list of usable images")
        if "group" not in df.columns:
            df["group"] = df["relpath"].astype(str)
        return df

    def skipped(self) -> pd.DataFrame:
        """Files that could not be used; empty (with the columns) when none were skipped."""
        if not (self.path / store.SKIPPED).is_file():
            return pd.DataFrame({c: pd.Series(dtype="object") for c in SKIPPED_COLUMNS})
        return self.read_table(store.SKIPPED, "csv", SKIPPED_COLUMNS, "skipped files")

    def summary(self) -> pd.DataFrame:
        """summary.csv (one row per model and scope); empty with the documented columns if missing."""
        if not (self.path / store.SUMMARY).is_file():
            return pd.DataFrame({c: pd.Series(dtype="float64" if c not in ("model", "scope") else "object")
                                 for c in SUMMARY_COLUMNS})
        return self.read_table(store.SUMMARY, "csv", ["model", "scope"], "the comparison table")

    def models(self) -> list[str]:
        """Models with finished results (``models/<m>/done.json`` exists), in config order."""
        return _complete_models(self.path, self.info.models)

    def model_dir(self, model: str) -> Path:
        """``models/<model>`` of a finished model; :class:`ModelNotFound` saying why otherwise."""
        done = self.models()
        if model not in done:
            known = ", ".join(done) if done else "none"
            started = (self.path / "models" / model).is_dir()
            why = "did not finish" if started else "is not in this run"
            raise ModelNotFound(f"Model {model!r} {why} (run {self.info.run_id}; finished models: {known}). "
                                f"Train it with: {TRAIN_COMMAND} --config {self.info.config_name}")
        return self.path / "models" / model

    def metrics(self, model: str) -> dict[str, Any]:
        file = self.model_dir(model) / store.METRICS
        rel = f"models/{model}/metrics.json"
        if not file.is_file():
            raise self._missing(rel, "the model's test metrics")
        try:
            data = _read_json(file)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"Run {self.info.run_id}: {rel} cannot be read ({exc}); "
                                f"delete models/{model} and {self.retrain_hint()}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("scopes"), dict):
            raise ArtifactError(f"Run {self.info.run_id}: {rel} has no 'scopes' (stale format); "
                                f"delete models/{model} and {self.retrain_hint()}")
        return data

    def kept_head_phase(self, model: str) -> bool:
        """Whether ``model`` was fine-tuned but keeps its head phase's weights (no fine-tuning epoch
        beat the head phase on validation; ``pipeline.training``)."""
        try:
            return self.metrics(model).get("kept_phase") == "head" and \
                (self.history(model)["phase"] == "fine_tune").any()
        except (ArtifactError, LookupError):  # LookupError: ModelNotFound, or a history without phases
            return False

    def history(self, model: str) -> pd.DataFrame:
        self.model_dir(model)
        return self.read_table(f"models/{model}/history.csv", "csv", ["epoch"], "the training history")

    def predictions(self, model: str) -> pd.DataFrame:
        self.model_dir(model)
        return self.read_table(f"models/{model}/predictions.parquet", "parquet", ["split", "y", "p_fake"],
                               "the model's validation and test predictions")

    def model_path(self, model: str) -> Path:
        file = self.model_dir(model) / store.KERAS_MODEL
        if not file.is_file():
            raise self._missing(f"models/{model}/model.keras", "the trained model")
        return file

    def datasets(self) -> list[str]:
        """Dataset names of the run: from the manifest, else from the config's data sources."""
        try:
            return sorted(self.manifest()["dataset"].astype(str).unique().tolist())
        except ArtifactError:
            names = []
            for src in self.config.get("data") or []:
                if isinstance(src, dict):
                    name = src.get("name") or Path(str(src.get("path", ""))).name
                    if name and name not in names:
                        names.append(name)
            return sorted(names)

    def counts(self) -> pd.DataFrame:
        """Images per dataset, split and label (columns dataset, split, label, n)."""
        man = self.manifest()
        if man.empty:
            return pd.DataFrame({"dataset": [], "split": [], "label": [], "n": []}).astype({"n": "int64"})
        df = (man.groupby(["dataset", "split", "label"], observed=True).size()
              .rename("n").reset_index())
        df["n"] = df["n"].astype("int64")
        order_split = {s: i for i, s in enumerate(SPLITS)}
        order_label = {s: i for i, s in enumerate(LABELS)}
        df = df.sort_values(["dataset", "split", "label"],
                            key=lambda s: s.map(order_split).fillna(99) if s.name == "split" else
                            (s.map(order_label).fillna(99) if s.name == "label" else s))
        return df.reset_index(drop=True)[COUNTS_COLUMNS]

    def scopes(self, model: str | None = None) -> list[str]:
        """Scopes with metrics: ``all`` first, then datasets (over every finished model if none given)."""
        models = [model] if model else self.models()
        found: list[str] = []
        for m in models:
            for s in self.metrics(m).get("scopes", {}):
                if s not in found:
                    found.append(s)
        return (["all"] if "all" in found else []) + sorted(s for s in found if s != "all")

    def comparison(self, scope: str = "all", at_half: bool = False) -> pd.DataFrame:
        """One row per finished model for ``scope``, built from each ``metrics.json``.

        ``at_half`` uses the metrics at threshold 0.5 instead of the chosen threshold (the
        ``threshold`` column then reads 0.5). Models without that scope are left out.
        """
        rows = []
        for model in self.models():
            row = comparison_row(model, self.metrics(model), scope, at_half)
            if row is not None:
                rows.append(row)
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="object" if c in ("model", "scope", "threshold_rule")
                                              else "float64") for c in COMPARISON_COLUMNS})
        return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


    # ----- trust (pipeline.calibration, pipeline.verdict)
    def trust_table(self, scope: str | None = None) -> pd.DataFrame:
        """Calibration (ECE raw and after Platt scaling fitted on validation, Brier, log loss) and
        operating-point metrics (per-class recall, balanced accuracy, EER, TPR at 1%/5% FPR) of every
        finished model on the test split, per scope (``scope``: only that one)."""
        from pipeline import calibration

        rows = []
        for model in self.models():
            try:
                preds = self.predictions(model)
                threshold = float(self.metrics(model)["threshold"])
            except (LookupError, ArtifactError, KeyError, ValueError, OSError):
                continue
            val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
            if len(val) and len(test):
                rows += calibration.trust_rows(model, val, test, threshold)
        table = pd.DataFrame(rows)
        return table[table["scope"] == scope].reset_index(drop=True) if scope is not None and len(table) else table

    def reliability(self, model: str, scope: str = "all") -> dict[str, dict[str, list]]:
        """Reliability-diagram points of ``model`` on the test split of ``scope``: ``{"raw": ...,
        "calibrated": ...}``, each :func:`pipeline.calibration.reliability_table` (calibrator: Platt
        scaling fitted on the validation split)."""
        from pipeline import calibration

        preds = self.predictions(model)
        val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
        if scope != "all":
            test = test[test["dataset"].astype(str) == scope]
        cal = calibration.fit_calibrator(val["p_fake"].to_numpy(), val["y"].to_numpy())
        p = test["p_fake"].to_numpy()
        return {"raw": calibration.reliability_table(test["y"], p),
                "calibrated": calibration.reliability_table(test["y"], calibration.apply_calibrator(cal, p))}

    def verdict_policy(self):
        """The run's three-way verdict policy (:class:`pipeline.verdict.VerdictPolicy`); raises
        :class:`pipeline.verdict.PolicyError` (a ValueError) with what to run when there is none."""
        from pipeline import verdict

        return verdict.load_policy(self.path)

    def verdict_table(self) -> pd.DataFrame:
        """What the run's three-way verdict does on the test split, pooled and per dataset
        (:func:`pipeline.verdict_fit.policy_table`: coverage, real photos called fake among decided, ...).
        The band rule only: the stability check needs the images and is measured by bench/bench_verdict.py."""
        from pipeline import verdict_fit

        policy = self.verdict_policy()
        preds = self.predictions(policy.model)
        return verdict_fit.policy_table(policy, preds[preds["split"] == "test"])

    # ----- experiments (pipeline.experiments: search, ablation, robustness, crossdataset)
    def experiment_dir(self, name: str) -> Path:
        """The newest finished result folder of experiment ``name``; :class:`ExperimentNotRun` if none."""
        from pipeline import experiments

        if name not in experiments.NAMES:
            raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiments.NAMES)}")
        folder = experiments.latest_dir(self.path, name)
        if folder is None:
            raise ExperimentNotRun(f"Run {self.info.run_id} has no {name} results yet. Run it with:\n\n"
                                   f"```\n{experiments.command(name, self.info.run_id)}\n```")
        return folder

    def experiment(self, name: str) -> pd.DataFrame:
        """The result table of an experiment: search -> trials, ablation -> grid, robustness -> one row per
        (model, perturbation, level, dataset), crossdataset -> the generalisation matrix."""
        from pipeline import experiments

        folder = self.experiment_dir(name)
        rel = str((folder / experiments.TABLES[name]).relative_to(self.path))
        return self.read_table(rel, "csv", [], f"the {name} results")

    def experiment_settings(self, name: str) -> dict[str, Any]:
        """settings.json of the newest finished result of an experiment (``{}`` if unreadable)."""
        try:
            data = _read_json(self.experiment_dir(name) / "settings.json")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def crossdataset_by_model(self) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
        """Every model's generalisation matrix in the run, ``{model: (its rows, the settings.json of its
        experiment)}``: a run can hold several matrices (the config's, and one run later with another
        ``[experiments] model``); a model in several takes the most recent. Unreadable results are left out;
        :class:`ExperimentNotRun` when there is none."""
        from pipeline import experiments

        out: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}
        for folder in experiments.finished_dirs(self.path, "crossdataset"):
            try:
                table = self.read_table(str((folder / experiments.TABLES["crossdataset"]).relative_to(self.path)),
                                        "csv", [], "the crossdataset results")
                settings = _read_json(folder / "settings.json")
            except (ArtifactError, OSError, ValueError):
                continue
            settings = settings if isinstance(settings, dict) else {}
            if "model" not in table.columns:  # older matrices: one model, named in settings.json
                table = table.assign(model=str(settings.get("model", "?")))
            for model, rows in table.groupby(table["model"].astype(str), sort=False):
                out.setdefault(model, (rows.reset_index(drop=True), settings))
        if not out:
            self.experiment_dir("crossdataset")  # raises ExperimentNotRun with the command
        return out

    def search_best(self) -> dict[str, Any]:
        """best.json of the newest finished search (``{}`` if unreadable)."""
        try:
            data = _read_json(self.experiment_dir("search") / "best.json")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

def comparison_row(model: str, metrics: dict[str, Any], scope: str, at_half: bool = False) -> dict[str, Any] | None:
    """The comparison-table row of one model's ``metrics.json`` for ``scope`` (None if absent)."""
    sc = (metrics.get("scopes") or {}).get(scope)
    if not isinstance(sc, dict):
        return None
    at = sc.get("at_0.5" if at_half else "at_threshold") or {}
    lat = metrics.get("latency_ms") or {}
    size = metrics.get("file_size_bytes")
    return {
        "model": model, "scope": scope, "n": sc.get("n"), "n_real": sc.get("n_real"), "n_fake": sc.get("n_fake"),
        "accuracy": at.get("accuracy"), "precision": at.get("precision"), "recall": at.get("recall"),
        "f1": at.get("f1"), "balanced_accuracy": at.get("balanced_accuracy"),
        "roc_auc": sc.get("roc_auc"), "average_precision": sc.get("average_precision"),
        "threshold": 0.5 if at_half else metrics.get("threshold"),
        "threshold_rule": "fixed 0.5" if at_half else metrics.get("threshold_rule"),
        "tn": at.get("tn"), "fp": at.get("fp"), "fn": at.get("fn"), "tp": at.get("tp"),
        "params": metrics.get("params"),
        "file_size_mb": None if size is None else round(size / 2**20, 3),  # MiB, as in summary.csv
        "train_seconds": metrics.get("train_seconds"),
        "latency_ms_batch1": lat.get("batch1_p50"),
        "latency_ms_per_image_batch64": lat.get("per_image_batch64"),
        "latency_ms_batch64": lat.get("batch64_p50"),
        "image_size": metrics.get("image_size"),
    }


def load_run(ref_or_info: RunInfo | str | Path | None = None, root: Path | str | None = None) -> Run:
    """Open a run from a :class:`RunInfo` or anything :func:`resolve_run` accepts."""
    info = ref_or_info if isinstance(ref_or_info, RunInfo) else resolve_run(ref_or_info, root)
    try:
        run_json = _read_json(info.path / store.RUN_JSON)
    except FileNotFoundError as exc:
        raise RunNotFound(f"Run {info.run_id} was deleted ({info.path} has no run.json). {TRAIN_HINT}") from exc
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{info.path / 'run.json'} cannot be read ({exc}); delete the folder and "
                            f"rebuild it with: {TRAIN_COMMAND}") from exc
    if not isinstance(run_json, dict):
        raise ArtifactError(f"{info.path / 'run.json'} is not a JSON object; delete the folder and "
                            f"rebuild it with: {TRAIN_COMMAND}")
    try:
        store.check_format(info.path, run_json)
    except store.StaleRunError as exc:
        raise ArtifactError(str(exc)) from exc
    # Refresh the info: models may have finished since it was listed.
    info = _info_from(info.path) or info
    return Run(info=info, run_json=run_json, path=info.path)

"""Results a dashboard page may compute for a finished run when they are missing, without training.

A page whose result is missing says why in one line and, when the result is cheap enough to build in
the dashboard's process (inference and small fits on stored files, no Keras training), offers a button
that calls one of these functions with a ``progress(stage, done, total)`` callable
(:mod:`pipeline.progress`) driving ``st.progress``. Results that need a model trained (the
generalisation matrix, the search, the ablation, a model that never finished) keep the CLI command:
the dashboard must not import training code (the import-linter contract in ``pyproject.toml``), which
is why this module never reaches :mod:`pipeline.runner`, :mod:`pipeline.training` or
:mod:`pipeline.experiments._train`.

Each step reads the run's own config from ``run.json`` (as ``python -m pipeline experiment --run``
does) and writes into the run folder through the same pipeline functions as ``train`` (atomic writes,
the same cache keys: a later ``train`` treats the files as its own). One process-wide lock per (run,
step) keeps two sessions from computing the same files at once: the second caller waits and then finds
the result cached.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from pipeline import artifacts, config, config_load, evaluation, store
from pipeline.experiments import command as experiment_command
from pipeline.progress import ProgressFn, report

# Experiments that train Keras models (pipeline.experiments._train): the dashboard shows their command.
NEEDS_TRAINING = {
    "crossdataset": "it trains one model per data set",
    "search": "it trains one small CNN per trial",
    "ablation": "it trains one model per optimizer and learning rate",
}

_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(run_dir: Path, step: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((str(Path(run_dir).resolve()), step), threading.Lock())


def is_busy(run_dir: str | Path, step: str) -> bool:
    """True while this process computes ``step`` (``"embeddings"``, ``"robustness"``) for the run."""
    return _lock(Path(run_dir), step).locked()


def run_config(run_dir: str | Path) -> config.RunConfig:
    """The run's config as ``train`` used it (``run.json``), with ``artifacts_dir`` = the run's parent
    folder (where the image cache lives). Raises ``OSError``/``ValueError`` on an unreadable run.json."""
    run_dir = Path(run_dir)
    cfg = config_load.from_json_dict(artifacts.read_json(store.run_file(run_dir, store.RUN_JSON))["config"])
    return dataclasses.replace(cfg, artifacts_dir=str(run_dir.parent))


def training_command(name: str, run_id: str) -> str:
    """One line for a page whose experiment ``name`` needs training: why, and the command to run."""
    why = NEEDS_TRAINING.get(name, "it trains models")
    return (f"This result is not computed here because {why}, which the dashboard does not do: run "
            f"`{experiment_command(name, run_id)}`, then reload.")


# --------------------------------------------------------------------------- embeddings + PCA-SVM


def keras_models(run_dir: str | Path) -> list[str]:
    """Finished Keras models of the run (a ``model.keras``), in the config's order: the ones that can
    get embeddings."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    return [s.name for s in cfg.models if s.kind == "keras" and store.is_model_done(run_dir, s.name)
            and (store.model_dir(run_dir, s.name) / store.KERAS_MODEL).is_file()]


def missing_embeddings(run_dir: str | Path) -> list[str]:
    """Finished Keras models of the run without a complete set of embedding files."""
    from pipeline.embeddings import META_FILE

    run_dir = Path(run_dir)
    try:
        names = keras_models(run_dir)
    except (OSError, ValueError, KeyError, TypeError):  # a run.json this version cannot read: nothing to offer
        return []
    return [m for m in names if not (store.model_dir(run_dir, m) / META_FILE).is_file()]


def compute_embeddings(run_dir: str | Path, models: list[str], progress: ProgressFn = None,
                       log=lambda _line: None) -> dict[str, dict]:
    """Embeddings, PCA/UMAP projections, separability and the ``<model>+pca_svm`` row of ``models``
    (:func:`pipeline.embeddings.build_for_run` with the run's own settings; every image of the run
    through each model's forward pass, then scikit-learn/UMAP fits), then their rows in summary.csv.
    A model already complete for the same model file, data and settings is skipped.

    Returns ``{model: embeddings.json content}``. Raises ``ValueError`` when a name is not a finished
    Keras model of the run."""
    from pipeline import embeddings, svm

    run_dir = Path(run_dir)
    known = keras_models(run_dir)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"not a finished Keras model of run {run_dir.name}: {', '.join(unknown)}")
    cfg = run_config(run_dir)
    cfg = dataclasses.replace(cfg, embeddings=dataclasses.replace(cfg.embeddings, enabled=True,
                                                                  models=tuple(models)))
    with _lock(run_dir, "embeddings"):
        report(progress, "loading the model and the images", 0, 0)
        manifest = store.read_manifest(run_dir)
        done = embeddings.build_for_run(run_dir, cfg, manifest, progress, log)
        rows = [svm.svm_model_name(m) for m in done if store.is_model_done(run_dir, svm.svm_model_name(m))]
        if rows:
            evaluation.add_to_summary(run_dir, rows)
    return done


# --------------------------------------------------------------------------- robustness


def robustness_needs_update(run_dir: str | Path) -> bool:
    """True when the run's combined model is finished but its robustness sweep left it out (the sweep
    predates it): :func:`compute_robustness` adds it without re-scoring the other models."""
    from pipeline.detectors import combined as ensemble
    from pipeline.experiments import latest_dir

    run_dir = Path(run_dir)
    folder = latest_dir(run_dir, "robustness")
    if folder is None or not ensemble.combiner_name(run_dir):
        return False
    try:
        return "combined_model" not in artifacts.read_json(folder / "settings.json")
    except (OSError, ValueError):
        return True


def compute_robustness(run_dir: str | Path, progress: ProgressFn = None, log=lambda _line: None) -> Path | None:
    """The robustness sweep of the run (:func:`pipeline.experiments.robustness.run_robustness` with the
    run's ``[experiments]`` settings: every Keras model and the combined model on a fixed-seed sample of
    the test split under each perturbation level; inference only). Models whose partial result is
    current are not re-scored. Returns the result folder (None when the run has no Keras model)."""
    from pipeline.experiments import robustness

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    with _lock(run_dir, "robustness"):
        report(progress, "loading the run's models (10-20 s before the first image)", 0, 0)
        return robustness.run_robustness(cfg, run_dir, progress=progress, log=log)

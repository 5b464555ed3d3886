"""Reading the embeddings step of a run (:mod:`pipeline.embeddings`): per model, ``models/<m>/embeddings.npz``,
``pca.npz``, ``projections.parquet``, ``separability.json`` and ``embeddings.json``.

Each function takes an open :class:`pipeline.results.Run` and reads its file when called (callers cache); a
missing, stale or corrupt file raises :class:`pipeline.runs.ArtifactError` saying what to run. JSON, NumPy and
Parquet only: no TensorFlow.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.runs import TRAIN_COMMAND, ArtifactError, _read_json

if TYPE_CHECKING:
    from pipeline.results import Run


def _embedding_file(run: Run, model: str, name: str, what: str) -> Path:
    file = run.model_dir(model) / name
    if not file.is_file() or not (file.parent / "embeddings.json").is_file():
        raise ArtifactError(f"Run {run.info.run_id}: models/{model}/{name} is missing ({what}); build the "
                            f"embeddings with: {TRAIN_COMMAND} (config {run.info.config_name!r}; "
                            f"[embeddings] enabled = true)")
    return file


def has_embeddings(run: Run, model: str) -> bool:
    """True when the embedding step finished for ``model`` (its embeddings.json exists)."""
    return (run.path / "models" / model / "embeddings.json").is_file() and model in run.models()


def embedding_models(run: Run) -> list[str]:
    """Finished models whose embeddings, projections and PCA exist."""
    return [m for m in run.models() if has_embeddings(run, m)]


def _npz(run: Run, model: str, name: str, what: str) -> dict[str, Any]:
    import numpy as np

    file = _embedding_file(run, model, name, what)
    try:
        with np.load(file, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types on corrupt files
        raise ArtifactError(f"Run {run.info.run_id}: models/{model}/{name} cannot be read "
                            f"({type(exc).__name__}: {exc}); delete it and {run.retrain_hint()}") from exc


def embeddings(run: Run, model: str) -> dict[str, Any]:
    """embeddings.npz: ``embedding`` (N, D) float32 in manifest order, ``p_fake``, ``sha256``."""
    return _npz(run, model, "embeddings.npz", "the penultimate embeddings")


def pca(run: Run, model: str) -> dict[str, Any]:
    """pca.npz: ``scores`` (N, k) of every manifest row (standardise + PCA fitted on train) and the
    projection arrays (``components``, ``scaler_mean``, ...)."""
    return _npz(run, model, "pca.npz", "the PCA of the embeddings")


def projections(run: Run, model: str) -> pd.DataFrame:
    """projections.parquet: one row per image with pca_1..3, pca2d_*, umap_1..3, umap2d_*."""
    _embedding_file(run, model, "projections.parquet", "the 2-D/3-D projections")
    return run.read_table(f"models/{model}/projections.parquet", "parquet",
                          ["path", "dataset", "label", "y", "split", "pca_1", "pca_2", "pca_3", "umap_1"],
                          "the 2-D/3-D projections")


def separability(run: Run, model: str) -> pd.DataFrame:
    """separability.json as a table: space, dims, classifier, accuracy, roc_auc (test split)."""
    data = _json_of(run, model, "separability.json", "the separability table")
    return pd.DataFrame(data.get("rows") or [], columns=["space", "dims", "classifier", "accuracy", "roc_auc"])


def explained_variance(run: Run, model: str) -> list[float]:
    """Explained variance ratio of each PCA component (from embeddings.json)."""
    return [float(v) for v in _json_of(run, model, "embeddings.json", "the embedding summary")
            .get("explained_variance_ratio") or []]


def embedding_info(run: Run, model: str) -> dict[str, Any]:
    """embeddings.json: dims, number of PCA components, UMAP settings, timings."""
    data = _json_of(run, model, "embeddings.json", "the embedding summary")
    return data if isinstance(data, dict) else {}


def _json_of(run: Run, model: str, name: str, what: str) -> Any:
    """The JSON file ``name`` of a model's embeddings; raises ArtifactError (saying what to run) when it is
    missing or cannot be read."""
    file = _embedding_file(run, model, name, what)
    try:
        return _read_json(file)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"Run {run.info.run_id}: models/{model}/{name} cannot be read ({exc}); "
                            f"{run.retrain_hint()}") from exc

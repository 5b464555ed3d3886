"""Do the detectors agree? Score correlations between a run's models and the images they disagree on.

Two models that rank the test images alike add little to each other in an ensemble; two that rank
them differently may each see something the other misses (or one of them is guessing). This module
answers both questions from the stored test predictions only (nothing is re-scored):

* :func:`score_table`: one row per test image, one column of ``p_fake`` per model;
* :func:`score_correlation`: the Spearman rank correlation of those columns (pandas' ``corr``, which
  uses scipy's ranking): +1 = the same order, 0 = unrelated, -1 = the reverse order. Ranks, not the
  scores, because models' probabilities live on different scales (a model whose scores all sit in
  0.4-0.6 still ranks);
* :func:`disagreements`: the images whose rank differs most between the models. Each model's scores
  are turned into percentile ranks within the test images (0 = the most real-looking to that model,
  1 = the most fake-looking); an image's *disagreement* is the largest minus the smallest of its
  ranks (0-1): 0.9 means one model puts it among the most fake-looking tenth, another among the most
  real-looking tenth.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

KEY = "path"
INFO_COLUMNS = ("dataset", "label", "relpath")


def score_table(predictions: Mapping[str, pd.DataFrame], split: str = "test") -> pd.DataFrame:
    """Join models' predictions on the image path.

    ``predictions``: ``{model: predictions.parquet frame}`` (columns ``path``, ``dataset``, ``label``,
    ``split``, ``p_fake``, optionally ``relpath``). Returns one row per image of ``split`` that every
    model scored, columns ``path, dataset, label, relpath`` then one float column per model (its
    ``p_fake``, probability of fake in 0-1), in the order given. Models without rows of ``split``
    are left out. Raises ValueError when fewer than two models remain (nothing to correlate).
    """
    table: pd.DataFrame | None = None
    used: list[str] = []
    for model, df in predictions.items():
        rows = df[df["split"].astype(str) == split] if "split" in df.columns else df
        if rows.empty or "p_fake" not in rows.columns:
            continue
        rows = rows.drop_duplicates(KEY)
        part = rows[[KEY]].assign(**{model: rows["p_fake"].astype(float).to_numpy()})
        if table is None:
            info = [c for c in INFO_COLUMNS if c in rows.columns]
            table = rows[[KEY, *info]].merge(part, on=KEY)
        else:
            table = table.merge(part, on=KEY, how="inner")
        used.append(model)
    if table is None or len(used) < 2:
        raise ValueError(f"need the {split} predictions of at least two models to compare them; found {used or 'none'}")
    for c in INFO_COLUMNS:
        if c not in table.columns:
            table[c] = ""
    return table[[KEY, *INFO_COLUMNS, *used]].reset_index(drop=True)


def model_columns(table: pd.DataFrame) -> list[str]:
    """The model columns of a :func:`score_table` (every column that is not the path or image info)."""
    return [c for c in table.columns if c not in (KEY, *INFO_COLUMNS)]


def score_correlation(table: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Spearman rank correlation (models x models, floats in -1..1; NaN where a model's scores are
    constant) of the ``p_fake`` columns of a :func:`score_table`."""
    models = list(models or model_columns(table))
    return table[models].corr(method="spearman")


def percentile_ranks(table: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Each model's scores as percentile ranks among the table's images (0-1, ties averaged)."""
    models = list(models or model_columns(table))
    return table[models].rank(pct=True, method="average")


def disagreements(table: pd.DataFrame, models: Sequence[str] | None = None, top: int = 12) -> pd.DataFrame:
    """The ``top`` images the models rank most differently, most disagreement first.

    Returns the rows of ``table`` (path, dataset, label, relpath, each model's ``p_fake``) plus
    ``disagreement`` (max - min percentile rank, 0-1), ``most_fake`` and ``most_real`` (the models
    that rank it highest and lowest).
    """
    models = list(models or model_columns(table))
    ranks = percentile_ranks(table, models)
    out = table.copy()
    out["disagreement"] = (ranks.max(axis=1) - ranks.min(axis=1)).to_numpy()
    out["most_fake"] = ranks.idxmax(axis=1).to_numpy()
    out["most_real"] = ranks.idxmin(axis=1).to_numpy()
    out = out.sort_values(["disagreement", KEY], ascending=[False, True], kind="mergesort")
    return out.head(int(top)).reset_index(drop=True)


def _pairs(corr: pd.DataFrame) -> list[tuple[str, str, float]]:
    names = list(corr.columns)
    return [(a, b, float(corr.at[a, b])) for i, a in enumerate(names) for b in names[i + 1:]
            if np.isfinite(corr.at[a, b])]


def most_alike(corr: pd.DataFrame) -> tuple[str, str, float] | None:
    """The pair of different models with the highest correlation, or None (fewer than two models or
    all NaN)."""
    pairs = _pairs(corr)
    return max(pairs, key=lambda t: t[2]) if pairs else None


def least_alike(corr: pd.DataFrame) -> tuple[str, str, float] | None:
    """The pair of different models with the lowest correlation, or None."""
    pairs = _pairs(corr)
    return min(pairs, key=lambda t: t[2]) if pairs else None


def stored_scores(predictions: Mapping[str, pd.DataFrame], thresholds: Mapping[str, float], path: str) -> list[dict]:
    """Every model's stored score of one image (validation and test images only: ``predictions.parquet``
    holds no training rows), as records ``model, p_fake, threshold, verdict`` (``verdict`` "fake" when
    ``p_fake >= threshold``), in the order of ``predictions``; models without a row for ``path`` are
    left out."""
    out = []
    for model, df in predictions.items():
        rows = df[df[KEY] == path] if KEY in df.columns else df.iloc[0:0]
        if rows.empty:
            continue
        p = float(rows["p_fake"].iloc[0])
        t = float(thresholds.get(model, 0.5))
        out.append({"model": model, "p_fake": p, "threshold": t, "verdict": "fake" if p >= t else "real"})
    return out

"""Nearest neighbours of one image in a model's embedding: which faces does the model think are alike?

Distances are cosine distances (1 - cosine similarity, 0-2) between the rows of the embedding's PCA
scores (``pca.npz`` ``scores``: the embedding standardised and projected on the components fitted on
the training split, so every dimension counts on a comparable scale), found by scikit-learn's
``NearestNeighbors`` (brute force: exact).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def nearest(vectors: np.ndarray, query: int, k: int = 8, candidates: np.ndarray | None = None) -> pd.DataFrame:
    """The ``k`` rows of ``vectors`` ((N, D) float) nearest to row ``query`` by cosine distance, the
    query itself left out.

    ``candidates``: optional (N,) bool mask or index array of the rows to search (default: all).
    Returns columns ``row`` (position in ``vectors``), ``distance`` (cosine distance, 0-2) and
    ``similarity`` (1 - distance), nearest first. Raises IndexError for a query outside 0..N-1 and
    ValueError for a non-2-D array.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(vectors, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"vectors must be (N, D); got shape {X.shape}")
    if not 0 <= int(query) < len(X):
        raise IndexError(f"query row {query} outside 0..{len(X) - 1}")
    if candidates is None:
        pool = np.arange(len(X))
    else:
        c = np.asarray(candidates)
        pool = np.flatnonzero(c) if c.dtype == bool else c.astype(int)
    pool = pool[pool != int(query)]
    k = int(min(k, len(pool)))
    if k <= 0:
        return pd.DataFrame({"row": pd.Series(dtype=int), "distance": pd.Series(dtype=float),
                             "similarity": pd.Series(dtype=float)})
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X[pool])
    dist, idx = nn.kneighbors(X[[int(query)]])
    d = np.clip(dist[0], 0.0, 2.0)
    return pd.DataFrame({"row": pool[idx[0]], "distance": d, "similarity": 1.0 - d})

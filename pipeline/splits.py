"""Splitting a manifest: the train / validation / test split (stratified by (dataset, label), keeping each
group of images on one side), fixed-seed stratified subsamples, and a specialist's rows."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.config import ConfigError, ModelSpec

log = logging.getLogger("pipeline.data")
SPLITS = ("train", "val", "test")
FAKE = "fake"


def assign_splits(files: pd.DataFrame, fractions: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Each row's ``split`` ("train", "val" or "test"): the given split where there is one, else a
    fixed-seed split stratified by (dataset, label) that is independent of file order.

    ``files`` needs columns dataset, label, sha256, given_split (None where not given) and, optionally,
    group (str). ``fractions`` are the (train, val, test) shares. A dataset in which every group holds
    one file (no ``group`` column, no groups.csv, or one group per file) is split per (dataset, label)
    stratum exactly as before groups existed: the rows sorted by sha256, permuted with
    ``numpy.random.default_rng(seed)``, cut at the rounded shares (each split gets at least one image
    of a stratum of 3 or more). A dataset with groups of several files is split group by group
    (:func:`_split_groups`): no group lands on two sides. Given splits are kept as they are; a group
    found on two given sides is logged as a warning.
    """
    files = files.copy()
    files["split"] = files["given_split"]
    todo = files[files["given_split"].isna()]
    grouped = set()
    if "group" in files.columns:
        _warn_split_groups(files[files["given_split"].notna()])
        sizes = todo.groupby(["dataset", "group"]).size()
        grouped = set(sizes[sizes > 1].index.get_level_values("dataset"))
    for dataset, rows in todo[todo["dataset"].isin(grouped)].groupby("dataset", sort=True):
        files.loc[rows.index, "split"] = _split_groups(rows, fractions, seed)
    for _, group in todo[~todo["dataset"].isin(grouped)].groupby(["dataset", "label"], sort=True):
        order = group.sort_values("sha256").index.to_numpy()
        order = order[np.random.default_rng(seed).permutation(len(order))]
        n = len(order)
        n_train = int(round(n * fractions[0]))
        n_val = int(round(n * fractions[1]))
        if n >= 3:  # every split gets at least one image of each class where possible
            n_train = min(max(n_train, 1), n - 2)
            n_val = min(max(n_val, 1), n - n_train - 1)
        files.loc[order[:n_train], "split"] = "train"
        files.loc[order[n_train:n_train + n_val], "split"] = "val"
        files.loc[order[n_train + n_val:], "split"] = "test"
    return files


def _warn_split_groups(given: pd.DataFrame) -> None:
    sides = given.groupby(["dataset", "group"])["given_split"].nunique()
    for (dataset, group), _ in sides[sides > 1].head(3).items():
        log.warning("%s: group %r sits in several of the given train/valid/test folders; the given split is kept, "
                    "so its images are on more than one side", dataset, group)
    if (sides > 1).sum() > 3:
        log.warning("... and %d more such groups", int((sides > 1).sum()) - 3)


def _split_groups(rows: pd.DataFrame, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """The split of each row of one dataset, whole groups at a time (array of str, in row order).

    Greedy stratified group assignment: groups are ordered by size, largest first (ties in a
    fixed-seed random order of each group's smallest sha256, so neither file order nor group names
    matter), and each goes to the split where it most reduces the squared distance between the
    per-label counts and their targets (share x label total; each label's error divided by its total,
    so both classes weigh alike). Then a split left without any image of a label takes the smallest
    such group from the split with the most groups of that label, while that side keeps at least one.
    The same idea as scikit-learn's ``StratifiedGroupKFold``, for three unequal shares.
    """
    labels = (rows["label"] == FAKE).astype(int).to_numpy()
    keys = rows["group"].astype(str).to_numpy()
    uniq, inverse = np.unique(keys, return_inverse=True)
    counts = np.zeros((len(uniq), 2), dtype=np.int64)
    np.add.at(counts, (inverse, labels), 1)
    first_sha = pd.Series(rows["sha256"].to_numpy()).groupby(inverse).min().to_numpy()
    by_sha = np.argsort(first_sha, kind="stable")
    shuffled = by_sha[np.random.default_rng(seed).permutation(len(by_sha))]
    order = shuffled[np.argsort(-counts[shuffled].sum(axis=1), kind="stable")]

    totals = counts.sum(axis=0).astype(float)
    target = np.outer(np.asarray(fractions, dtype=float), totals)  # (3 splits, 2 labels)
    scale = np.maximum(totals, 1.0) ** 2
    filled = np.zeros_like(target)
    side = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        c = counts[g]
        cost = ((c * (2 * (filled - target) + c)) / scale).sum(axis=1)
        s = int(np.argmin(cost))
        side[g] = s
        filled[s] += c

    for s in (1, 2, 0):  # val, test, train: a side without one class gets a small group of it
        for label in (0, 1):
            if filled[s, label] > 0:
                continue
            with_label = np.flatnonzero(counts[:, label] > 0)
            donors = [d for d in range(3) if d != s and (side[with_label] == d).sum() > 1]
            if not donors:
                continue
            donor = max(donors, key=lambda d: ((side[with_label] == d).sum(), -d))
            pool = with_label[side[with_label] == donor]
            g = pool[np.lexsort((first_sha[pool].astype(str), counts[pool].sum(axis=1)))[0]]  # smallest
            side[g] = s
            filled[donor] -= counts[g]
            filled[s] += counts[g]
    return np.asarray(SPLITS, dtype=object)[side[inverse]]


def stratified_subsample(idx: np.ndarray, manifest: pd.DataFrame, limit: int, seed: int) -> np.ndarray:
    """A fixed-seed subsample of the manifest rows ``idx`` (int array) stratified by (dataset, label):
    about ``limit`` rows, each stratum keeping its share (at least one row); sorted. ``limit`` 0 or
    at least ``len(idx)``: ``idx`` itself."""
    if not limit or len(idx) <= limit:
        return idx
    strata = manifest.iloc[idx].groupby(["dataset", "label"]).indices
    rng = np.random.default_rng(seed)
    picked = [idx[rows][rng.permutation(len(rows))[:max(1, round(limit * len(rows) / len(idx)))]]
              for rows in strata.values()]
    return np.sort(np.concatenate(picked))


def specialist_rows(manifest: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Boolean mask of the manifest rows ``spec`` trains on: its ``datasets`` (every row when empty).
    A specialist whose datasets have no images is a :class:`pipeline.config.ConfigError` (a ValueError)
    that names the datasets there are."""
    if not spec.datasets:
        return np.ones(len(manifest), dtype=bool)
    present = set(manifest["dataset"].astype(str))
    missing = [d for d in spec.datasets if d not in present]
    if missing:
        raise ConfigError(f"{spec.name}: datasets {missing} have no images in this run; its datasets are "
                         f"{', '.join(sorted(present))}")
    return manifest["dataset"].astype(str).isin(spec.datasets).to_numpy()

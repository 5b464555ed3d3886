"""Data ingestion: find labelled face folders, record a manifest, split it, decode it to arrays.

Layouts understood (folder names are case-insensitive):

* ``<root>/{real,fake}/...``: one dataset named after ``<root>``. Fake may also be called
  ``ai``, ``generated``, ``synthetic``; ciplab's ``training_real`` / ``training_fake`` work too.
* ``<root>/{train,valid,test}/{real,fake}/...`` (the Kaggle "140k Real and Fake Faces" layout):
  the given split is kept.
* ``<root>/<dataset>/...`` where every ``<dataset>`` is one of the above: several datasets at once
  (``../shared/data`` is such a root).

Identical files (same sha256) are kept once: the first copy stays, the others are listed as
skipped, so no image can sit on both sides of a split. An image found under both labels is
dropped altogether. Without a given split, each (dataset, label) stratum is split with a fixed seed.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, images
from pipeline.config import DataSource, RunConfig
from pipeline.progress import ProgressFn, report

REAL, FAKE = "real", "fake"
LABEL_ALIASES = {
    "real": REAL, "training_real": REAL, "genuine": REAL,
    "fake": FAKE, "ai": FAKE, "generated": FAKE, "synthetic": FAKE, "training_fake": FAKE,
}
SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "val", "val": "val",
                 "validation": "val", "test": "test", "testing": "test"}
SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["dataset", "label", "y", "path", "relpath", "sha256", "size_bytes", "given_split", "split"]
SKIPPED_COLUMNS = ["dataset", "path", "reason"]


class DataError(ValueError):
    """Data that cannot make a run; the message says what to do."""


@dataclass(frozen=True)
class DatasetFolder:
    name: str
    root: Path
    has_given_split: bool


def _subdirs(path: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _has_labels(path: Path) -> bool:
    labels = {LABEL_ALIASES[n] for n in _subdirs(path) if n in LABEL_ALIASES}
    return bool(labels)


def _has_splits(path: Path) -> bool:
    subs = _subdirs(path)
    return any(n in SPLIT_ALIASES and _has_labels(p) for n, p in subs.items())


def discover(source: DataSource) -> list[DatasetFolder]:
    """The datasets below one configured folder."""
    root = Path(source.path)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist. Point the run at a folder of labelled images: "
                        "`python -m pipeline train --data PATH` (PATH holding real/ and fake/ sub-folders), "
                        "or set `data` in the config file.")
    if not root.is_dir():
        raise DataError(f"data path {root} is a file, not a folder of labelled images")
    if _has_splits(root):
        return [DatasetFolder(source.name or root.name, root, True)]
    if _has_labels(root):
        return [DatasetFolder(source.name or root.name, root, False)]
    found = []
    for sub in _subdirs(root).values():
        if _has_splits(sub):
            found.append(DatasetFolder(sub.name, sub, True))
        elif _has_labels(sub):
            found.append(DatasetFolder(sub.name, sub, False))
    if not found:
        raise DataError(
            f"no labelled images found in {root}: expected sub-folders named real/fake (or ai, generated, "
            "synthetic, training_real/training_fake), train/valid/test with real/fake inside, or one folder "
            "per dataset holding those. Found: " + (", ".join(_subdirs(root)) or "no sub-folders"))
    if source.name and len(found) == 1:
        found = [DatasetFolder(source.name, found[0].root, found[0].has_given_split)]
    return found


def _image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) below ``folder``, sorted, hidden files ignored."""
    imgs, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            (imgs if p.suffix.lower() in images.SUPPORTED_EXTENSIONS else others).append(p)
    return imgs, others


def list_files(folder: DatasetFolder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candidate image rows (dataset, label, path, given_split) and files that are not images."""
    rows, skipped = [], []
    split_dirs = ({SPLIT_ALIASES[n]: p for n, p in _subdirs(folder.root).items() if n in SPLIT_ALIASES}
                  if folder.has_given_split else {"": folder.root})
    for split, split_root in split_dirs.items():
        for name, label_dir in _subdirs(split_root).items():
            if name not in LABEL_ALIASES:
                continue
            imgs, others = _image_files(label_dir)
            rows += [(folder.name, LABEL_ALIASES[name], str(p), split or None) for p in imgs]
            skipped += [(folder.name, str(p), f"not a supported image type ({p.suffix or 'no extension'}); "
                         f"supported: {', '.join(images.SUPPORTED_EXTENSIONS)}") for p in others]
    return (pd.DataFrame(rows, columns=["dataset", "label", "path", "given_split"]),
            pd.DataFrame(skipped, columns=SKIPPED_COLUMNS))


def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _inspect(path: str, max_pixels: int) -> dict:
    data = Path(path).read_bytes()
    problem = images.check_image(data, name=Path(path).name, max_pixels=max_pixels)
    return {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "problem": problem}


def inspect_files(paths: list[str], cache_file: Path | None, max_pixels: int,
                  progress: ProgressFn = None) -> pd.DataFrame:
    """sha256, size and readability of each file; results cached by (path, size, mtime)."""
    cache: dict = {}
    if cache_file is not None and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}  # a damaged cache is rebuilt, never trusted
    keys = [_file_key(p) for p in paths]
    todo = [(k, p) for k, p in zip(keys, paths) if k not in cache]
    if todo:
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            for i, ((key, _), result) in enumerate(zip(todo, pool.map(lambda kp: _inspect(kp[1], max_pixels), todo)), 1):
                cache[key] = result
                if i % 50 == 0 or i == len(todo):
                    report(progress, "checking images", i, len(todo))
        if cache_file is not None:
            artifacts.write_json(cache_file, cache)
    return pd.DataFrame([cache[k] for k in keys], columns=["sha256", "size_bytes", "problem"])


def collect_images(cfg: RunConfig, progress: ProgressFn = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every readable, distinct image of the configured folders: (files, skipped, dataset roots)."""
    if not cfg.data:
        raise DataError("no data configured. Give the run labelled folders: `python -m pipeline train --data "
                        "PATH` (a folder with real/ and fake/ sub-folders, or a folder of such datasets), "
                        "or list them under `data` in the config file.")
    folders = [f for src in cfg.data for f in discover(src)]
    names = [f.name for f in folders]
    if len(set(names)) != len(names):
        raise DataError(f"two data folders have the same dataset name ({names}); name them in the config: "
                        "data = [{path = \"...\", name = \"...\"}]")
    listed = [list_files(f) for f in folders]
    files = pd.concat([l[0] for l in listed], ignore_index=True)
    skipped = [l[1] for l in listed]
    if files.empty:
        raise DataError(f"the data folders ({', '.join(str(f.root) for f in folders)}) hold no images "
                        f"({', '.join(images.SUPPORTED_EXTENSIONS)})")
    cache_file = artifacts.cache_dir(cfg.artifacts_dir) / "file_index.json"
    info = inspect_files(files["path"].tolist(), cache_file, cfg.max_image_pixels, progress)
    files = pd.concat([files, info], axis=1)
    bad = files[files["problem"].notna()]
    skipped.append(pd.DataFrame({"dataset": bad["dataset"], "path": bad["path"], "reason": bad["problem"]}))
    files = files[files["problem"].isna()].drop(columns="problem")
    files, dup_skipped = _deduplicate(files)
    skipped.append(dup_skipped)
    skipped_df = pd.concat([s for s in skipped if not s.empty] or [pd.DataFrame(columns=SKIPPED_COLUMNS)],
                           ignore_index=True)
    if files.empty:
        raise DataError(f"none of the images in {', '.join(str(f.root) for f in folders)} could be read "
                        f"({len(skipped_df)} skipped; first reason: {skipped_df['reason'].iloc[0]})")
    return files, skipped_df, {f.name: f.root for f in folders}


def _finish(files: pd.DataFrame, roots: dict) -> pd.DataFrame:
    files = files.copy()
    files["relpath"] = [os.path.relpath(p, roots[d]) for p, d in zip(files["path"], files["dataset"])]
    files["y"] = (files["label"] == FAKE).astype("int8")
    return files[MANIFEST_COLUMNS].sort_values(["dataset", "label", "relpath"]).reset_index(drop=True)


def build_manifest(cfg: RunConfig, progress: ProgressFn = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, skipped) for training: every usable image once, with its split."""
    files, skipped, roots = collect_images(cfg, progress)
    files = _cap_per_class(files, cfg.max_images_per_class, cfg.seed)
    files = assign_splits(files, cfg.split, cfg.seed)
    _check_classes(files)
    return _finish(files, roots), skipped


def build_manifest_for_scoring(cfg: RunConfig, progress: ProgressFn = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, skipped) for evaluating a trained run: every usable image, all in split "test"."""
    files, skipped, roots = collect_images(cfg, progress)
    files = files.assign(split="test")
    return _finish(files, roots), skipped


def _deduplicate(files: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    files = files.sort_values(["dataset", "path"]).reset_index(drop=True)
    skipped = []
    conflicting = files.groupby("sha256")["label"].transform("nunique") > 1
    for _, row in files[conflicting].iterrows():
        skipped.append((row["dataset"], row["path"], "the same image is labelled both real and fake; dropped"))
    files = files[~conflicting]
    first = files.drop_duplicates("sha256", keep="first")
    first_path = dict(zip(first["sha256"], first["path"]))
    dups = files[~files.index.isin(first.index)]
    for _, row in dups.iterrows():
        skipped.append((row["dataset"], row["path"], f"duplicate of {first_path[row['sha256']]} (identical bytes)"))
    return first.reset_index(drop=True), pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)


def _cap_per_class(files: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    if not cap:
        return files
    parts = []
    for _, group in files.groupby(["dataset", "label"], sort=True):
        group = group.sort_values("sha256")
        parts.append(group.sample(n=min(cap, len(group)), random_state=seed) if len(group) > cap else group)
    return pd.concat(parts, ignore_index=True)


def assign_splits(files: pd.DataFrame, fractions: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Keep given splits; split the rest stratified by (dataset, label), independent of file order."""
    files = files.copy()
    files["split"] = files["given_split"]
    for _, group in files[files["given_split"].isna()].groupby(["dataset", "label"], sort=True):
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


def _check_classes(files: pd.DataFrame) -> None:
    for split in ("train", "val"):
        labels = set(files.loc[files["split"] == split, "label"])
        if labels != {REAL, FAKE}:
            missing = {REAL, FAKE} - labels
            raise DataError(f"the {split} split has no {' or '.join(sorted(missing))} images. A detector needs both "
                            "classes: add images to the empty class folder (real/ or fake/) or check folder names.")


def summarize(manifest: pd.DataFrame, skipped: pd.DataFrame) -> dict:
    counts = (manifest.groupby(["dataset", "split", "label"]).size().rename("n").reset_index())
    balance = manifest.groupby("dataset")["y"].mean().rename("fake_fraction")
    return {
        "n_images": int(len(manifest)),
        "datasets": sorted(manifest["dataset"].unique().tolist()),
        "counts": counts.to_dict(orient="records"),
        "fake_fraction": {k: round(float(v), 4) for k, v in balance.items()},
        "n_skipped": int(len(skipped)),
        "skipped_by_reason": skipped["reason"].str.split(r" \(|;", regex=True).str[0].value_counts().to_dict()
        if len(skipped) else {},
    }


def load_arrays(manifest: pd.DataFrame, size: int, cache_folder: Path | None,
                progress: ProgressFn = None) -> np.ndarray:
    """Decoded RGB images (N, size, size, 3) uint8 in manifest order, cached on disk per content."""
    key = artifacts.stable_hash({"sha": manifest["sha256"].tolist(), "size": size, "v": 1})[:16]
    cache_file = cache_folder / f"images_{size}px_{key}.npy" if cache_folder else None
    if cache_file is not None and cache_file.exists():
        try:
            arr = artifacts.read_npy(cache_file)
            if arr.shape == (len(manifest), size, size, 3):
                return arr
        except (OSError, ValueError):
            pass  # damaged cache: rebuild
    out = np.empty((len(manifest), size, size, 3), dtype=np.uint8)
    paths = manifest["path"].tolist()

    def decode(i: int) -> None:
        out[i] = images.load_for_model(paths[i], size)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for i, _ in enumerate(pool.map(decode, range(len(paths))), 1):
            if i % 100 == 0 or i == len(paths):
                report(progress, f"decoding images at {size}px", i, len(paths))
    if cache_file is not None:
        artifacts.write_npy(cache_file, out)
    return out


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

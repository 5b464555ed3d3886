"""Data ingestion: record a manifest of the labelled face folders, split it, decode it to arrays.

The folders and their layouts (real/fake, train/valid/test, a folder of datasets) are found by
:mod:`pipeline.data_folders` (:func:`~pipeline.data_folders.discover`, :class:`~pipeline.data_folders.DataError`).

Identical files (same sha256) are kept once: the first copy stays, the others are listed as
skipped, so no image can sit on both sides of a split. An image found under both labels is
dropped altogether. Without a given split, each (dataset, label) stratum is split with a fixed seed.

A dataset folder may hold ``groups.csv`` (columns ``file,group``; see :func:`read_groups`): images
that must stay together (the frames of one video, a real video and the fakes made from it). The
split then keeps each group on one side, still balancing (dataset, label) as far as the groups
allow (:func:`assign_splits`). Files it does not list are their own group; the manifest records
every file's group in its ``group`` column (an ungrouped file's group is its ``relpath``).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, image_formats, images, store
from pipeline.config import RunConfig
from pipeline.data_folders import FAKE, REAL, DataError, DatasetFolder, discover, list_files
from pipeline.splits import SPLITS, assign_splits  # noqa: F401  (data.SPLITS: the split names)
from pipeline.progress import ProgressFn, report

MANIFEST_COLUMNS = store.MANIFEST_COLUMNS
SKIPPED_COLUMNS = store.SKIPPED_COLUMNS
GROUPS_FILE = "groups.csv"
MAX_GROUPS_FILE_BYTES = 64 * 2**20  # a groups.csv larger than this is not a list of file names

log = logging.getLogger(__name__)


def _norm_entry(entry: str) -> str:
    entry = entry.strip().replace("\\", "/")
    while entry.startswith("./"):
        entry = entry[2:]
    return entry


def read_groups(path: Path) -> pd.DataFrame:
    """Read one dataset's ``groups.csv``: a (file, group) table of str, one row per listed file.

    The file is UTF-8 CSV (a byte-order mark is allowed) with a header naming at least the columns
    ``file`` and ``group`` (case and surrounding spaces ignored; other columns are ignored). ``file``
    is the image's path relative to the dataset folder (``fake/abc.jpg``, as in DFDC's groups.csv;
    ``\\`` and a leading ``./`` are accepted) or a bare file name (``abc.jpg``) when that name is
    unique in the dataset; ``group`` is any non-empty name. A file listed twice with the same group
    is one row; listed with two groups it is an error.

    Raises :class:`DataError` (naming the file and the fix) for a file that cannot be read, is empty,
    is not text CSV, lacks a column, has a row with an empty file or group, or gives one file two groups.
    """
    where = f"{path}"
    fix = (f"{GROUPS_FILE} must be a CSV file with a header line `file,group` and one line per image, e.g. "
           "`fake/abc.jpg,video_017` (file relative to the dataset folder; group any name). Fix or delete it.")
    try:
        size = path.stat().st_size
        if size > MAX_GROUPS_FILE_BYTES:
            raise DataError(f"{where} is {size / 2**20:.0f} MiB: too large for a list of files. {fix}")
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is empty. {fix}") from None
    except (UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"{where} is not a text CSV file ({type(exc).__name__}: {str(exc)[:120]}). {fix}") from None
    except OSError as exc:
        raise DataError(f"{where} cannot be read ({exc}). {fix}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in ("file", "group") if c not in table.columns]
    if missing:
        found = ", ".join(repr(c) for c in table.columns) or "none"
        raise DataError(f"{where} lacks the column(s) {', '.join(missing)} (header columns found: {found}). {fix}")
    table = table[["file", "group"]].astype(str)
    if table.empty:
        raise DataError(f"{where} lists no files (only a header). {fix}")
    table["file"] = table["file"].map(_norm_entry)
    table["group"] = table["group"].str.strip()
    for col in ("file", "group"):
        empty = table.index[table[col] == ""]
        if len(empty):
            rows = ", ".join(str(i + 1) for i in empty[:5])
            raise DataError(f"{where}: data row(s) {rows} (counted after the header) have an empty {col}. {fix}")
    table = table.drop_duplicates()
    twice = table["file"][table["file"].duplicated()].unique()
    if len(twice):
        raise DataError(f"{where} gives {len(twice)} file(s) two different groups (e.g. {', '.join(twice[:3])}). "
                        "Each file belongs to exactly one group: keep one line per file.")
    return table.reset_index(drop=True)


def match_groups(table: pd.DataFrame, relpaths: list[str], source: Path) -> tuple[list[str | None], list[str]]:
    """Each file's group from a :func:`read_groups` table: (group or None per relpath, unmatched entries).

    ``relpaths`` are the dataset's image paths relative to its folder ("/"-separated). An entry matches
    a relpath exactly, or, without a "/", the one file of that name. Raises :class:`DataError` when a
    bare name fits several files, or when entries naming one file give it two groups.
    """
    rel = [r.replace(os.sep, "/") for r in relpaths]
    position = {r: i for i, r in enumerate(rel)}
    by_name: dict[str, list[int]] = {}
    for i, r in enumerate(rel):
        by_name.setdefault(r.rsplit("/", 1)[-1], []).append(i)
    groups: list[str | None] = [None] * len(rel)
    unknown = []
    for entry, group in zip(table["file"], table["group"]):
        i = position.get(entry)
        if i is None and "/" not in entry:
            hits = by_name.get(entry, [])
            if len(hits) > 1:
                raise DataError(f"{source}: the file name {entry!r} fits {len(hits)} images "
                                f"({', '.join(rel[h] for h in hits[:3])}). Give the path relative to the "
                                f"dataset folder ({source.parent}) instead of the bare name.")
            i = hits[0] if hits else None
        if i is None:
            unknown.append(entry)
        elif groups[i] is not None and groups[i] != group:
            raise DataError(f"{source} gives {rel[i]} two groups ({groups[i]!r} and {group!r}), once by its path "
                            "and once by its name. Keep one line per file.")
        else:
            groups[i] = group
    return groups, unknown


def attach_groups(folder: DatasetFolder, files: pd.DataFrame) -> pd.DataFrame:
    """``files`` (one dataset's rows from :func:`list_files`) with a ``group`` column (str) from the
    folder's ``groups.csv``, plus ``group_listed`` (bool: the group came from the file). Files it does
    not list are their own group, named by their path relative to the dataset folder.

    Entries naming no image of the folder are logged as a warning and ignored (images may have been
    deleted since the file was written); a groups.csv none of whose entries names an image raises
    :class:`DataError` (wrong paths, or the file belongs to another folder).
    """
    rel = [os.path.relpath(p, folder.root).replace(os.sep, "/") for p in files["path"]]
    files = files.assign(group=rel, group_listed=False)
    source = folder.root / GROUPS_FILE
    if not source.is_file():
        return files
    table = read_groups(source)
    groups, unknown = match_groups(table, rel, source)
    if len(unknown) == len(table):
        raise DataError(f"none of the {len(table)} files listed in {source} is an image of {folder.root} "
                        f"(first: {unknown[0]!r}). List each image by its path relative to that folder, "
                        f"e.g. {rel[0] if rel else 'fake/abc.jpg'!r}.")
    if unknown:
        log.warning("%s: %d listed file(s) are not images of %s and are ignored (first: %s)",
                    source, len(unknown), folder.root, ", ".join(unknown[:3]))
    listed = np.array([g is not None for g in groups], dtype=bool)
    files["group"] = [g if g is not None else r for g, r in zip(groups, rel)]
    files["group_listed"] = listed
    return files


def _merge_groups_sharing_images(files: pd.DataFrame) -> pd.DataFrame:
    """Join, within a dataset, groups from groups.csv that hold byte-identical images (same sha256):
    de-duplication keeps one copy, so the rest of both groups must stay on its side. The joined
    group is named after its alphabetically first member group."""
    listed = files[files["group_listed"]]
    shared = listed.groupby(["dataset", "sha256"])["group"].agg(lambda g: sorted(set(g)))
    shared = shared[shared.map(len) > 1]
    if shared.empty:
        return files
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(k):
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for (dataset, _), names in shared.items():
        roots = sorted({find((dataset, n)) for n in names})
        for r in roots[1:]:
            parent[r] = roots[0]
    files = files.copy()
    files["group"] = [find((d, g))[1] if listed_ else g
                      for d, g, listed_ in zip(files["dataset"], files["group"], files["group_listed"])]
    return files


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
    files = pd.concat([attach_groups(f, l[0]) for f, l in zip(folders, listed)], ignore_index=True)
    skipped = [l[1] for l in listed]
    if files.empty:
        raise DataError(f"the data folders ({', '.join(str(f.root) for f in folders)}) hold no images "
                        f"({', '.join(image_formats.SUPPORTED_EXTENSIONS)})")
    cache_file = artifacts.cache_dir(cfg.artifacts_dir) / "file_index.json"
    info = inspect_files(files["path"].tolist(), cache_file, cfg.max_image_pixels, progress)
    files = pd.concat([files, info], axis=1)
    bad = files[files["problem"].notna()]
    skipped.append(pd.DataFrame({"dataset": bad["dataset"], "path": bad["path"], "reason": bad["problem"]}))
    files = files[files["problem"].isna()].drop(columns="problem")
    files = _merge_groups_sharing_images(files).drop(columns="group_listed")
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


def augmented_batches(paths, aug, copies: int, seed: int, max_pixels: int, chunk: int = 64):
    """Yield ``(at, batch)``: ``copies`` random augmented copies of each image file in ``paths``, decoded with
    :func:`pipeline.images.load_rgb` and drawn by :func:`pipeline.degrade.augmented_copy` from ``aug`` (an
    :class:`~pipeline.config.Augmentation`) and (``seed``, the path, the copy number) alone
    (:func:`pipeline.degrade.copy_rng`), in batches of at most ``chunk`` (H, W, 3) uint8 arrays. Copy-major:
    ``at`` is the position of the batch's first copy in the order copy 0 of every path, then copy 1, ...
    Every model of a run that asks for copy ``c`` of an image gets the same pixels (and a cache keyed by
    content embeds it once). Raises :class:`pipeline.images.ImageError` for a file that cannot be decoded."""
    from pipeline import degrade

    paths = list(paths)
    for c in range(copies):
        for start in range(0, len(paths), chunk):
            batch = [degrade.augmented_copy(images.load_rgb(path, max_pixels=max_pixels), aug,
                                            degrade.copy_rng(seed, path, c)) for path in paths[start:start + chunk]]
            yield c * len(paths) + start, batch


def _cap_per_class(files: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    if not cap:
        return files
    parts = []
    for _, group in files.groupby(["dataset", "label"], sort=True):
        group = group.sort_values("sha256")
        parts.append(group.sample(n=min(cap, len(group)), random_state=seed) if len(group) > cap else group)
    return pd.concat(parts, ignore_index=True)


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

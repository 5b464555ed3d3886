"""Where a run's files live, and how they are written: atomically, versioned by a hash.

The run id is ``<config name>-<12 hex>`` of sha256 over the config fingerprint and the data
manifest (every file's dataset, label, split and content hash, and which files share a group), so an unchanged rerun finds its
finished work. Every write goes to a temporary file in the target folder and is renamed into
place: a killed process leaves either the old file, or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

PIPELINE_VERSION = 2  # bump when the artifact format changes: old runs get new ids (2: detector kinds, store)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()


def _group_partition(manifest: pd.DataFrame) -> pd.Series | None:
    """Per row, the smallest sha256 in its (dataset, group): which images are grouped together, free
    of group names. None when there is no ``group`` column or every group holds one image."""
    if "group" not in manifest.columns or manifest.empty:
        return None
    keys = [manifest["dataset"].astype(str), manifest["group"].astype(str)]
    if manifest.groupby(keys).size().max() <= 1:
        return None
    return manifest.groupby(keys)["sha256"].transform("min").astype(str)


def manifest_hash(manifest: pd.DataFrame) -> str:
    """sha256 (hex) over every row's dataset, label, split and content hash, independent of row order.
    When the manifest groups images (a ``group`` holding several images of a dataset, from a groups.csv),
    which images share a group is hashed too (not the group names). A manifest without groups, or with
    one image per group, hashes as it did before groups existed, so those run ids stay valid."""
    cols = ["dataset", "label", "split", "sha256"]
    partition = _group_partition(manifest)
    if partition is None:
        table = manifest[cols].sort_values(cols).astype(str)
    else:
        table = manifest[cols].astype(str).assign(group_of=partition.to_numpy())
        table = table.sort_values([*cols, "group_of"])
    rows = table.iloc[:, 0].to_numpy(dtype=object)  # "|".join of each row, column by column (vectorised)
    for col in table.columns[1:]:
        rows = rows + "|" + table[col].to_numpy(dtype=object)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def make_run_id(config_name: str, fingerprint: dict[str, Any], manifest: pd.DataFrame) -> str:
    digest = stable_hash({"config": fingerprint, "data": manifest_hash(manifest), "v": PIPELINE_VERSION})
    safe_name = "".join(c if c.isalnum() or c in "-_" else "-" for c in config_name) or "run"
    return f"{safe_name}-{digest[:12]}"


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync and rename it over ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix or target.suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; artifacts are ordinary readable files
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | Path, obj: Any) -> None:
    write_bytes(target, json.dumps(obj, indent=2, default=_json_default).encode())


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(target: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(target, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(target: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(target, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def write_npy(target: str | Path, array: np.ndarray) -> None:
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def save_keras_model(model, target: str | Path) -> None:
    with atomic_path(target, suffix=".keras") as tmp:
        tmp.unlink()  # keras refuses to overwrite silently in some versions; let it create the file
        model.save(tmp)


def cache_dir(artifacts_dir: str | Path) -> Path:
    path = Path(artifacts_dir) / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path

"""The labelled folder layouts a run reads, and the image files in them.

Layouts understood (folder names are case-insensitive):

* ``<root>/{real,fake}/...``: one dataset named after ``<root>``. Fake may also be called
  ``ai``, ``generated``, ``synthetic``; ciplab's ``training_real`` / ``training_fake`` work too.
* ``<root>/{train,valid,test}/{real,fake}/...`` (the Kaggle "140k Real and Fake Faces" layout):
  the given split is kept.
* ``<root>/<dataset>/...`` where every ``<dataset>`` is one of the above: several datasets at once
  (``../shared/data`` is such a root).

:func:`discover` finds the datasets below a configured folder, :func:`list_files` their image files (by
extension, :data:`pipeline.image_formats.SUPPORTED_EXTENSIONS`) and the other files, which a run lists as
skipped. :class:`DataError` is the error of data that cannot make a run (here and in :mod:`pipeline.data`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import image_formats, store
from pipeline.config import DataSource

REAL, FAKE = "real", "fake"
LABEL_ALIASES = {
    "real": REAL, "training_real": REAL, "genuine": REAL,
    "fake": FAKE, "ai": FAKE, "generated": FAKE, "synthetic": FAKE, "training_fake": FAKE,
}
SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "val", "val": "val",
                 "validation": "val", "test": "test", "testing": "test"}

class DataError(ValueError):
    """Data that cannot make a run; the message says what to do."""


@dataclass(frozen=True)
class DatasetFolder:
    """One dataset: its name, its folder, and whether the folder gives the split (train/valid/test)."""

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
            (imgs if p.suffix.lower() in image_formats.SUPPORTED_EXTENSIONS else others).append(p)
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
                         f"supported: {', '.join(image_formats.SUPPORTED_EXTENSIONS)}") for p in others]
    return (pd.DataFrame(rows, columns=["dataset", "label", "path", "given_split"]),
            pd.DataFrame(skipped, columns=store.SKIPPED_COLUMNS))

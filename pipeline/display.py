"""Paths as a person reads them in a table: relative to the data folder they come from, not absolute.

``/home/ana/data/faces140k/real/00017.jpg`` under the data folder ``/home/ana/data/faces140k`` reads
``faces140k/real/00017.jpg``: the folder's own name, then the path inside it. A path under none of the
folders is left as it is.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath

import pandas as pd


def data_roots(config: Mapping) -> list[str]:
    """The data folders of a run's resolved config (``run.json`` ``config.data``: strings or
    ``{"path": ..., "name": ...}`` tables), in order; empty when it names none."""
    roots = []
    for src in config.get("data") or []:
        path = src.get("path") if isinstance(src, Mapping) else src
        if path:
            roots.append(str(path))
    return roots


def relative_path(path: str, roots: Sequence[str]) -> str:
    """``path`` as ``<root folder name>/<path inside it>`` for the deepest of ``roots`` that holds it,
    else ``path`` unchanged (pure string work: nothing is read from disk)."""
    p = PurePath(os.path.normpath(str(path)))
    best: PurePath | None = None
    for root in roots:
        r = PurePath(os.path.normpath(str(root)))
        if p.is_relative_to(r) and (best is None or len(r.parts) > len(best.parts)):
            best = r
    if best is None:
        return str(path)
    inside = p.relative_to(best)
    return str(PurePath(best.name) / inside) if best.name else str(inside)


def relative_paths(paths: Iterable[str] | pd.Series, roots: Sequence[str]) -> pd.Series:
    """:func:`relative_path` of every path (keeps a Series' index)."""
    s = paths if isinstance(paths, pd.Series) else pd.Series(list(paths), dtype=object)
    return s.astype(str).map(lambda v: relative_path(v, roots))

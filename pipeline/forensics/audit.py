"""Dataset shortcut audit: can a detector tell real from fake by the file alone, without looking at the face?

Per dataset and class, the distributions of the file facts (format, JPEG quality and quantisation table,
chroma subsampling, progressive scans, image size, EXIF presence), and a baseline classifier that sees only
those facts (no pixels): scikit-learn's random forest, 5-fold stratified cross-validated ROC-AUC per dataset.
An AUC well above 0.5 means the classes were encoded differently, so any detector can score well by reading
the encoding instead of the face (the "shortcut" of Geirhos et al., "Shortcut learning in deep neural
networks", Nature Machine Intelligence 2020).

Facts are read from the file headers only (Pillow, no pixel decoding): about 0.3 ms a file. The result is
cached in the run folder (``forensics/file_facts.parquet`` and ``forensics/shortcut_audit.json``, written
atomically, keyed by the manifest's hash) when the folder is writable.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline import artifacts, image_formats
from pipeline.forensics.jpeg import estimate_quality, subsampling_of
from pipeline.progress import ProgressFn, report

AUDIT_VERSION = 1
CATEGORICAL = ["format", "jpeg_table", "subsampling", "progressive", "has_exif"]
NUMERIC = ["width", "height", "jpeg_quality"]
FACTS = CATEGORICAL + NUMERIC
SHORTCUT_AUC = 0.70  # a file-facts-only AUC at or above this flags a shortcut
DIFFERENCE_TV = 0.10  # classes "differ" in a fact when its distributions are this far apart (total variation)
FOLDS = 5
FOLDER = "forensics"


def file_facts(path: str | Path) -> dict:
    """The header facts of one file: format, width, height (pixels), jpeg_quality (closest IJG, else NaN),
    jpeg_table (12 hex digits of the tables' hash, "" for non-JPEG), subsampling, progressive, has_exif.

    Never raises: an unreadable file gets ``format = "unreadable"``.
    """
    row = {"format": "unreadable", "width": np.nan, "height": np.nan, "jpeg_quality": np.nan, "jpeg_table": "",
           "subsampling": "", "progressive": False, "has_exif": False}
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)  # headers (tables, EXIF) live in the first MB
        with Image.open(io.BytesIO(head), formats=image_formats.PIL_FORMATS) as im:
            row["format"] = image_formats.FORMAT_NAMES.get(im.format or "", im.format or "unknown")
            row["width"], row["height"] = im.size
            try:
                row["has_exif"] = bool(im.getexif())
            except Exception:  # noqa: BLE001 - damaged EXIF counts as present but unreadable
                row["has_exif"] = True
            if im.format in ("JPEG", "MPO"):
                tables = {int(k): list(v) for k, v in (im.quantization or {}).items()}
                quality, _ = estimate_quality(tables)
                row["jpeg_quality"] = float(quality) if quality else np.nan
                row["jpeg_table"] = hashlib.sha1(repr(sorted(tables.items())).encode()).hexdigest()[:12]
                row["subsampling"] = subsampling_of(im)
                row["progressive"] = bool(im.info.get("progressive") or im.info.get("progression"))
    except Exception:  # noqa: BLE001 - the audit reports, it never stops
        pass
    return row


def collect_facts(manifest: pd.DataFrame, progress: ProgressFn = None) -> pd.DataFrame:
    """One row per manifest image: dataset, label, y, path and :func:`file_facts`."""
    rows = []
    paths = manifest["path"].astype(str).tolist()
    for i, path in enumerate(paths):
        rows.append(file_facts(path))
        if i % 200 == 0 or i == len(paths) - 1:
            report(progress, "file facts", i + 1, len(paths))
    facts = pd.DataFrame(rows, index=manifest.index)
    out = pd.concat([manifest[["dataset", "label", "y", "path"]].reset_index(drop=True),
                     facts.reset_index(drop=True)], axis=1)
    out["size"] = [f"{int(w)}x{int(h)}" if w == w else "?" for w, h in zip(out["width"], out["height"])]
    out["jpeg_quality_text"] = [str(int(q)) if q == q else "-" for q in out["jpeg_quality"]]
    return out


def distributions(facts: pd.DataFrame) -> pd.DataFrame:
    """Long table: dataset, fact, value, and per class its count and share (columns ``n_<label>``,
    ``share_<label>``). Facts: format, jpeg_quality, jpeg_table, subsampling, progressive, size, has_exif."""
    parts = []
    for fact, column in (("format", "format"), ("jpeg_quality", "jpeg_quality_text"), ("jpeg_table", "jpeg_table"),
                         ("subsampling", "subsampling"), ("progressive", "progressive"), ("size", "size"),
                         ("has_exif", "has_exif")):
        counts = facts.groupby(["dataset", column, "label"]).size().unstack("label", fill_value=0)
        totals = facts.groupby(["dataset", "label"]).size().unstack("label", fill_value=0)
        shares = counts.div(totals.reindex(counts.index.get_level_values(0)).to_numpy(), axis=None)
        frame = pd.concat([counts.add_prefix("n_"), shares.add_prefix("share_")], axis=1).reset_index()
        frame = frame.rename(columns={column: "value"})
        frame.insert(1, "fact", fact)
        frame["value"] = frame["value"].astype(str)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def class_differences(facts: pd.DataFrame, dataset: str) -> list[str]:
    """The facts whose distributions differ between real and fake in ``dataset`` (total variation >= 0.1)."""
    sub = facts[facts["dataset"] == dataset]
    found = []
    for fact, column in (("format", "format"), ("JPEG quality", "jpeg_quality_text"),
                         ("quantisation table", "jpeg_table"), ("chroma subsampling", "subsampling"),
                         ("progressive/baseline", "progressive"), ("image size", "size"), ("EXIF presence", "has_exif")):
        shares = sub.groupby("label")[column].value_counts(normalize=True).unstack(fill_value=0.0)
        if len(shares) < 2:
            continue
        tv = 0.5 * float(np.abs(shares.iloc[0] - shares.iloc[1]).sum())
        if tv >= DIFFERENCE_TV:
            found.append(f"{fact} (classes {tv:.0%} apart)")
    return found


def _features(sub: pd.DataFrame) -> np.ndarray:
    cat = pd.get_dummies(sub[CATEGORICAL].astype(str), dtype=float)
    num = sub[NUMERIC].astype(float).fillna(-1.0)
    return np.hstack([cat.to_numpy(), num.to_numpy()])


def baseline_auc(facts: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per dataset: n, n_real, n_fake, unreadable (files whose header could not be read), roc_auc (mean over 5
    stratified folds), roc_auc_std, differences (sentences), shortcut (bool: AUC >= :data:`SHORTCUT_AUC`).

    The classifier: ``RandomForestClassifier(50 trees, min_samples_leaf=5)`` on one-hot file facts and
    the numeric width, height, JPEG quality; it never sees a pixel or a file name. A dataset with one class
    or fewer than 2 x 5 images per class, or with more than half of its files unreadable (e.g. the data folder is
    not on this machine), gets a NaN AUC.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rows = []
    for dataset, sub in facts.groupby("dataset", sort=True):
        y = sub["y"].astype(int).to_numpy()
        n_fake, n_real = int(y.sum()), int(len(y) - y.sum())
        auc, std = np.nan, np.nan
        unreadable = int((sub["format"] == "unreadable").sum())
        if min(n_fake, n_real) >= FOLDS * 2 and unreadable <= len(y) // 2:
            clf = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=seed, n_jobs=1)
            scores = cross_val_score(clf, _features(sub), y, scoring="roc_auc",
                                     cv=StratifiedKFold(FOLDS, shuffle=True, random_state=seed))
            auc, std = float(scores.mean()), float(scores.std())
        rows.append({"dataset": str(dataset), "n": len(y), "n_real": n_real, "n_fake": n_fake,
                     "unreadable": unreadable, "roc_auc": auc,
                     "roc_auc_std": std, "differences": class_differences(facts, str(dataset)),
                     "shortcut": bool(auc == auc and auc >= SHORTCUT_AUC)})
    return pd.DataFrame(rows)


@dataclass
class Audit:
    """The shortcut audit of one run: ``facts`` (one row per image), ``baseline`` (one row per dataset, see
    :func:`baseline_auc`), ``seconds`` (time to compute it, 0 when read from the cache)."""

    facts: pd.DataFrame
    baseline: pd.DataFrame
    seconds: float = 0.0

    def distributions(self) -> pd.DataFrame:
        return distributions(self.facts)

    def verdict_lines(self) -> list[str]:
        """One plain sentence per dataset."""
        lines = []
        for r in self.baseline.itertuples(index=False):
            auc = "n/a" if r.roc_auc != r.roc_auc else f"{r.roc_auc:.2f}"
            if r.roc_auc != r.roc_auc and r.unreadable > r.n // 2:
                lines.append(f"{r.dataset}: {r.unreadable:,} of {r.n:,} files could not be read here (is the "
                             "data folder on this machine?), so the audit says nothing.")
            elif r.roc_auc != r.roc_auc:
                lines.append(f"{r.dataset}: too few images per class for a cross-validated AUC.")
            elif r.shortcut:
                lines.append(f"{r.dataset}: SHORTCUT. The file facts alone separate real from fake (ROC-AUC {auc}, "
                             f"no pixels seen): {'; '.join(r.differences) or 'a combination of facts'}. A detector "
                             "can score well here by reading the encoding instead of the face.")
            elif r.differences:
                lines.append(f"{r.dataset}: the classes differ in {'; '.join(r.differences)}, but the file facts "
                             f"alone hardly separate them (ROC-AUC {auc}).")
            else:
                lines.append(f"{r.dataset}: no format, table, size or EXIF difference between real and fake "
                             f"(file-facts ROC-AUC {auc}): no file shortcut.")
        return lines


def compute(manifest: pd.DataFrame, progress: ProgressFn = None) -> Audit:
    """The audit of a manifest (columns dataset, label, y, path). Reads every file's header."""
    import time

    start = time.perf_counter()
    facts = collect_facts(manifest, progress)
    base = baseline_auc(facts)
    return Audit(facts, base, time.perf_counter() - start)


def _cache_files(run) -> tuple[str, Path, Path]:
    key = f"{AUDIT_VERSION}-{artifacts.manifest_hash(run.manifest())}"
    folder = Path(run.path) / FOLDER
    return key, folder / "shortcut_audit.json", folder / "file_facts.parquet"


def load_cached(run) -> Audit | None:
    """The run's cached audit when it matches its current manifest, else None (never raises for a bad cache)."""
    try:
        key, meta_file, facts_file = _cache_files(run)
        meta = artifacts.read_json(meta_file)
        if meta.get("key") == key:
            return Audit(pd.read_parquet(facts_file), pd.DataFrame(meta["baseline"]), 0.0)
    except Exception:  # noqa: BLE001 - missing or damaged cache: recompute
        pass
    return None


def for_run(run, progress: ProgressFn = None, write: bool = True) -> Audit:
    """The audit of a run's manifest (a :class:`pipeline.results.Run`), from its cache when current.

    The cache (``<run>/forensics/``) is keyed by :func:`pipeline.artifacts.manifest_hash` and
    :data:`AUDIT_VERSION`; it is written atomically when ``write`` and the folder is writable (a read-only
    run folder just means computing again next time).
    """
    cached = load_cached(run)
    if cached is not None:
        return cached
    key, meta_file, facts_file = _cache_files(run)
    audit = compute(run.manifest(), progress)
    if write:
        try:
            meta_file.parent.mkdir(exist_ok=True)
            artifacts.write_parquet(facts_file, audit.facts)
            artifacts.write_json(meta_file, {"key": key, "seconds": round(audit.seconds, 3),
                                             "baseline": audit.baseline.to_dict(orient="records")})
        except OSError:
            pass
    return audit

"""Checking uploaded photos: decode each file safely, crop its faces, score every face with every
model and combine the models into one ensemble verdict. Used by the dashboard's *Check an image*
page and ``python -m pipeline predict --crop-faces``.

Every file gets its own :class:`FileCheck`: a file that cannot be decoded (or fails later) carries
the :class:`~pipeline.images.ImageError` message in ``error`` and never stops the other files.

Ensemble rule (:func:`ensemble`): each model's probability is re-centred on its own decision
threshold in log-odds, ``z_m = logit(p_m) - logit(t_m)``, so every model says "fake" exactly when
``z_m >= 0``; the ensemble probability is ``sigmoid(mean_m z_m)`` and the verdict is fake when it is
``>= 0.5`` (a geometric-mean-of-odds vote in which each model sits at its own threshold). Unlike
"mean p vs mean threshold" (which is the same as the mean of ``p_m - t_m``), a very confident model
counts more than a hesitant one and a model whose threshold is low is not favoured. ``votes`` is the
plain majority count, shown alongside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pipeline import images
from pipeline.inference import LoadedModel, score_rgb, verdict

ENSEMBLE_RULE = ("mean of the models' log-odds, each re-centred on its own threshold: "
                 "sigmoid(mean(logit(p) - logit(threshold))) >= 0.5 means fake")
WHOLE_IMAGE_NOTE = "No face found: the whole image was scored (the models were trained on tight face crops)."
NO_FACE_NOTE = "No face found in this image."
_EPS = 1e-6


@dataclass
class FaceCheck:
    index: int  # 1-based face number; 0 = the whole image
    box: tuple[int, int, int, int] | None  # (x, y, w, h) of the scored crop in the photo; None = whole image
    confidence: float | None  # face detector confidence; None = whole image
    crop: np.ndarray
    scores: list[dict]  # one record per model: model, p_fake, threshold, verdict
    ensemble: dict

    @property
    def label(self) -> str:
        return "whole image" if self.index == 0 else f"face {self.index}"


@dataclass
class FileCheck:
    name: str
    rgb: np.ndarray | None = None
    error: str | None = None
    faces: list[FaceCheck] = field(default_factory=list)
    detected: list[Any] = field(default_factory=list)  # pipeline.faces.Face objects
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def ensemble(records: list[dict]) -> dict:
    """Combine per-model records (``p_fake``, ``threshold``) into one verdict (see the module doc)."""
    if not records:
        return {"p_fake": None, "verdict": None, "votes_fake": 0, "n_models": 0, "rule": ENSEMBLE_RULE}
    z = float(np.mean([_logit(r["p_fake"]) - _logit(r["threshold"]) for r in records]))
    p = 1.0 / (1.0 + math.exp(-z))
    votes = sum(r["verdict"] == "fake" for r in records)
    return {"p_fake": round(p, 6), "verdict": verdict(p, 0.5), "votes_fake": int(votes), "n_models": len(records),
            "rule": ENSEMBLE_RULE}


def best_model(summary, available: Iterable[str]) -> str | None:
    """The available model with the highest pooled test ROC-AUC in a run's summary (None if unknown)."""
    available = list(available)
    if not available:
        return None
    try:
        pooled = summary[(summary["scope"] == "all") & (summary["model"].isin(available))]
        pooled = pooled.dropna(subset=["roc_auc"]).sort_values("roc_auc", ascending=False, kind="stable")
        if len(pooled):
            return str(pooled.iloc[0]["model"])
    except (KeyError, TypeError, AttributeError):
        pass
    return available[0]


def _source(item) -> tuple[str, Any]:
    """(name, source for images.load_rgb) from a path, (name, bytes|path|file) or an uploaded file object."""
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), item[1]
    if isinstance(item, (str, Path)):
        return Path(item).name, item
    if hasattr(item, "getvalue"):  # streamlit UploadedFile, BytesIO
        return str(getattr(item, "name", "upload")), item.getvalue()
    raise TypeError(f"cannot read {type(item).__name__!r} as an image file")


def check_image(name: str, rgb: np.ndarray, models: dict[str, LoadedModel], crop_faces: bool = True,
                whole_image_if_no_face: bool = True, min_confidence: float | None = None,
                margin: float | None = None) -> FileCheck:
    """Crop (optionally) and score one decoded image."""
    from pipeline import faces as face_mod

    result = FileCheck(name=name, rgb=rgb)
    crops: list[tuple[int, tuple | None, float | None, np.ndarray]] = []
    if crop_faces:
        found = face_mod.detect_faces(
            rgb, min_confidence=face_mod.DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence,
            margin=face_mod.DEFAULT_MARGIN if margin is None else margin)
        result.detected = found
        crops = [(i + 1, f.crop_box, f.confidence, f.crop) for i, f in enumerate(found)]
        if not found:
            result.note = WHOLE_IMAGE_NOTE if whole_image_if_no_face else NO_FACE_NOTE
    if not crop_faces or (not crops and whole_image_if_no_face):
        crops = [(0, None, None, rgb)]
    if crops and models:
        per_face = score_rgb([c[3] for c in crops], models)
        result.faces = [FaceCheck(i, box, conf, crop, recs, ensemble(recs))
                        for (i, box, conf, crop), recs in zip(crops, per_face)]
    return result


def check_files(files: Iterable, models: dict[str, LoadedModel], crop_faces: bool = True,
                whole_image_if_no_face: bool = True, min_confidence: float | None = None,
                margin: float | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                progress=None) -> list[FileCheck]:
    """Check each file (path, ``(name, bytes)`` or an uploaded file object); one :class:`FileCheck` each,
    in order. Bad files carry their error message; they never stop the others."""
    from pipeline.progress import report

    files = list(files)
    out = []
    for k, item in enumerate(files):
        try:
            name, source = _source(item)
        except TypeError as exc:
            out.append(FileCheck(name=str(item)[:80], error=str(exc)))
            continue
        try:
            rgb = images.load_rgb(source, name=name, max_pixels=max_pixels)
            out.append(check_image(name, rgb, models, crop_faces, whole_image_if_no_face, min_confidence, margin))
        except images.ImageError as exc:
            out.append(FileCheck(name=name, error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - one odd file must not break the batch
            out.append(FileCheck(name=name, error=f"{name} could not be checked ({type(exc).__name__}: {exc})"))
        report(progress, "checking images", k + 1, len(files))
    return out


def results_table(checks: list[FileCheck]):
    """One row per (file, face): file, face, box, confidence, per-model p_fake and verdict, ensemble, error."""
    import pandas as pd

    rows = []
    for c in checks:
        if not c.ok:
            rows.append({"file": c.name, "face": None, "error": c.error})
            continue
        if not c.faces:
            rows.append({"file": c.name, "face": None, "note": c.note})
            continue
        for f in c.faces:
            row = {"file": c.name, "face": f.label, "box": None if f.box is None else "x={} y={} w={} h={}".format(*f.box),
                   "face_confidence": None if f.confidence is None else round(f.confidence, 4),
                   "ensemble_p_fake": f.ensemble["p_fake"], "ensemble_verdict": f.ensemble["verdict"],
                   "votes_fake": f"{f.ensemble['votes_fake']}/{f.ensemble['n_models']}"}
            for r in f.scores:
                row[f"{r['model']}_p_fake"] = r["p_fake"]
                row[f"{r['model']}_verdict"] = r["verdict"]
            row["note"] = c.note
            rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("error", "note"):
        if col not in df.columns:
            df[col] = None
    return df

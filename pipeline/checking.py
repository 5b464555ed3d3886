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

Run verdict: when the run has a combined model (``ensemble_routed``, else ``ensemble_stacked``;
loaded with :func:`pipeline.experiments.ensemble.load_combiner` and passed as ``combiner``), each
face also gets ``FaceCheck.combined``: that model's ``p_fake`` at its own validation-chosen
threshold, its members' ``p_fake`` and, for the routed one, ``looks_like`` (the router's
probability of each dataset). It is the run's verdict; the log-odds vote above stays alongside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pipeline import images
from pipeline.inference import LoadedModel, score_arrays, score_rgb, verdict

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
    combined: dict | None = None  # the run's combined model (see the module doc); None without one

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
                margin: float | None = None, combiner=None) -> FileCheck:
    """Crop (optionally) and score one decoded image; with ``combiner`` (a loaded
    :class:`~pipeline.experiments.ensemble.Combiner`) each face also gets the run's combined verdict."""
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
    if crops and (models or combiner is not None):
        pixels = [c[3] for c in crops]
        arrays = score_arrays(pixels, models)
        per_face = score_rgb(pixels, models, arrays)
        combined: list = [None] * len(crops)
        if combiner is not None:
            from pipeline.experiments.ensemble import score_combined

            combined = score_combined(combiner, pixels, known=arrays)
        result.faces = [FaceCheck(i, box, conf, crop, recs, ensemble(recs), comb)
                        for (i, box, conf, crop), recs, comb in zip(crops, per_face, combined)]
    return result


def check_files(files: Iterable, models: dict[str, LoadedModel], crop_faces: bool = True,
                whole_image_if_no_face: bool = True, min_confidence: float | None = None,
                margin: float | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                progress=None, combiner=None) -> list[FileCheck]:
    """Check each file (path, ``(name, bytes)`` or an uploaded file object); one :class:`FileCheck` each,
    in order. Bad files carry their error message; they never stop the others. ``combiner``: see
    :func:`check_image`."""
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
            out.append(check_image(name, rgb, models, crop_faces, whole_image_if_no_face, min_confidence, margin,
                                   combiner))
        except images.ImageError as exc:
            out.append(FileCheck(name=name, error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - one odd file must not break the batch
            out.append(FileCheck(name=name, error=f"{name} could not be checked ({type(exc).__name__}: {exc})"))
        report(progress, "checking images", k + 1, len(files))
    return out


def looks_like_text(looks_like: dict | None, top: int = 2) -> str:
    """``"faces140k 91%, lfw_faceswap 7%"``: the router's likeliest datasets ('' without a router)."""
    if not looks_like:
        return ""
    ranked = sorted(looks_like.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.0%}" for k, v in ranked)


def pooled_auc(summary, model: str) -> float | None:
    """``model``'s pooled test ROC-AUC in a run's summary (None when unknown)."""
    try:
        rows = summary[(summary["scope"] == "all") & (summary["model"] == model)]["roc_auc"].dropna()
        return float(rows.iloc[0]) if len(rows) else None
    except (KeyError, TypeError, AttributeError):
        return None


def combined_headline(combined: dict, summary=None) -> str:
    """The run's verdict on one face as a Markdown line, e.g. "Run verdict — **ensemble_routed** (the
    run's combined model; best pooled test ROC-AUC of the run, 0.951): **fake**, p 0.870 at threshold
    0.420; looks like: faces140k 91%"."""
    name = combined["model"]
    about = "the run's combined model"
    auc = pooled_auc(summary, name) if summary is not None else None
    if auc is not None:
        models = summary["model"].dropna().astype(str).unique().tolist()
        best = best_model(summary, models) == name
        about += f"; {'best ' if best else ''}pooled test ROC-AUC{' of the run' if best else ''} {auc:.3f}"
    text = (f"Run verdict — **{name}** ({about}): **{combined['verdict']}**, p {combined['p_fake']:.3f} "
            f"at threshold {combined['threshold']:.3f}")
    looks = looks_like_text(combined.get("looks_like"))
    return text + (f"; looks like: {looks}" if looks else "")


def results_table(checks: list[FileCheck]):
    """One row per (file, face): file, face, box, confidence, the run's combined model (``combined_*``
    columns, when it was used), the log-odds ensemble, per-model p_fake and verdict, error."""
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
                   "face_confidence": None if f.confidence is None else round(f.confidence, 4)}
            if f.combined is not None:
                row.update({"combined_model": f.combined["model"], "combined_p_fake": f.combined["p_fake"],
                            "combined_threshold": f.combined["threshold"],
                            "combined_verdict": f.combined["verdict"],
                            "combined_looks_like": looks_like_text(f.combined.get("looks_like"), top=3) or None})
            row.update({"ensemble_p_fake": f.ensemble["p_fake"], "ensemble_verdict": f.ensemble["verdict"],
                        "votes_fake": f"{f.ensemble['votes_fake']}/{f.ensemble['n_models']}"})
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

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
loaded with :func:`pipeline.detectors.combined.load_combiner` and passed as ``combiner``), each
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
from pipeline.detectors import Detector, score_arrays, score_records, verdict

ENSEMBLE_RULE = ("mean of the models' log-odds, each re-centred on its own threshold: "
                 "sigmoid(mean(logit(p) - logit(threshold))) >= 0.5 means fake")
WHOLE_IMAGE_NOTE = ("No face found: the whole image was scored on request (the detectors judge faces, so "
                    "this score means little).")
NO_FACE_NOTE = "No face found: this tool judges faces, so nothing was scored."
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
    verdict: dict | None = None  # the three-way verdict (pipeline.verdict.decide); None without a policy

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


def verdict_scores(pixels: list[np.ndarray], policy, models: dict[str, Detector], combiner=None,
                   known: dict[str, np.ndarray] | None = None, route_p: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw p(fake) (n,) of the policy's verdict model for (H, W, 3) uint8 images, and the router's kind
    of each image (n,) str when the verdict model is routed (else None): the combined model when the
    policy is built on it, else that detector. ``known``: scores already computed (detectors', and the
    combined model's under its name); ``route_p``: the router's probabilities of these images already
    computed."""
    from pipeline.detectors.combined import combined_probabilities, route_images
    from pipeline.routing import routed_choice

    is_combiner = combiner is not None and policy.model == combiner.name
    if known and policy.model in known:
        p = np.asarray(known[policy.model], dtype=np.float64)
        if is_combiner and combiner.routed and route_p is None:
            route_p = route_images(combiner.spec["router"], pixels)
    elif is_combiner:
        p, _, route_p = combined_probabilities(combiner, pixels, known)
    elif policy.model in models:
        p = np.asarray(models[policy.model].predict_proba(pixels), dtype=np.float64)
    else:
        raise KeyError(f"the verdict model {policy.model!r} is not loaded")
    if not (is_combiner and combiner.routed) or route_p is None:
        return p, None
    return p, routed_choice(route_p, combiner.spec["router"]["classes"])[0]


def _verdicts(pixels: list[np.ndarray], policy, models, combiner, known, stability: bool,
              route_p: np.ndarray | None = None, perturbed: list[np.ndarray] | None = None) -> list[dict]:
    """The three-way verdict (:func:`pipeline.verdict.decide`) of each crop, each at its router kind's
    operating point when the verdict model is routed; with ``stability`` every crop's perturbed copies
    (``perturbed``: :func:`pipeline.verdict.perturbations` of each crop in turn, the policy's
    ``stability_copies``, made here when None)
    are scored too (one more batch), each routed on its own."""
    from pipeline import verdict as verdict_mod

    p, kinds = verdict_scores(pixels, policy, models, combiner, known, route_p)
    k = len(policy.stability_copies)
    p_perturbed = kinds_perturbed = None
    if stability:
        if perturbed is None:
            perturbed = [v for px in pixels for v in verdict_mod.perturbations(px, policy.stability_copies)]
        p_perturbed, kinds_perturbed = verdict_scores(perturbed, policy, models, combiner)
    unlike = policy.out_of_distribution(pixels)
    out = []
    for i in range(len(pixels)):
        window = slice(i * k, (i + 1) * k)
        out.append({"model": policy.model, **verdict_mod.decide(
            policy, float(p[i]), None if p_perturbed is None else p_perturbed[window], bool(unlike[i]),
            kind=None if kinds is None else str(kinds[i]),
            perturbed_kinds=None if kinds_perturbed is None else kinds_perturbed[window])})
    return out


def _uses_clip(detector) -> bool:
    from pipeline.detectors import clip_linear

    return getattr(detector, "kind", None) == clip_linear.KIND


def _embed_ahead(pixels: list[np.ndarray], perturbed: list[np.ndarray] | None, models: dict[str, Detector],
                 combiner, policy) -> None:
    """Encode with CLIP, in one :func:`pipeline.clip.embed` call, every crop (and perturbed copy) that the
    check will embed anyway: the CLIP detectors, a CLIP router and the CLIP look-alike score then find
    them in the encoder's memory of recent images, and the encoder works on several images at once
    (:data:`pipeline.clip.WORKERS`) instead of one crop first and its copies later. The same numbers:
    each image is still encoded alone."""
    from pipeline import clip, routing

    members = list(combiner.detectors.values()) if combiner is not None else []
    crops_use = any(_uses_clip(d) for d in [*models.values(), *members]) or (
        policy is not None and getattr(policy, "ood_clip", None) is not None)
    verdict_uses = policy is not None and (
        _uses_clip(models.get(policy.model)) or (combiner is not None and policy.model == combiner.name and (
            any(_uses_clip(d) for d in members)
            or (combiner.routed and routing.router_input(combiner.spec["router"]) == routing.CLIP))))
    todo = [*(pixels if crops_use else []), *(perturbed if perturbed and verdict_uses else [])]
    if len(todo) > 1:
        clip.embed(todo)


def check_image(name: str, rgb: np.ndarray, models: dict[str, Detector], crop_faces: bool = True,
                whole_image_if_no_face: bool = False, min_confidence: float | None = None,
                margin: float | None = None, combiner=None, policy=None, stability: bool | None = None) -> FileCheck:
    """Find the faces of one decoded (H, W, 3) uint8 image and score each: every model in ``models``,
    the run's combined model (``combiner``, a loaded :class:`~pipeline.detectors.combined.Combiner`)
    and, with ``policy`` (:class:`pipeline.verdict.VerdictPolicy`), the three-way verdict.

    Crops: with a policy, each face is framed as the run's training images framed theirs
    (:func:`pipeline.faces.frame_faces`: a photo framed like a training image is scored whole; the
    crop never takes in letterbox bars or a neighbouring face); without one, the face box widened by
    ``margin``. No face: nothing is scored (the note says why) unless ``whole_image_if_no_face``.
    ``crop_faces=False`` scores the whole image as given. ``stability`` (default: the policy's
    setting) runs the verdict's stability check."""
    from pipeline import faces as face_mod

    result = FileCheck(name=name, rgb=rgb)
    crops: list[tuple[int, tuple | None, float | None, np.ndarray]] = []
    if crop_faces:
        found = face_mod.detect_faces(
            rgb, min_confidence=face_mod.DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence,
            margin=face_mod.DEFAULT_MARGIN if margin is None else margin, retry_padded=True)  # tight crops too
        if found and policy is not None and policy.face_fraction and margin is None:
            found = face_mod.frame_faces(rgb, found, policy.face_fraction)
        found = sorted(found, key=lambda f: (f.box[0], f.box[1]))  # faces numbered left to right
        result.detected = found
        crops = [(i + 1, f.crop_box, f.confidence, f.crop) for i, f in enumerate(found)]
        if not found:
            result.note = WHOLE_IMAGE_NOTE if whole_image_if_no_face else NO_FACE_NOTE
    if not crop_faces or (not crops and whole_image_if_no_face):
        crops = [(0, None, None, rgb)]
    if crops and (models or combiner is not None):
        pixels = [c[3] for c in crops]
        stable = policy is not None and (policy.stability if stability is None else stability)
        perturbed = None
        if stable:
            from pipeline import verdict as verdict_mod

            perturbed = [v for px in pixels for v in verdict_mod.perturbations(px, policy.stability_copies)]
        _embed_ahead(pixels, perturbed, models, combiner, policy)
        arrays = score_arrays(pixels, models)
        per_face = score_records(pixels, models, arrays)
        combined: list = [None] * len(crops)
        route_p = None
        if combiner is not None:  # computed once: its members' and its own scores join ``arrays`` for the verdict
            from pipeline.detectors.combined import combined_probabilities, combined_records

            p, p_members, route_p = combined_probabilities(combiner, pixels, known=arrays)
            combined = combined_records(combiner, p, p_members, route_p)
            arrays = {**{m: p_members[:, j] for j, m in enumerate(combiner.members)}, **arrays, combiner.name: p}
        verdicts: list = [None] * len(crops)
        if policy is not None:
            verdicts = _verdicts(pixels, policy, models, combiner, arrays, stable, route_p, perturbed)
        result.faces = [FaceCheck(i, box, conf, crop, recs, ensemble(recs), comb, ver)
                        for (i, box, conf, crop), recs, comb, ver in zip(crops, per_face, combined, verdicts)]
    return result


def check_files(files: Iterable, models: dict[str, Detector], crop_faces: bool = True,
                whole_image_if_no_face: bool = False, min_confidence: float | None = None,
                margin: float | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                progress=None, combiner=None, policy=None, stability: bool | None = None) -> list[FileCheck]:
    """Check each file (path, ``(name, bytes)`` or an uploaded file object); one :class:`FileCheck` each,
    in order. Bad files carry their error message; they never stop the others. The other arguments:
    see :func:`check_image`. The one check path of ``python -m pipeline predict`` and the Check page."""
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
                                   combiner, policy, stability))
        except images.ImageError as exc:
            out.append(FileCheck(name=name, error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - one odd file must not break the batch
            out.append(FileCheck(name=name, error=f"{name} could not be checked ({type(exc).__name__}: {exc})"))
        report(progress, "checking images", k + 1, len(files))
    return out


@dataclass
class CheckSetup:
    """What checking photos with a run needs: its Keras ``models``, its combined model (``combiner``),
    its verdict ``policy`` and, in words, why any of them is missing (``problems``)."""

    models: dict[str, Detector]
    combiner: Any = None
    policy: Any = None
    problems: list[str] = field(default_factory=list)


def load_check_setup(run_dir: Path, model: str | None = None, keras_models: dict | None = None) -> CheckSetup:
    """Load what :func:`check_files` needs from a run. ``model``: only that model (any detector of the
    run: Keras, CLIP head, PCA-SVM; or a combined model); default the config's detectors
    (:func:`pipeline.detectors.config_detectors`), the combined model and the verdict policy.
    ``keras_models``: models already loaded (reused). Raises ``ValueError``/``KeyError`` for an
    unknown or unfinished ``model``."""
    from pipeline import verdict as verdict_mod
    from pipeline.detectors import combined as ens
    from pipeline.detectors import load_many

    run_dir = Path(run_dir)
    setup = CheckSetup(models={})
    if model in ens.COMBINERS:
        setup.combiner = ens.load_combiner(run_dir, model)
    else:
        setup.models = dict(keras_models) if keras_models and not model else \
            load_many(run_dir, [model] if model else None)
        if not model:
            try:
                setup.combiner = ens.load_combiner(run_dir, keras_models=setup.models)
            except (ValueError, KeyError, OSError) as exc:
                setup.problems.append(f"the run's combined model is left out: {exc.args[0] if exc.args else exc}")
    try:
        policy = verdict_mod.load_policy(run_dir)
    except verdict_mod.PolicyError as exc:
        setup.problems.append(f"no three-way verdict: {exc}")
    else:
        usable = (setup.combiner is not None and policy.model == setup.combiner.name) or policy.model in setup.models
        if usable:
            setup.policy = policy
        elif not model:
            setup.problems.append(f"no three-way verdict: its model {policy.model} could not be loaded")
    return setup


def verdict_record(v: dict) -> dict:
    """The JSON record of a face's three-way verdict (``model`` = "verdict", ``based_on`` its model,
    ``judged_as`` the router's kind whose operating point (threshold) judged it, None: the pooled one)."""
    return {"model": "verdict", "based_on": v["model"], "verdict": v["verdict"], "p_fake": v["p_fake"],
            "threshold": v["threshold"], "judged_as": v.get("kind"), "headline": v["headline"],
            "reasons": v["reasons"], "unstable_under": v["unstable_under"]}


def photo_answer(face_verdicts: list[str]) -> str | None:
    """One answer per photo from its faces' three-way verdicts ("fake" / "real" / "unsure"): "fake" when any
    face is fake, "unsure" when none is but any face is unsure, "real" when every face is real; None when no
    face was judged."""
    if not face_verdicts:
        return None
    if "fake" in face_verdicts:
        return "fake"
    return "unsure" if "unsure" in face_verdicts else "real"


def photo_verdict(check: FileCheck) -> tuple[str, str] | None:
    """One answer per photo (:func:`photo_answer`) and its words: ``("fake", "Likely fake: face 2")`` when
    any face is likely fake, ``("real", "Likely real")`` when every face is likely real, else
    ``("unsure", "Can't tell: face 1")``; None without verdicts."""
    judged = [f for f in check.faces if f.verdict is not None]
    answer = photo_answer([f.verdict["verdict"] for f in judged])
    if answer is None:
        return None
    which = [f.label for f in judged if f.verdict["verdict"] == answer]
    several = len(judged) > 1
    if answer == "fake":
        return "fake", "Likely fake" + (f": {', '.join(which)}" if several else "")
    if answer == "unsure":
        return "unsure", "Can't tell" + (f": {', '.join(which)}" if several else "")
    return "real", "Likely real" + (" (every face)" if several else "")


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


def verdict_bar(face: FaceCheck) -> dict | None:
    """The top bar of the face's "Each model's answer" chart (:func:`pipeline.figures.probability_bars_figure`
    record: model, p_fake, threshold, verdict, tick_hover), saying what the headline says. With a three-way verdict
    (the bar is named "verdict (<its model>)", apart from that model's own bar when it is a detector):
    the verdict model's calibrated P(fake) (0-1) against its calibrated threshold at the operating point
    that judged the face (the router's kind's, when routed) and its answer ("real", "fake" or "can't
    tell"). The combined model's raw score at its pooled threshold could read "0.980 · fake" above the
    headline "Can't tell" (a face the router took for a kind whose line sits higher). Without a verdict,
    the combined model's own record; None without either."""
    v = face.verdict
    if v is not None:
        name = v.get("model") or (face.combined or {}).get("model")
        return {"model": f"verdict ({name})" if name else "verdict", "p_fake": v["p_fake"],
                "threshold": v["threshold"], "verdict": "can't tell" if v["verdict"] == "unsure" else v["verdict"],
                "tick_hover": "the verdict's line: calibrated P(fake) %{x:.3f}. Past it the face is called fake, "
                              "unless it is within the can't-tell band around the line, looks unlike the training "
                              "photos or its re-saved copies disagree: then it says can't tell"}
    if face.combined is not None:
        return {k: face.combined[k] for k in ("model", "p_fake", "threshold", "verdict")}
    return None


def combined_headline(combined: dict, summary=None) -> str:
    """The run's verdict on one face as a Markdown line, e.g. "Run verdict — **ensemble_routed** (the
    run's combined model; best pooled test ROC-AUC of the run, 0.951): **fake**, p 0.870 at threshold
    0.420; the router took it for an image like the training set(s) faces140k 91% ..."."""
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
    return text + (f"; the router took it for an image like the training set(s) {looks} (it weighs each set's "
                   f"specialists by that)" if looks else "")


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

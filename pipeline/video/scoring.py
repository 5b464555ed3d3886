"""Scoring a clip: every model of the run on every face crop of every sampled frame, an aggregate per
face track, and the video's three-way verdict (real / fake / unsure) with the track and frames that
decided it.

**Per face** (:func:`score_faces`, the one place that calls the run's models): each Keras model's
``p_fake`` at its own threshold (:func:`pipeline.detectors.score_records`) and the run's verdict model on
the crop: its combined model (``ensemble_routed``, else ``ensemble_stacked``;
:func:`pipeline.detectors.combined.score_combined`) at its validation-chosen threshold, or, for a run
without one, the log-odds vote of the Keras models (:func:`pipeline.checking.ensemble`, threshold 0.5):
the same models and rule the Check an image page uses.

**Per track** (:func:`aggregate`): the verdict model's ``p_fake`` over the track's faces, combined by
a stated rule: ``mean`` (default: the mean of the probabilities), ``max``, or ``p90`` (the 90th
percentile, linear interpolation: a high percentile that one outlier frame cannot decide alone).
Each Keras model's scores are aggregated by the same rule for the per-model view.

**Three-way** (:func:`three_way`): with ``t`` the verdict model's threshold and ``band`` (default
:data:`DEFAULT_BAND` = 0.1 in probability), a track is *fake* when its aggregate is >= ``t + band``,
*real* when it is < ``t - band`` and *unsure* in between, or when fewer than ``min_faces`` (default
:data:`DEFAULT_MIN_FACES` = 3) of its faces were seen.

**Video** (:func:`analyse_video`): the verdict of its most suspicious track, the track with the highest
aggregate among those with at least ``min_faces`` faces (when none has that many: the highest of all,
and the verdict is *unsure*). The deciding frames are that track's :data:`TOP_FRAMES` frames of
highest ``p_fake``. A clip where no face is found in any sampled frame is *unsure* with the reason
"no face found in N sampled frames". The DeepfakeBench convention is also reported: the video score
is the mean over sampled frames of the frame score, the verdict model's ``p_fake`` of the frame's
largest face (DeepfakeBench keeps the largest face of each frame; Yan et al., NeurIPS 2023 Datasets
and Benchmarks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.progress import ProgressFn, report
from pipeline.video import container, decode
from pipeline.video import tracks as tracks_mod

RULES = ("mean", "max", "p90")
DEFAULT_RULE = "mean"
DEFAULT_BAND = 0.1
DEFAULT_MIN_FACES = 3
TOP_FRAMES = 3
VOTE_NAME = "log-odds vote"
RULE_TEXT = {"mean": "mean of the face probabilities", "max": "maximum of the face probabilities",
             "p90": "90th percentile of the face probabilities"}


# --------------------------------------------------------------------------- the one scoring call


def score_faces(crops: list[np.ndarray], models: dict, combiner=None, policy=None) -> list[dict]:
    """Score face crops ((h, w, 3) uint8 RGB, any size) with the run's models, in one batch.

    Returns one record per crop: ``{"models": [{model, p_fake, threshold, verdict}, ...],
    "verdict": {model, p_fake, threshold, verdict, ...}}`` where ``verdict`` is the run's verdict
    model on the crop (the combined model's record when ``combiner`` is given, with ``members`` and
    ``looks_like``; otherwise the log-odds vote of ``models``, ``model`` = "log-odds vote", threshold
    0.5). With ``policy`` (the run's :class:`pipeline.verdict.VerdictPolicy`, when its model is
    loaded) the verdict record is the policy's model on the crop, its ``p_fake`` **calibrated** and its
    ``threshold`` the policy's (at most X% of validation reals of every set called fake), as on the
    Check page. ``p_fake`` is a probability of fake in 0..1. The only function of the video feature
    that calls the models: change the verdict here and everything else follows."""
    from pipeline import checking, detectors

    if not crops:
        return []
    arrays = detectors.score_arrays(crops, models)
    per_crop = detectors.score_records(crops, models, arrays)
    usable = policy is not None and (policy.model in models or (combiner is not None and policy.model == combiner.name))
    if usable:
        p_raw, _ = checking.verdict_scores(crops, policy, models, combiner, known=arrays)
        p = policy.calibrated(p_raw)  # the pooled operating point: one threshold for a face track's frames
        verdicts = [{"model": policy.model, "p_fake": round(float(pi), 6), "p_raw": round(float(ri), 6),
                     "threshold": round(policy.threshold, 6), "verdict": "fake" if pi >= policy.threshold else "real",
                     "calibrated": True} for pi, ri in zip(p, p_raw)]
    elif combiner is not None:
        from pipeline.detectors import combined as ensemble

        verdicts = ensemble.score_combined(combiner, crops, known=arrays)
    else:
        verdicts = []
        for recs in per_crop:
            vote = checking.ensemble(recs)
            verdicts.append({"model": VOTE_NAME, "p_fake": vote["p_fake"], "threshold": 0.5,
                             "verdict": vote["verdict"], "rule": vote["rule"]})
    return [{"models": recs, "verdict": v} for recs, v in zip(per_crop, verdicts)]


# --------------------------------------------------------------------------- aggregation and verdicts


def aggregate(values, rule: str = DEFAULT_RULE) -> float:
    """One number from a track's probabilities by ``rule`` (``mean``, ``max``, ``p90``);
    ``ValueError`` for an unknown rule or no value."""
    v = np.asarray(list(values), dtype=np.float64)
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {', '.join(RULES)}")
    if v.size == 0:
        raise ValueError("no probability to aggregate")
    if rule == "mean":
        return float(v.mean())
    if rule == "max":
        return float(v.max())
    return float(np.percentile(v, 90))


def three_way(p: float | None, threshold: float, n_faces: int, band: float = DEFAULT_BAND,
              min_faces: int = DEFAULT_MIN_FACES) -> tuple[str, str]:
    """(verdict, reason): ``fake`` when ``p >= threshold + band``, ``real`` when
    ``p < threshold - band``, else ``unsure``; ``unsure`` too when fewer than ``min_faces`` faces."""
    if p is None or n_faces == 0:
        return "unsure", "no face was scored"
    if n_faces < min_faces:
        return "unsure", f"only {n_faces} face{'s' if n_faces != 1 else ''} seen (fewer than {min_faces})"
    lo, hi = threshold - band, threshold + band
    if p >= hi:
        return "fake", f"{p:.3f} >= threshold {threshold:.3f} + band {band:.2f}"
    if p < lo:
        return "real", f"{p:.3f} < threshold {threshold:.3f} - band {band:.2f}"
    return "unsure", f"{p:.3f} lies within threshold {threshold:.3f} ± band {band:.2f}"


@dataclass
class FaceScore:
    """One scored face: where it was (``detection``) and its record from :func:`score_faces`."""

    detection: tracks_mod.Detection
    record: dict

    @property
    def p_fake(self) -> float:
        return float(self.record["verdict"]["p_fake"])


@dataclass
class TrackResult:
    """A face track with its scores. ``score``: the rule's aggregate of the verdict model's p_fake;
    ``model_scores``: the same rule per Keras model; ``top_frames``: frame indices of its highest
    p_fake, highest first."""

    track_id: int
    faces: list[FaceScore]
    score: float
    verdict: str
    reason: str
    model_scores: dict[str, float]
    top_frames: list[int]

    @property
    def times(self) -> list[float]:
        return [f.detection.time for f in self.faces]

    @property
    def p_fakes(self) -> list[float]:
        return [f.p_fake for f in self.faces]


@dataclass
class VideoResult:
    """Everything about one clip. ``error`` is set (and the rest empty) when it could not be read.
    ``frames`` keep the decoded RGB of each sampled frame for display."""

    name: str
    error: str | None = None
    info: container.VideoInfo | None = None
    sampling: str = ""
    frames: list[decode.SampledFrame] = field(default_factory=list)
    tracks: list[TrackResult] = field(default_factory=list)
    verdict: str | None = None
    reason: str = ""
    score: float | None = None  # the deciding track's aggregate
    deciding_track: int | None = None
    deciding_frames: list[int] = field(default_factory=list)
    frame_mean_score: float | None = None  # the DeepfakeBench convention (module doc)
    verdict_model: str | None = None
    threshold: float | None = None
    rule: str = DEFAULT_RULE
    band: float = DEFAULT_BAND
    min_faces: int = DEFAULT_MIN_FACES
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    frame_shapes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of each frame when analysed

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def n_faces(self) -> int:
        return sum(len(t.faces) for t in self.tracks)

    def track(self, track_id: int) -> TrackResult:
        return next(t for t in self.tracks if t.track_id == track_id)

    def frame(self, index: int) -> decode.SampledFrame:
        return self.frames[index]


def verdict_text(result: VideoResult) -> str:
    """The verdict in words (Markdown), e.g. "**Likely fake**: face track 2 (12 faces) scores 0.83 by the mean of the
    face probabilities, above the fake threshold 0.52 + 0.10. Most suspicious frames: 3.2 s, 4.0 s, 7.7 s."."""
    if not result.ok:
        return f"Could not check {result.name}: {result.error}"
    if result.deciding_track is None:
        return f"**Unsure**: {result.reason}."
    t = result.track(result.deciding_track)
    head = {"fake": "**Likely fake**", "real": "**Likely real**", "unsure": "**Unsure**"}[result.verdict]
    when = ", ".join(f"{result.frames[i].time:.1f} s" for i in result.deciding_frames)
    others = len(result.tracks) - 1
    return (f"{head}: face track {t.track_id} ({len(t.faces)} face{'s' if len(t.faces) != 1 else ''}), the most "
            f"suspicious of {len(result.tracks)} track{'s' if len(result.tracks) != 1 else ''}, scores "
            f"{t.score:.3f} by the {RULE_TEXT[result.rule]} ({result.verdict_model}; {t.reason}). "
            f"Most suspicious frames: {when}."
            + (f" The other {others} track{'s' if others != 1 else ''} score lower." if others > 0 else ""))


# --------------------------------------------------------------------------- the whole clip


def analyse_video(source, models: dict, combiner=None, *, name: str | None = None,
                  sampling: decode.Sampling = decode.Sampling(), rule: str = DEFAULT_RULE,
                  band: float = DEFAULT_BAND, min_faces: int = DEFAULT_MIN_FACES,
                  max_side: int = decode.DEFAULT_MAX_SIDE, detect_side: int = tracks_mod.DEFAULT_DETECT_SIDE,
                  min_confidence: float | None = None, progress: ProgressFn = None, policy=None) -> VideoResult:
    """Decode the sampled frames of a clip (path, bytes or binary file), find and track its faces,
    score every face (:func:`score_faces`) and give the verdict (module doc). A clip that cannot be
    read comes back with ``error`` set (a :class:`~pipeline.video.container.VideoError` message); other
    exceptions propagate. ``progress(stage, done, total)`` per frame decoded, frame searched and
    batch scored. ``policy``: the run's verdict policy (:func:`score_faces`: calibrated probabilities)."""
    import time

    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {', '.join(RULES)}")
    label = name or (Path(source).name if isinstance(source, (str, Path)) else str(getattr(source, "name", "upload")))
    result = VideoResult(name=label, rule=rule, band=band, min_faces=min_faces, sampling=sampling.rule)
    t0 = time.perf_counter()
    try:
        video = decode.sample_video(source, sampling, name=label, max_side=max_side, progress=progress)
    except container.VideoError as exc:
        result.error = str(exc)
        return result
    t1 = time.perf_counter()
    result.info, result.frames, result.notes = video.info, video.frames, list(video.notes)
    result.frame_shapes = [tuple(f.rgb.shape[:2]) for f in video.frames]
    per_frame = tracks_mod.detect_in_frames(video.frames, detect_side=detect_side, min_confidence=min_confidence,
                                            progress=progress)
    face_tracks = tracks_mod.link_tracks(per_frame)
    t2 = time.perf_counter()
    detections = [d for t in face_tracks for d in t.detections]
    records = score_faces([d.crop for d in detections], models, combiner, policy)
    report(progress, "scoring faces", 1, 1)
    t3 = time.perf_counter()
    result.seconds = {"decode": round(t1 - t0, 3), "faces": round(t2 - t1, 3), "score": round(t3 - t2, 3),
                      "faces_scored": len(detections)}
    by_det = {id(d): r for d, r in zip(detections, records)}
    if records:
        result.verdict_model = records[0]["verdict"]["model"]
        result.threshold = float(records[0]["verdict"]["threshold"])
    elif policy is not None:
        result.verdict_model, result.threshold = policy.model, float(policy.threshold)
    elif combiner is not None:
        result.verdict_model, result.threshold = combiner.name, float(combiner.threshold)
    else:
        result.verdict_model, result.threshold = VOTE_NAME, 0.5
    for t in face_tracks:
        faces = [FaceScore(d, by_det[id(d)]) for d in t.detections]
        score = aggregate([f.p_fake for f in faces], rule)
        verdict, reason = three_way(score, result.threshold, len(faces), band, min_faces)
        names = [r["model"] for r in faces[0].record["models"]]
        model_scores = {m: aggregate([f.record["models"][j]["p_fake"] for f in faces], rule)
                        for j, m in enumerate(names)}
        order = sorted(range(len(faces)), key=lambda i: -faces[i].p_fake)
        top = [faces[i].detection.frame_index for i in order[:TOP_FRAMES]]
        result.tracks.append(TrackResult(t.track_id, faces, score, verdict, reason, model_scores, top))
    _decide(result, per_frame, by_det)
    return result


def _decide(result: VideoResult, per_frame, by_det) -> None:
    n = len(result.frames)
    if not result.tracks:
        result.verdict, result.reason = "unsure", f"no face found in {n} sampled frame{'s' if n != 1 else ''}"
        return
    enough = [t for t in result.tracks if len(t.faces) >= result.min_faces]
    pick = max(enough or result.tracks, key=lambda t: (t.score, len(t.faces)))
    result.deciding_track, result.score = pick.track_id, pick.score
    result.verdict, result.reason = pick.verdict, pick.reason
    result.deciding_frames = pick.top_frames
    frame_scores = [float(by_det[id(max(dets, key=lambda d: d.area))]["verdict"]["p_fake"]) for dets in per_frame if dets]
    result.frame_mean_score = float(np.mean(frame_scores)) if frame_scores else None


def shrink_frames(result: VideoResult, max_side: int = 640) -> VideoResult:
    """Downscale the kept frames of ``result`` in place to at most ``max_side`` pixels on their longer
    side, for display (a dashboard session keeps a few results: 16 frames at 1280x720 are 44 MB, at
    640x360 11 MB). Face boxes stay in the analysed frames' pixels (``frame_shapes``); the face crops
    are kept as scored. Returns ``result``."""
    from PIL import Image

    for f in result.frames:
        h, w = f.rgb.shape[:2]
        s = float(max_side) / max(h, w)
        if s < 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            f.rgb = np.asarray(Image.fromarray(f.rgb).resize(size, Image.Resampling.BILINEAR))
            f.scale *= size[0] / w
    return result


# --------------------------------------------------------------------------- JSON records (CLI)


def _r(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def track_records(result: VideoResult) -> list[dict[str, Any]]:
    """One JSON-ready record per face track: file, kind="track", track, n_faces, score (the rule's
    aggregate), verdict, reason, rule, threshold, band, times (s), p_fake per face, frames (sampled
    frame indices), top_frames, model_scores ({model: aggregate})."""
    out = []
    for t in result.tracks:
        out.append({"file": result.name, "kind": "track", "track": t.track_id, "n_faces": len(t.faces),
                    "verdict_model": result.verdict_model, "score": _r(t.score), "verdict": t.verdict,
                    "reason": t.reason, "rule": result.rule, "threshold": _r(result.threshold), "band": result.band,
                    "times": [round(x, 3) for x in t.times], "p_fake": [_r(p) for p in t.p_fakes],
                    "frames": [f.detection.frame_index for f in t.faces], "top_frames": t.top_frames,
                    "model_scores": {m: _r(v) for m, v in t.model_scores.items()}})
    return out


def video_record(result: VideoResult) -> dict[str, Any]:
    """The JSON-ready record of the clip: file, kind="video", verdict, reason, score, deciding_track,
    deciding_frames and their times, frame_mean_score (DeepfakeBench), n_tracks, n_faces,
    sampled_frames, sampling, the clip's facts, notes, seconds per stage; or file, kind, error."""
    if not result.ok:
        return {"file": result.name, "kind": "video", "error": result.error}
    return {"file": result.name, "kind": "video", "verdict": result.verdict, "reason": result.reason,
            "verdict_model": result.verdict_model, "score": _r(result.score), "threshold": _r(result.threshold),
            "band": result.band, "rule": result.rule, "min_faces": result.min_faces,
            "deciding_track": result.deciding_track, "deciding_frames": result.deciding_frames,
            "deciding_times": [round(result.frames[i].time, 3) for i in result.deciding_frames],
            "frame_mean_score": _r(result.frame_mean_score), "n_tracks": len(result.tracks),
            "n_faces": result.n_faces, "sampled_frames": len(result.frames), "sampling": result.sampling,
            "video": result.info.as_dict() if result.info else None, "notes": result.notes,
            "seconds": result.seconds, "summary": verdict_text(result)}

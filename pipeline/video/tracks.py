"""Faces across frames: detect the faces of each sampled frame and link them into face tracks.

Detection is the photo path's MTCNN (:func:`pipeline.faces.detect_faces`), run on a copy of the frame
downscaled to at most ``detect_side`` pixels on its longer side (MTCNN's cost grows with the pixel
count; faces in a video frame are large enough), its boxes scaled back, and each face cropped from the
decoded frame with the same margin and squaring as photos (:func:`pipeline.faces.square_box`).

Tracking (tracking-by-detection, the IoU tracker of Bochinski, Eiselein and Sikora, AVSS 2017, with a
gap fallback): between consecutive sampled frames, the detections are matched one-to-one to the open
tracks by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on 1 - IoU of the
detection's box and the track's last box, accepting pairs with IoU >= ``iou_threshold``. Sampled frames
can be far apart (16 frames over a long clip), so a face that moved too far for any overlap, or a
track that was missed on some frames (profile view, blur), gets a second chance: a track last seen at
most ``max_gap`` sampled frames ago takes a still unmatched detection whose centre lies within
``centre_factor`` times the track's box size of its last centre and whose size is within a factor of 2.
Every detection left over starts a new track. Tracks are numbered by first appearance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.progress import ProgressFn, report

DEFAULT_DETECT_SIDE = 640  # pixels: longer side of the copy MTCNN looks at
DEFAULT_IOU = 0.3
DEFAULT_MAX_GAP = 8  # sampled frames a track may be missed (half the default sample) and still be continued
DEFAULT_CENTRE_FACTOR = 1.0


@dataclass
class Detection:
    """One face on one sampled frame. ``box``/``crop_box``: (x, y, w, h) in pixels of the decoded
    frame (:attr:`pipeline.video.decode.SampledFrame.rgb`); ``crop``: (h, w, 3) uint8 RGB, the square
    crop with margin that is scored; ``time``: seconds."""

    frame_index: int
    time: float
    box: tuple[int, int, int, int]
    confidence: float
    crop: np.ndarray
    crop_box: tuple[int, int, int, int]

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])


@dataclass
class FaceTrack:
    """One person's face across the sampled frames, in time order; ``track_id`` counts from 1."""

    track_id: int
    detections: list[Detection] = field(default_factory=list)

    @property
    def last(self) -> Detection:
        return self.detections[-1]

    @property
    def frame_indices(self) -> list[int]:
        return [d.frame_index for d in self.detections]


def detect_in_frames(frames, *, detect_side: int = DEFAULT_DETECT_SIDE, min_confidence: float | None = None,
                     margin: float | None = None, progress: ProgressFn = None) -> list[list[Detection]]:
    """Faces of each :class:`~pipeline.video.decode.SampledFrame`, one list per frame (most
    confident first). Raises nothing for a faceless frame: its list is empty."""
    from PIL import Image

    from pipeline import faces as face_mod

    min_confidence = face_mod.DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    margin = face_mod.DEFAULT_MARGIN if margin is None else margin
    out: list[list[Detection]] = []
    frames = list(frames)
    for k, fr in enumerate(frames):
        rgb = fr.rgb
        h, w = rgb.shape[:2]
        s = min(1.0, float(detect_side) / max(h, w))
        small = rgb if s >= 1.0 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR))
        sx, sy = w / small.shape[1], h / small.shape[0]
        found = face_mod.detect_faces(small, min_confidence=min_confidence, margin=margin)
        dets = []
        for f in found:
            x, y, bw, bh = f.box
            box = (int(round(x * sx)), int(round(y * sy)), max(1, int(round(bw * sx))), max(1, int(round(bh * sy))))
            cx, cy, cw, ch = face_mod.square_box(box, rgb.shape, margin)
            crop = np.ascontiguousarray(rgb[cy:cy + ch, cx:cx + cw])
            if crop.size:
                dets.append(Detection(fr.index, fr.time, box, float(f.confidence), crop, (cx, cy, cw, ch)))
        out.append(dets)
        report(progress, "finding faces", k + 1, len(frames))
    return out


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 when they do not overlap)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _close(track_box, box, factor: float) -> bool:
    tx, ty, tw, th = track_box
    x, y, w, h = box
    size = max(tw, th)
    dist = np.hypot((x + w / 2) - (tx + tw / 2), (y + h / 2) - (ty + th / 2))
    ratio = max(w, h) / max(1e-6, size)
    return dist <= factor * size and 0.5 <= ratio <= 2.0


def link_tracks(per_frame: list[list[Detection]], *, iou_threshold: float = DEFAULT_IOU,
                max_gap: int = DEFAULT_MAX_GAP, centre_factor: float = DEFAULT_CENTRE_FACTOR) -> list[FaceTrack]:
    """Face tracks from per-frame detections (the output of :func:`detect_in_frames`, frames in time
    order): IoU matching between consecutive sampled frames, then the gap fallback (module doc)."""
    from scipy.optimize import linear_sum_assignment

    tracks: list[FaceTrack] = []
    for pos, dets in enumerate(per_frame):
        if not dets:
            continue
        frame_index = dets[0].frame_index
        # open tracks: seen within max_gap sampled frames
        open_tracks = [t for t in tracks if frame_index - t.last.frame_index <= max_gap + 1
                       and t.last.frame_index < frame_index]
        unmatched = set(range(len(dets)))
        if open_tracks:
            cost = np.array([[1.0 - iou(t.last.box, d.box) for d in dets] for t in open_tracks])
            rows, cols = linear_sum_assignment(cost)
            taken = set()
            for r, c in zip(rows, cols):
                if 1.0 - cost[r, c] >= iou_threshold:
                    open_tracks[r].detections.append(dets[c])
                    unmatched.discard(c)
                    taken.add(r)
            # fallback: nearest centre, for tracks not continued by overlap
            rest = [t for i, t in enumerate(open_tracks) if i not in taken]
            pairs = sorted(((np.hypot(*(np.subtract(_centre(t.last.box), _centre(dets[c].box)))), ti, c)
                            for ti, t in enumerate(rest) for c in unmatched
                            if _close(t.last.box, dets[c].box, centre_factor)), key=lambda p: p[0])
            used_t = set()
            for _, ti, c in pairs:
                if ti in used_t or c not in unmatched:
                    continue
                rest[ti].detections.append(dets[c])
                used_t.add(ti)
                unmatched.discard(c)
        for c in sorted(unmatched, key=lambda c: -dets[c].confidence):
            tracks.append(FaceTrack(track_id=len(tracks) + 1, detections=[dets[c]]))
    return tracks


def _centre(box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2

"""Figures and pictures of the dashboard's Video page, built from a
:class:`~pipeline.video.scoring.VideoResult` (plotly for charts; Pillow drawing via
:func:`pipeline.faces.draw_boxes` for frames)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from pipeline.video.scoring import RULE_TEXT, VideoResult

TRACK_COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B", "#9D755D"]
VERDICT_COLOURS = {"fake": "#D62728", "real": "#2CA02C", "unsure": "#FF9F1C"}


def track_colour(track_id: int) -> str:
    return TRACK_COLOURS[(track_id - 1) % len(TRACK_COLOURS)]


def timeline_figure(result: VideoResult, selected_time: float | None = None, height: int = 360) -> go.Figure:
    """Per-frame timeline: one line per face track (x: time in seconds, y: the verdict model's p_fake
    of the track's face on that sampled frame), the threshold as a dashed line with the unsure band
    shaded around it, the deciding track's most suspicious frames ringed, and ``selected_time`` (the
    scrubber) as a vertical line. The x axis spans the clip's duration."""
    fig = go.Figure()
    t = result.threshold if result.threshold is not None else 0.5
    lo, hi = max(0.0, t - result.band), min(1.0, t + result.band)
    fig.add_hrect(y0=lo, y1=hi, fillcolor=VERDICT_COLOURS["unsure"], opacity=0.12, line_width=0,
                  annotation_text="unsure band", annotation_position="top left")
    fig.add_hline(y=t, line_dash="dash", line_color="#555555",
                  annotation_text=f"threshold {t:.3f}", annotation_position="bottom right")
    for tr in result.tracks:
        deciding = tr.track_id == result.deciding_track
        fig.add_trace(go.Scatter(
            x=tr.times, y=tr.p_fakes, mode="lines+markers", name=f"track {tr.track_id} · {tr.verdict} · {tr.score:.2f}",
            line=dict(color=track_colour(tr.track_id), width=3 if deciding else 1.5),
            marker=dict(size=8 if deciding else 6),
            customdata=[[f.detection.frame_index] for f in tr.faces],
            hovertemplate="track " + str(tr.track_id) + "<br>%{x:.2f} s<br>p(fake) %{y:.3f}<br>frame %{customdata[0]}"
                          "<extra></extra>"))
    if result.deciding_track is not None:
        tr = result.track(result.deciding_track)
        top = [f for f in tr.faces if f.detection.frame_index in result.deciding_frames]
        fig.add_trace(go.Scatter(x=[f.detection.time for f in top], y=[f.p_fake for f in top], mode="markers",
                                 name="most suspicious frames",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#D62728", width=2.5)),
                                 hoverinfo="skip"))
    if selected_time is not None:
        fig.add_vline(x=selected_time, line_color="#888888", line_width=1)
    duration = result.info.duration if result.info and result.info.duration else None
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=40, b=10), hovermode="closest",
        title=f"p(fake) per sampled frame, by face track ({result.verdict_model}; track score: "
              f"{RULE_TEXT[result.rule]})",
        xaxis=dict(title="time (s)", range=[0, duration] if duration else None),
        yaxis=dict(title="p(fake)", range=[-0.02, 1.02]),
        legend=dict(orientation="h", yanchor="bottom", y=-0.35))
    return fig


def frame_with_boxes(result: VideoResult, frame_index: int) -> np.ndarray:
    """The sampled frame (H, W, 3) uint8 (as kept: possibly shrunk by
    :func:`pipeline.video.scoring.shrink_frames`) with each face's crop box drawn in its track's colour
    and labelled "track k · p 0.83"."""
    from pipeline import faces as face_mod
    from pipeline.faces import Face

    frame = result.frames[frame_index]
    analysed = result.frame_shapes[frame_index] if frame_index < len(result.frame_shapes) else frame.rgb.shape[:2]
    k = frame.rgb.shape[1] / analysed[1]  # boxes are in the analysed frame's pixels (see scoring.shrink_frames)

    def scaled(box):
        return tuple(int(round(v * k)) for v in box)

    found, labels, colours = [], [], []
    for tr in result.tracks:
        for f in tr.faces:
            if f.detection.frame_index == frame_index:
                d = f.detection
                found.append(Face(scaled(d.box), d.confidence, d.crop, scaled(d.crop_box)))
                labels.append(f"track {tr.track_id} · p {f.p_fake:.2f}")
                colours.append(track_colour(tr.track_id))
    if not found:
        return frame.rgb
    return face_mod.draw_boxes(frame.rgb, found, labels=labels, colors=colours)


def track_table(result: VideoResult):
    """One row per face track: track, faces, first/last seen (s), score, verdict, reason, and the
    per-model aggregate (same rule) of each Keras model."""
    import pandas as pd

    rows = []
    for tr in result.tracks:
        row = {"track": tr.track_id, "faces": len(tr.faces), "first seen (s)": round(min(tr.times), 2),
               "last seen (s)": round(max(tr.times), 2), "score": round(tr.score, 4), "verdict": tr.verdict,
               "deciding": tr.track_id == result.deciding_track, "reason": tr.reason}
        row.update({m: round(v, 4) for m, v in tr.model_scores.items()})
        rows.append(row)
    return pd.DataFrame(rows)

"""Pictures of the "Real or fake?" page: the live vote histogram, the detectors' scores, the scoreboard
chart (plotly, large type for a projector) and the room's QR code (segno: drawn locally, no network)."""
from __future__ import annotations

import io
from typing import Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

import plotly.graph_objects as go

from pipeline.quiz.answers import ModelAnswer

FONT = dict(size=22)  # readable from the back of a room on a 1280x800 projector
CHOICE_COLORS = {"real": "#4C78A8", "fake": "#E45756", "left": "#4C78A8", "right": "#F58518"}
RIGHT, WRONG, NEUTRAL = "#2E9D57", "#B0B7C3", "#5B6472"
CHOICE_LABELS = {"real": "Real", "fake": "Fake", "left": "Left is real", "right": "Right is real"}


def vote_histogram(tally: dict[str, int], answer: str | None = None, height: int = 340) -> go.Figure:
    """Bars of the votes per choice (``tally``: ``{choice: count}`` in choice order). Before the reveal
    (``answer`` None) each choice has its own colour; after it the right choice is green, the other grey."""
    choices = list(tally)
    counts = [int(tally[c]) for c in choices]
    total = sum(counts)
    if answer is None:
        colors = [CHOICE_COLORS.get(c, NEUTRAL) for c in choices]
    else:
        colors = [RIGHT if c == answer else WRONG for c in choices]
    text = [f"{n}  ({n / total:.0%})" if total else "0" for n in counts]
    fig = go.Figure(go.Bar(x=[CHOICE_LABELS.get(c, c) for c in choices], y=counts, marker_color=colors, text=text,
                           textposition="outside", textfont=dict(size=28), cliponaxis=False,
                           hovertemplate="%{x}: %{y} vote(s)<extra></extra>"))
    fig.update_yaxes(range=[0, max(1, max(counts, default=0)) * 1.25], showticklabels=False, showgrid=False,
                     zeroline=False)
    fig.update_layout(title=dict(text=f"{total} vote{'s' if total != 1 else ''}", font=dict(size=26)),
                      font=FONT, height=height, margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    return fig


def scores_figure(answers: Sequence[ModelAnswer], labels: Sequence[str] | None = None) -> go.Figure:
    """Every detector's stored P(fake) on the round's image(s): one horizontal bar per model (paired:
    one per model and side), its threshold as a black tick (single rounds), the verdict model first."""
    fig = go.Figure()
    if not answers:
        fig.add_annotation(text="no model has a stored score for this image", showarrow=False, font=FONT)
        fig.update_layout(height=160, margin=dict(l=10, r=10, t=10, b=10))
        return fig
    models = [a.model for a in answers]
    n_img = len(answers[0].p_fake)
    sides = list(labels) if labels else (["P(fake)"] if n_img == 1 else ["left", "right"])
    for k in range(n_img):
        ps = [a.p_fake[k] for a in answers]
        colors = ([CHOICE_COLORS["fake"] if p >= a.threshold else CHOICE_COLORS["real"] for p, a in zip(ps, answers)]
                  if n_img == 1 else CHOICE_COLORS["left" if k == 0 else "right"])
        fig.add_trace(go.Bar(y=models, x=ps, orientation="h", name=sides[k], marker_color=colors,
                             text=[f"{p:.2f}" for p in ps], textposition="auto", showlegend=n_img > 1,
                             hovertemplate="%{y}: P(fake) %{x:.3f}<extra>" + sides[k] + "</extra>"))
    if n_img == 1:
        fig.add_trace(go.Scatter(y=models, x=[a.threshold for a in answers], mode="markers", name="threshold",
                                 marker=dict(symbol="line-ns-open", size=30, color="black",
                                             line=dict(width=3, color="black")),
                                 hovertemplate="%{y}: threshold %{x:.3f}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], title_text="P(fake)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(font=dict(size=18), barmode="group", height=90 + (34 * n_img + 14) * len(models),
                      margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))
    return fig


def accuracy_figure(rows: Sequence[tuple[str, float | None, int]], height: int = 300) -> go.Figure:
    """Accuracy bars, e.g. ``[("Class", 0.55, 120), ("ensemble_routed", 0.8, 10)]`` (name, accuracy 0-1
    or None, number of answers behind it); the first bar (people) is highlighted, chance marked at 50%."""
    names = [r[0] for r in rows]
    acc = [None if r[1] is None else float(r[1]) for r in rows]
    colors = ["#F58518" if i == 0 else "#4C78A8" for i in range(len(rows))]
    fig = go.Figure(go.Bar(x=names, y=[0 if a is None else a for a in acc], marker_color=colors,
                           text=["–" if a is None else f"{a:.0%}" for a in acc], textposition="outside",
                           textfont=dict(size=24), cliponaxis=False,
                           customdata=[r[2] for r in rows],
                           hovertemplate="%{x}: %{y:.0%} of %{customdata} answer(s)<extra></extra>"))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance",
                  annotation_position="bottom right")
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="accuracy")
    fig.update_layout(font=FONT, height=height, margin=dict(l=10, r=10, t=20, b=10), showlegend=False)
    return fig


def join_url(base_url: str, code: str) -> str:
    """The address a phone opens to join room ``code``: ``base_url``'s scheme, host and port, the
    page path ``/quiz`` and ``?room=CODE`` (any query or fragment of ``base_url`` dropped)."""
    parts = urlsplit(base_url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute address: {base_url!r} (expected e.g. http://192.168.1.20:8501)")
    path = parts.path.rstrip("/")
    if not path.endswith("/quiz"):
        path = path.rsplit("/", 1)[0] + "/quiz" if path else "/quiz"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode({"room": code}), ""))


def qr_png(text: str, size: int = 160, border: int = 4) -> tuple[bytes, int]:
    """A QR code of ``text`` drawn locally by segno (error correction M, ``border`` modules of quiet
    zone) as ``(PNG bytes, side in pixels)``: a whole number of pixels per module, chosen so the side is
    at most ``size`` px (at least 2 px per module). Show it at exactly that side (no resampling: a
    resized QR code scans badly)."""
    import segno

    qr = segno.make(text, error="m", micro=False)
    modules = qr.symbol_size(scale=1, border=border)[0]
    scale = max(2, int(size) // modules)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=border)
    return buf.getvalue(), modules * scale

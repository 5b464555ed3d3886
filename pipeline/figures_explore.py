"""Figures of the exploration views (plotly): detector correlation, near-duplicate leakage, an image's
neighbours in an embedding, and the readable text colour on a heat-map cell.

Every function returns a ``plotly.graph_objects.Figure`` built from plain tables (no Streamlit), so
it is tested directly. Titles sit above a top margin tall enough for the chart toolbar
(:data:`TOP_MARGIN`), legends below the plot, never over an axis title.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import get_colorscale, sample_colorscale

TOP_MARGIN = 70  # px: the title on the first line, Streamlit's chart toolbar above the plot, not on it
DARK_TEXT, LIGHT_TEXT = "#1a1a1a", "#ffffff"


def relative_luminance(rgb: str) -> float:
    """WCAG relative luminance (0 = black, 1 = white) of a plotly colour ``"rgb(r, g, b)"`` or ``"#rrggbb"``."""
    s = rgb.strip()
    if s.startswith("#"):
        vals = [int(s[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        vals = [float(v) for v in s[s.index("(") + 1:s.index(")")].split(",")[:3]]
    lin = [(v / 255) / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in vals]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@lru_cache(maxsize=32)
def _named_colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """A named plotly colour scale as (position, colour) pairs, looked up once: plotly's own lookup
    inspects every scale module on each call (about 1 ms, 0.4 s for a 19 x 19 annotated heat map)."""
    return tuple((float(pos), str(color)) for pos, color in get_colorscale(name))


def text_color_on(colorscale: str | list, value: float | None, zmin: float, zmax: float) -> str:
    """The readable text colour (near-black or white) on a heat-map cell of ``value`` drawn with
    ``colorscale`` between ``zmin`` and ``zmax`` (values outside are clipped, as plotly draws them):
    whichever has the higher WCAG contrast ratio with the cell. ``None``/NaN gives dark text."""
    if value is None or not np.isfinite(value) or zmax <= zmin:
        return DARK_TEXT
    t = float(np.clip((value - zmin) / (zmax - zmin), 0.0, 1.0))
    if isinstance(colorscale, str):
        colorscale = [list(pair) for pair in _named_colorscale(colorscale)]
    lum = relative_luminance(sample_colorscale(colorscale, [t])[0])
    contrast_dark = (lum + 0.05) / (relative_luminance(DARK_TEXT) + 0.05)
    contrast_light = 1.05 / (lum + 0.05)
    return DARK_TEXT if contrast_dark >= contrast_light else LIGHT_TEXT


def correlation_figure(corr: pd.DataFrame, title: str = "Spearman correlation of test scores") -> go.Figure:
    """Models x models heat map of a correlation matrix (-1..1, diverging blue-white-red), every cell
    labelled with its value (2 decimals, "–" for none) in black or white, whichever plotly.js finds readable
    on it."""
    fig = go.Figure()
    if corr.empty:
        fig.add_annotation(text="fewer than two models", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(title=title, margin=dict(l=10, r=10, t=TOP_MARGIN, b=10))
        return fig
    names = [str(c) for c in corr.columns]
    z = corr.to_numpy(dtype=float)
    scale = "RdBu_r"
    # each cell's value drawn by the heat map itself (plotly.js picks black or white per cell for contrast):
    # one annotation per cell took the browser 0.4-0.6 s to lay out for 19 models, this 0.05-0.14 s
    labels = [["–" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in z]
    fig.add_trace(go.Heatmap(z=z, x=names, y=names, zmin=-1, zmax=1, colorscale=scale, text=labels,
                             texttemplate="%{text}", textfont=dict(size=12 if len(names) <= 6 else 11),
                             colorbar=dict(title="Spearman", thickness=12),
                             hovertemplate="%{y} vs %{x}<br>Spearman %{z:.2f}<extra></extra>"))
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=TOP_MARGIN, b=10), height=160 + 42 * len(names))
    fig.update_xaxes(type="category", tickangle=-35)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def disagreement_figure(rows: pd.DataFrame, models: Sequence[str], colors: dict[str, str] | None = None,
                        title: str = "Each model's P(fake) on the images they disagree on most") -> go.Figure:
    """Dot plot: one row per image of :func:`pipeline.correlation.disagreements` (label and file
    name), one dot per model at its ``p_fake`` (0-1)."""
    fig = go.Figure()
    labels = [f"{r.dataset} · {str(r.relpath).rsplit('/', 1)[-1]} ({r.label})" for r in rows.itertuples()]
    for m in models:
        if m not in rows.columns:
            continue
        fig.add_trace(go.Scatter(x=rows[m], y=labels, mode="markers", name=m,
                                 marker=dict(size=11, color=(colors or {}).get(m)),
                                 hovertemplate=f"{m}: P(fake) %{{x:.3f}}<extra></extra>"))
    # legend on the right, never over the axis title below the plot
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=TOP_MARGIN, b=10), height=160 + 30 * max(1, len(rows)),
                      legend=dict(orientation="v", x=1.02, y=1, xanchor="left", yanchor="top"),
                      xaxis=dict(range=[-0.02, 1.02], title="P(fake)"))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def leakage_counts_figure(counts: pd.DataFrame, title: str = "Test images with a near-duplicate in training") -> go.Figure:
    """Bars per dataset of the share of test images with a training near-duplicate
    (:func:`pipeline.leakage.counts_per_dataset`), labelled "k of n"."""
    fig = go.Figure()
    if counts.empty:
        fig.add_annotation(text="no test images", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    else:
        share = counts["share of test"].fillna(0).astype(float)
        text = [f"{int(k)} of {int(n)}" for k, n in zip(counts["test with a training near-duplicate"],
                                                         counts["test images"])]
        fig.add_trace(go.Bar(x=counts["dataset"], y=share, text=text, textposition="outside", marker_color="#E45756",
                             hovertemplate="%{x}: %{text} (%{y:.1%})<extra></extra>", cliponaxis=False))
        top = float(share.max()) if len(share) else 0.0
        fig.update_yaxes(range=[0, max(0.05, top * 1.25)], tickformat=".0%", title="share of the test images")
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=TOP_MARGIN, b=10), height=320)
    return fig


def neighbour_distance_figure(neighbours: pd.DataFrame, labels: Sequence[str],
                              title: str = "How close the nearest neighbours are") -> go.Figure:
    """Horizontal bars of the cosine similarity (``similarity`` column of
    :func:`pipeline.neighbours.nearest`) of each neighbour, labelled by ``labels`` (one per row)."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=neighbours["similarity"], y=list(labels), orientation="h", marker_color="#4C78A8",
                         text=[f"{v:.3f}" for v in neighbours["similarity"]], textposition="auto",
                         hovertemplate="%{y}: cosine similarity %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=TOP_MARGIN, b=10), height=120 + 28 * max(1, len(labels)),
                      xaxis=dict(range=[min(0.0, float(neighbours["similarity"].min()) if len(neighbours) else 0.0), 1.0],
                                 title="cosine similarity (1 = same direction)"))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig

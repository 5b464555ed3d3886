"""Plotly figures of the embeddings and the SVM lab: pure functions of plain data, no Streamlit (conventions: :mod:`pipeline.figures`)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from pipeline.figures import (  # the shared colours and layout helpers
    LABEL_ORDER, LABEL_COLORS, PALETTE, SCOPE_PALETTE, _clear_title, _empty_note, _MARGIN,
)


# --------------------------------------------------------------------------- embeddings and the SVM lab

COLOR_BY = ("label", "dataset", "predicted", "correct")
CORRECT_COLORS = {"correct": "#54A24B", "wrong": "#E45756"}


def embedding_categories(df: pd.DataFrame, color_by: str = "label", threshold: float = 0.5) -> pd.Series:
    """The category of each row used to colour an embedding scatter: ``label`` (real/fake),
    ``dataset``, ``predicted`` (p_fake >= threshold: fake) or ``correct`` (prediction == label)."""
    if color_by == "label":
        return df["label"].astype(str)
    if color_by == "dataset":
        return df["dataset"].astype(str)
    p = pd.to_numeric(df.get("p_fake"), errors="coerce") if "p_fake" in df.columns else pd.Series(float("nan"), df.index)
    pred = pd.Series(["fake" if v >= threshold else "real" for v in p.fillna(-1)], index=df.index)
    if color_by == "predicted":
        return pred.where(p.notna(), "unknown")
    if color_by == "correct":
        ok = pred == df["label"].astype(str)
        return pd.Series(["correct" if o else "wrong" for o in ok], index=df.index).where(p.notna(), "unknown")
    raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")


def _category_colors(cats: list[str], color_by: str) -> dict[str, str]:
    fixed = {**LABEL_COLORS, **CORRECT_COLORS, "unknown": "#BAB0AC"} if color_by != "dataset" else {}
    out, i = {}, 0
    for c in cats:
        if c in fixed:
            out[c] = fixed[c]
        else:
            out[c] = SCOPE_PALETTE[i % len(SCOPE_PALETTE)] if color_by == "dataset" else PALETTE[i % len(PALETTE)]
            i += 1
    return out


def embedding_scatter_figure(df: pd.DataFrame, columns: tuple[str, ...], color_by: str = "label",
                             threshold: float = 0.5, title: str = "", uirevision: str = "embedding",
                             marker_size: float | None = None) -> go.Figure:
    """A 3-D (``go.Scatter3d``, WebGL) or 2-D (``go.Scattergl``) scatter of ``df`` on 2 or 3
    ``columns``, one trace per category of ``color_by``. Hover: file name, label, dataset, split,
    p(fake). ``customdata`` holds each point's row position in ``df`` (for selections).
    ``uirevision`` keeps the user's camera/zoom while the figure is re-created with the same value."""
    if len(columns) not in (2, 3):
        raise ValueError(f"columns must name 2 or 3 coordinates, got {columns}")
    three = len(columns) == 3
    fig = go.Figure()
    df = df.reset_index(drop=True)
    cats = embedding_categories(df, color_by, threshold)
    order = [c for c in (LABEL_ORDER + ["correct", "wrong"]) if c in set(cats)] + sorted(set(cats) - set(
        LABEL_ORDER + ["correct", "wrong"]))
    colors = _category_colors(order, color_by)
    name_col = df["relpath"] if "relpath" in df.columns else df["path"]
    names = name_col.astype(str).str.rsplit("/", n=1).str[-1]
    p = pd.to_numeric(df["p_fake"], errors="coerce") if "p_fake" in df.columns else pd.Series(float("nan"), df.index)
    size = marker_size or (3 if three else 5) if len(df) > 2000 else (marker_size or (4 if three else 7))
    for cat in order:
        idx = df.index[cats == cat]
        part = df.loc[idx]
        text = [f"{n}<br>label {lab} · {ds} · {sp}<br>p(fake) {'?' if pd.isna(q) else f'{q:.3f}'}"
                for n, lab, ds, sp, q in zip(names[idx], part["label"], part["dataset"], part["split"], p[idx])]
        common = dict(name=f"{cat} ({len(idx):,})", mode="markers", text=text, customdata=list(idx),
                      hovertemplate="%{text}<extra></extra>",
                      marker=dict(size=size, color=colors[cat], opacity=0.75, line=dict(width=0)))
        if three:
            fig.add_trace(go.Scatter3d(x=part[columns[0]], y=part[columns[1]], z=part[columns[2]], **common))
        else:
            fig.add_trace(go.Scattergl(x=part[columns[0]], y=part[columns[1]], **common))
    if not fig.data:
        _empty_note(fig, "no points to show")
    fig.update_layout(title=title, margin=_MARGIN, uirevision=uirevision, legend=dict(itemsizing="constant"),
                      legend_title_text=color_by)
    if three:
        fig.update_layout(scene=dict(xaxis_title=columns[0], yaxis_title=columns[1], zaxis_title=columns[2],
                                     uirevision=uirevision, aspectmode="cube"), height=620)
    else:
        # A click selects the point it hits (clickmode "event+select"; Streamlit's on_select reports it).
        # Dragging pans: with dragmode "lasso" or "select" Streamlit turns click selection off, so the
        # lasso and box stay one click away in the chart's toolbar instead.
        fig.update_layout(xaxis_title=columns[0], yaxis_title=columns[1], height=480, dragmode="pan",
                          clickmode="event+select")
    return fig


def explained_variance_figure(ratios: Iterable[float], title: str = "Explained variance") -> go.Figure:
    """Bars: variance ratio of each PCA component; line: cumulative share (right axis)."""
    r = [float(v) for v in ratios]
    fig = go.Figure()
    if not r:
        _empty_note(fig, "no PCA recorded")
        return fig
    comps = list(range(1, len(r) + 1))
    cum = pd.Series(r).cumsum().tolist()
    fig.add_trace(go.Bar(x=comps, y=r, name="per component", marker_color=PALETTE[0],
                         hovertemplate="PC %{x}: %{y:.1%}<extra></extra>"))
    fig.add_trace(go.Scatter(x=comps, y=cum, name="cumulative", mode="lines+markers", yaxis="y2",
                             line=dict(color=PALETTE[1]), hovertemplate="PC 1-%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(title=title, margin=_MARGIN, height=380, xaxis_title="Principal component",
                      yaxis=dict(title="Share of variance", tickformat=".0%"),
                      yaxis2=dict(title="Cumulative", overlaying="y", side="right", range=[0, 1.02], tickformat=".0%"),
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return _clear_title(fig)


def decision_surface_figure(surface: Mapping[str, Any], points_x, points_y, labels, title: str = "",
                            axis_titles: tuple[str, str] = ("pca_1", "pca_2")) -> go.Figure:
    """SVM margin on a grid (``surface`` from :func:`pipeline.svm.decision_surface`: x, y, z) as a
    diverging contour (blue = real side, red = fake side, black line = decision boundary), with
    the points on top coloured by their true label."""
    fig = go.Figure()
    z = surface["z"]
    zmax = float(max(abs(float(pd.Series(z.ravel()).quantile(0.02))), abs(float(pd.Series(z.ravel()).quantile(0.98))),
                     1e-6))
    fig.add_trace(go.Contour(x=surface["x"], y=surface["y"], z=z, zmin=-zmax, zmax=zmax, zmid=0,
                             colorscale=[[0, LABEL_COLORS["real"]], [0.5, "#F7F7F7"], [1, LABEL_COLORS["fake"]]],
                             opacity=0.55, contours=dict(showlines=False), name="margin",
                             colorbar=dict(title="margin", thickness=12), hovertemplate="margin %{z:.2f}<extra></extra>"))
    fig.add_trace(go.Contour(x=surface["x"], y=surface["y"], z=z, showscale=False, name="boundary",
                             contours=dict(start=0, end=0, size=1, coloring="none"), line=dict(color="black", width=2),
                             hoverinfo="skip"))
    labels = pd.Series(list(labels)).astype(str)
    px_, py_ = pd.Series(list(points_x)), pd.Series(list(points_y))
    for lab in [lab for lab in LABEL_ORDER if lab in set(labels)]:
        m = (labels == lab).to_numpy()
        fig.add_trace(go.Scattergl(x=px_[m], y=py_[m], mode="markers", name=lab,
                                   marker=dict(size=5, color=LABEL_COLORS[lab], line=dict(width=0.5, color="white"))))
    fig.update_layout(title=title, margin=_MARGIN, height=480, xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
                      legend=dict(orientation="h", y=1.08))
    return fig

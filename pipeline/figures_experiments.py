"""Plotly figures of the experiments (search, ablation, robustness, generalisation) and the router: pure functions of plain data, no Streamlit (conventions: :mod:`pipeline.figures`)."""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from pipeline.figures import (  # the shared colours and layout helpers
    TITLE_BAND, _clear_title, _colors, _empty_note, _fmt, _MARGIN, _UNIT_METRICS, metric_label,
)


# --------------------------------------------------------------------------- experiments (pipeline.experiments)

SEARCH_DIMENSIONS = ["blocks", "filters", "kernel_size", "dense_units", "dropout", "pooling", "learning_rate"]
PERTURBATION_TITLES = {"jpeg": "JPEG quality", "scale": "Down-then-up scale factor", "blur": "Gaussian blur sigma (px)",
                       "noise": "Gaussian noise sigma (0..255)"}
PERTURBATION_SHORT = {"jpeg": "JPEG quality", "scale": "Shrink factor", "blur": "Blur σ (px)",
                      "noise": "Noise σ (0-255)"}  # panel titles that fit a quarter of a laptop screen
CLEAN_LEVEL = {"jpeg": 100.0, "scale": 1.0, "blur": 0.0, "noise": 0.0}  # where the clean image sits on each axis



def _empty_figure(note: str, title: str) -> go.Figure:
    """A figure with only ``title`` and a grey ``note`` saying what is missing."""
    fig = go.Figure()
    _empty_note(fig, note)
    fig.update_layout(title=title, margin=_MARGIN)
    return fig

def search_parallel_figure(trials: pd.DataFrame, objective: str = "val_auc") -> go.Figure:
    """Parallel coordinates of the search trials: one line per trial, coloured by ``objective``.
    Categorical hyper-parameters (pooling) get one tick per value; learning rate is on a log10 axis."""
    import numpy as np

    fig = go.Figure()
    df = trials.copy()
    if objective in df.columns:
        df = df[pd.to_numeric(df[objective], errors="coerce").notna()]
    if df.empty or objective not in df.columns:
        return _empty_figure("no completed trial", "Search trials")
    dims = []
    for col in [c for c in SEARCH_DIMENSIONS if c in df.columns] + [objective]:
        values = df[col]
        if col == "learning_rate":
            lr = pd.to_numeric(values, errors="coerce")
            ticks = sorted(lr.dropna().unique())
            dims.append(dict(label="learning rate (log10)", values=np.log10(lr), tickvals=np.log10(ticks),
                             ticktext=[f"{t:g}" for t in ticks]))
        elif pd.to_numeric(values, errors="coerce").notna().all():
            dims.append(dict(label=metric_label(col) if col == objective else col.replace("_", " "),
                             values=pd.to_numeric(values)))
        else:
            cats = sorted(values.astype(str).unique())
            codes = values.astype(str).map({c: i for i, c in enumerate(cats)})
            dims.append(dict(label=col.replace("_", " "), values=codes, tickvals=list(range(len(cats))),
                             ticktext=cats, range=[-0.5, len(cats) - 0.5]))
    score = pd.to_numeric(df[objective])
    fig.add_trace(go.Parcoords(line=dict(color=score, colorscale="Viridis", showscale=True,
                                         colorbar=dict(title=objective.replace("_", " "))), dimensions=dims))
    fig.update_layout(title=f"Search trials ({len(df)}), coloured by {objective.replace('_', ' ')}",
                      margin=dict(l=60, r=30, t=70, b=20))
    return fig


def ablation_heatmap_figure(grid: pd.DataFrame, metric: str = "best_val_auc") -> go.Figure:
    """Optimizer (rows) x learning rate (columns) heat map of ``metric``, every cell annotated."""
    fig = go.Figure()
    if grid.empty or metric not in grid.columns:
        return _empty_figure("no ablation results", "Optimizer x learning rate")
    optimizers = list(dict.fromkeys(grid["optimizer"]))
    rates = sorted(pd.to_numeric(grid["learning_rate"]).unique(), reverse=True)
    cell = grid.set_index(["optimizer", "learning_rate"])[metric]
    z = [[cell.get((o, r)) for r in rates] for o in optimizers]
    z = [[None if v is None or pd.isna(v) else float(v) for v in row] for row in z]
    xs = [f"{r:g}" for r in rates]
    fig.add_trace(go.Heatmap(z=z, x=xs, y=optimizers, colorscale="Viridis", colorbar=dict(title=metric_label(metric)),
                             hovertemplate="%{y}, learning rate %{x}<br>" + metric_label(metric) +
                                           " %{z:.3f}<extra></extra>"))
    finite = [v for row in z for v in row if v is not None]
    mid = (min(finite) + max(finite)) / 2 if finite else 0
    fig.update_layout(annotations=[  # one update: add_annotation per cell is quadratic
        dict(x=x, y=o, text=_fmt(z[i][j]), showarrow=False,
             font=dict(color="black" if z[i][j] is not None and z[i][j] > mid else "white"))
        for i, o in enumerate(optimizers) for j, x in enumerate(xs)])
    fig.update_layout(title=f"{metric_label(metric)}: optimizer x learning rate", margin=_MARGIN)
    fig.update_xaxes(title_text="Learning rate", type="category")
    fig.update_yaxes(title_text="Optimizer", type="category")
    return fig


def robustness_figure(table: pd.DataFrame, dataset: str = "all", metric: str = "roc_auc",
                      colors: Mapping[str, str] | None = None, highlight: str | None = None) -> go.Figure:
    """One panel per perturbation: ``metric`` vs level, one line per model, for one dataset
    (``all`` = pooled). Each line starts at the clean image (JPEG 100, scale 1, sigma 0).
    ``highlight``: a model (the run's combined model, its verdict) drawn thicker, labelled
    "<model> (run's verdict)"."""
    from plotly.subplots import make_subplots

    df = table[table["dataset"].astype(str) == str(dataset)] if "dataset" in table.columns else table.iloc[:0]
    perts = [p for p in PERTURBATION_TITLES if p in set(df.get("perturbation", []))]
    if df.empty or not perts:
        return _empty_figure(f"no robustness results for {dataset}", "Robustness")
    fig = make_subplots(rows=1, cols=len(perts), subplot_titles=[PERTURBATION_SHORT.get(p, PERTURBATION_TITLES[p])
                                                                 for p in perts],
                        shared_yaxes=True, horizontal_spacing=0.04)
    models = list(dict.fromkeys(df["model"]))
    cmap = _colors(models, colors)
    for model in models:
        mdf = df[df["model"] == model]
        clean = mdf[mdf["perturbation"] == "none"][metric]
        for k, pert in enumerate(perts, start=1):
            part = mdf[mdf["perturbation"] == pert].sort_values("level")
            xs, ys = part["level"].astype(float).tolist(), pd.to_numeric(part[metric]).tolist()
            if len(clean):
                xs, ys = [CLEAN_LEVEL[pert]] + xs, [float(clean.iloc[0])] + ys
                order = sorted(range(len(xs)), key=lambda i: xs[i])
                xs, ys = [xs[i] for i in order], [ys[i] for i in order]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", legendgroup=model,
                                     name=f"{model} (run's verdict)" if model == highlight else model,
                                     showlegend=k == 1, line=dict(color=cmap[model], width=4 if model == highlight else 2),
                                     hovertemplate=f"{model}<br>{PERTURBATION_TITLES[pert]} %{{x:g}}<br>"
                                                   f"{metric_label(metric)} %{{y:.3f}}<extra></extra>"),
                          row=1, col=k)
        for k, pert in enumerate(perts, start=1):
            if pert in ("jpeg", "scale"):  # stronger perturbation to the right everywhere
                fig.update_xaxes(autorange="reversed", row=1, col=k)
    if metric in _UNIT_METRICS:
        fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text=metric_label(metric), row=1, col=1)
    scope = "all datasets pooled" if dataset == "all" else dataset
    fig.update_layout(title=f"{metric_label(metric)} under perturbation ({scope}; left: clean, right: stronger)",
                      margin=dict(l=10, r=10, t=80, b=10), hovermode="closest")
    fig.update_annotations(font_size=12)  # the panel titles
    _clear_title(fig)
    fig.update_layout(margin=dict(t=TITLE_BAND + 36), title=dict(pad=dict(b=40)))  # panel titles under the title
    return fig


def generalisation_figure(matrix: pd.DataFrame, metric: str = "roc_auc") -> go.Figure:
    """Train-on (rows) x test-on (columns) heat map of ``metric``, annotated; the diagonal is in-domain."""
    fig = go.Figure()
    if matrix.empty or metric not in matrix.columns:
        return _empty_figure("no generalisation matrix", "Generalisation")
    train = sorted(matrix["train_on"].astype(str).unique())
    test = sorted(matrix["test_on"].astype(str).unique())
    cell = matrix.assign(train_on=matrix["train_on"].astype(str), test_on=matrix["test_on"].astype(str)) \
        .set_index(["train_on", "test_on"])[metric]
    z = [[None if pd.isna(cell.get((a, b))) else float(cell.get((a, b))) for b in test] for a in train]
    unit = metric in _UNIT_METRICS
    fig.add_trace(go.Heatmap(z=z, x=test, y=train, colorscale="RdYlGn", zmin=0.5 if unit else None,
                             zmax=1.0 if unit else None, colorbar=dict(title=metric_label(metric)),
                             hovertemplate="trained on %{y}<br>tested on %{x}<br>" + metric_label(metric) +
                                           " %{z:.3f}<extra></extra>"))
    from pipeline.figures_explore import text_color_on

    lo, hi = (0.5, 1.0) if unit else (min((v for r in z for v in r if v is not None), default=0.0),
                                      max((v for r in z for v in r if v is not None), default=1.0))
    fig.update_layout(annotations=[  # one update: add_annotation per cell is quadratic
        dict(x=b, y=a, text=f"<b>{_fmt(z[i][j])}</b>" if a == b else _fmt(z[i][j]), showarrow=False,
             font=dict(size=14, color=text_color_on("RdYlGn", z[i][j], lo, hi)))
        for i, a in enumerate(train) for j, b in enumerate(test)])
    fig.update_layout(title=f"{metric_label(metric)}: trained on (rows) x tested on (columns); diagonal in-domain",
                      margin=_MARGIN)
    _clear_title(fig)
    fig.update_xaxes(title_text="Tested on", type="category", side="bottom")
    fig.update_yaxes(title_text="Trained on", type="category", autorange="reversed")
    return fig


def routing_confusion_figure(confusion: pd.DataFrame, title: str = "Router: true dataset x routed to") -> go.Figure:
    """True dataset (rows) x dataset the router sent the image to (columns): every cell annotated with
    its image count and share of the row; colour is the row share, so the diagonal is the router's
    accuracy per dataset (``pipeline.routing.RoutingReport.confusion``)."""
    fig = go.Figure()
    if confusion.empty:
        return _empty_figure("no routed test images", title)
    rows, cols = [str(r) for r in confusion.index], [str(c) for c in confusion.columns]
    counts = confusion.to_numpy(dtype=int)
    totals = counts.sum(axis=1, keepdims=True)
    share = (counts / totals.clip(min=1)).tolist()
    fig.add_trace(go.Heatmap(z=share, x=cols, y=rows, zmin=0, zmax=1, colorscale="Blues", showscale=False,
                             customdata=counts.tolist(),
                             hovertemplate="%{y} routed to %{x}<br>%{customdata} images (%{z:.1%} of the row)"
                                           "<extra></extra>"))
    fig.update_layout(annotations=[  # one update: add_annotation per cell is quadratic
        dict(x=c, y=r, showarrow=False, text=f"<b>{counts[i][j]}</b><br>{share[i][j]:.1%}",
             font=dict(size=14, color="white" if share[i][j] > 0.55 else "#222"))
        for i, r in enumerate(rows) for j, c in enumerate(cols)])
    fig.update_layout(title=title, margin=_MARGIN, height=120 + 70 * len(rows))
    fig.update_xaxes(title_text="Routed to", type="category", side="bottom")
    fig.update_yaxes(title_text="True dataset", type="category", autorange="reversed")
    return fig

"""Plotly figures for the dashboard pages and the run report: pure functions of plain data, no Streamlit.

Every function returns a ``plotly.graph_objects.Figure`` (graph_objects rather than plotly
express: it stays fast with many points) and is tested directly in ``tests/test_figures.py``.
Colours: one per model (:func:`model_colors`, pass the same mapping to every figure of a page so a
model keeps its colour), and fixed colours for the classes (:data:`LABEL_COLORS`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B", "#9D755D",
           "#FF9DA6", "#BAB0AC"]
# Scopes get their own muted colours so they are not mistaken for models.
SCOPE_PALETTE = ["#5B6472", "#9ECAE9", "#FFBF79", "#8CD17D", "#D4A6C8", "#F2CF5B", "#B6992D", "#86BCB6"]
LABEL_COLORS = {"real": "#4C78A8", "fake": "#E45756"}
SPLIT_ORDER = ["train", "val", "test"]
LABEL_ORDER = ["real", "fake"]
METRIC_LABELS = {
    "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1",
    "balanced_accuracy": "Balanced accuracy", "roc_auc": "ROC-AUC", "average_precision": "Average precision",
    "accuracy_at_0.5": "Accuracy at 0.5", "threshold": "Threshold", "params": "Parameters",
    "file_size_mb": "Model file (MB)", "train_seconds": "Training time (s)",
    "latency_ms_batch1": "Latency, batch 1 (ms)", "latency_ms_batch64": "Latency, batch 64 (ms)",
    "latency_ms_per_image_batch64": "Latency per image, batch 64 (ms)",
    "loss": "Loss", "auc": "AUC",
}
_UNIT_METRICS = {"accuracy", "precision", "recall", "f1", "balanced_accuracy", "roc_auc", "average_precision",
                 "accuracy_at_0.5", "auc"}
_MARGIN = dict(l=10, r=10, t=50, b=10)
TITLE_BAND = 74  # px above the plot: the title sits at its bottom, the chart toolbar at its top (never on the title)


def _clear_title(fig: go.Figure) -> go.Figure:
    """Put the figure's title just above the plot area (left-aligned) and make the top margin tall enough
    for the chart toolbar above it, so the toolbar never covers the title on a narrow column."""
    if fig.layout.title and fig.layout.title.text:
        fig.update_layout(title=dict(x=0, xref="paper", xanchor="left", y=1, yref="paper", yanchor="bottom",
                                     pad=dict(b=12)),
                          margin=dict(t=max(TITLE_BAND, fig.layout.margin.t or 0)))
    return fig


def _legend_below(fig: go.Figure, plot_px: int = 340) -> go.Figure:
    """Put the legend under the plot, below the x-axis title (anchored to the bottom of the figure, not to
    the plot), with a bottom margin tall enough for one entry per row on a narrow column, so the legend
    never covers the axis title and never needs a scroll bar."""
    n = sum(1 for t in fig.data if t.showlegend is not False)
    bottom = 70 + 21 * n
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=0, yref="container", yanchor="bottom"),
                      margin=dict(b=bottom), height=plot_px + bottom + TITLE_BAND)
    return fig


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " ").capitalize())


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """A stable colour per model, in the order given."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _colors(models: Iterable[str], colors: Mapping[str, str] | None) -> dict[str, str]:
    models = list(models)
    base = model_colors(models)
    if colors:
        base.update({m: c for m, c in colors.items() if m in base})
    return base


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color="#888"))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    try:
        if pd.isna(v):
            return "n/a"
    except (TypeError, ValueError):
        pass
    return f"{float(v):.{digits}f}"


# --------------------------------------------------------------------------- ROC / PR


def roc_figure(curves: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str] | None = None,
               title: str = "ROC curve") -> go.Figure:
    """ROC curves overlaid, plus the chance diagonal (always the first trace).

    ``curves[model] = {"fpr": [...], "tpr": [...], "auc": float | None}``. Models with no points
    (a scope holding one class) are left out and named in a note.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line=dict(color="#999", dash="dash", width=1), hoverinfo="skip"))
    cmap = _colors(curves, colors)
    missing = []
    for model, c in curves.items():
        fpr, tpr = list(c.get("fpr") or []), list(c.get("tpr") or [])
        if not fpr or len(fpr) != len(tpr):
            missing.append(model)
            continue
        fig.add_trace(go.Scatter(
            x=fpr, y=tpr, mode="lines", name=f"{model} (AUC {_fmt(c.get('auc'))})", legendgroup=model,
            line=dict(color=cmap[model], width=2),
            hovertemplate=f"{model}<br>FPR %{{x:.3f}}<br>TPR %{{y:.3f}}<extra></extra>"))
    if missing:
        _empty_note(fig, f"no ROC curve for {', '.join(missing)} (one class only in this scope)")
    fig.update_layout(title=title, margin=_MARGIN, hovermode="closest")
    _legend_below(fig)
    _clear_title(fig)
    fig.update_xaxes(title_text="False positive rate", range=[-0.01, 1.01], constrain="domain")
    fig.update_yaxes(title_text="True positive rate", range=[-0.01, 1.01], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    return fig


def pr_figure(curves: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str] | None = None,
              prevalence: float | None = None, title: str = "Precision-recall curve") -> go.Figure:
    """Precision-recall curves overlaid (recall on x). ``prevalence`` adds the chance level line.

    ``curves[model] = {"precision": [...], "recall": [...], "ap": float | None}``.
    """
    fig = go.Figure()
    cmap = _colors(curves, colors)
    missing = []
    for model, c in curves.items():
        prec, rec = list(c.get("precision") or []), list(c.get("recall") or [])
        if not prec or len(prec) != len(rec):
            missing.append(model)
            continue
        fig.add_trace(go.Scatter(
            x=rec, y=prec, mode="lines", name=f"{model} (AP {_fmt(c.get('ap'))})", legendgroup=model,
            line=dict(color=cmap[model], width=2, shape="hv"),  # steps, as average precision integrates
            hovertemplate=f"{model}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>"))
    if prevalence is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[prevalence, prevalence], mode="lines",
                                 name=f"chance ({prevalence:.2f} fake)", line=dict(color="#999", dash="dash", width=1),
                                 hoverinfo="skip"))
    if missing:
        _empty_note(fig, f"no PR curve for {', '.join(missing)} (one class only in this scope)")
    fig.update_layout(title=title, margin=_MARGIN, hovermode="closest")
    _legend_below(fig)
    _clear_title(fig)
    fig.update_xaxes(title_text="Recall (fakes caught)", range=[-0.01, 1.01])
    fig.update_yaxes(title_text="Precision", range=[-0.01, 1.01])
    return fig


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix_figure(tn: int, fp: int, fn: int, tp: int, title: str = "") -> go.Figure:
    """2x2 heat map: rows actual (real, fake), columns predicted; cells show count and row percentage.

    Colour is the row percentage, so a small class is as readable as a large one.
    """
    counts = [[int(tn), int(fp)], [int(fn), int(tp)]]
    pct = []
    for row in counts:
        total = sum(row)
        pct.append([c / total if total else 0.0 for c in row])
    labels = LABEL_ORDER
    fig = go.Figure(go.Heatmap(
        z=pct, x=[f"pred. {x}" for x in labels], y=[f"actual {y}" for y in labels], zmin=0, zmax=1,
        colorscale="Blues", showscale=False, customdata=counts,
        hovertemplate="%{y}, %{x}<br>%{customdata} images (%{z:.1%} of the row)<extra></extra>"))
    for i, actual in enumerate(labels):
        for j, pred in enumerate(labels):
            fig.add_annotation(x=f"pred. {pred}", y=f"actual {actual}", showarrow=False,
                               text=f"<b>{counts[i][j]}</b><br>{pct[i][j]:.1%}",
                               font=dict(size=14, color="white" if pct[i][j] > 0.55 else "#222"))
    fig.update_layout(title=title or None, margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=300)
    fig.update_xaxes(title_text="Predicted", side="bottom")
    fig.update_yaxes(title_text="Actual", autorange="reversed")
    return fig


# --------------------------------------------------------------------------- training curves


def _epochs(df: pd.DataFrame) -> list:
    """x values: the epoch column if it increases strictly, else 1..n (phases that restart at 0)."""
    if "epoch" in df.columns:
        e = pd.to_numeric(df["epoch"], errors="coerce")
        if e.notna().all() and e.is_monotonic_increasing and e.is_unique:
            return e.tolist()
    return list(range(1, len(df) + 1))


def phase_starts(df: pd.DataFrame) -> list[tuple[Any, str]]:
    """(x, phase) for every row where ``phase`` changes from the row before (not the first row)."""
    if "phase" not in df.columns or df.empty:
        return []
    xs = _epochs(df)
    phases = df["phase"].astype(str).tolist()
    return [(xs[i], phases[i]) for i in range(1, len(phases)) if phases[i] != phases[i - 1]]


def training_curves_figure(history_by_model: Mapping[str, pd.DataFrame], metric: str = "loss",
                           colors: Mapping[str, str] | None = None) -> go.Figure:
    """Per model: training ``metric`` solid, validation ``val_<metric>`` dashed; the start of each
    later phase (fine-tuning) is marked with a dotted vertical line in the model's colour."""
    fig = go.Figure()
    cmap = _colors(history_by_model, colors)
    for model, df in history_by_model.items():
        if df is None or df.empty:
            continue
        x = _epochs(df)
        color = cmap[model]
        for col, dash, part in ((metric, "solid", "train"), (f"val_{metric}", "dash", "validation")):
            if col not in df.columns:
                continue
            fig.add_trace(go.Scatter(
                x=x, y=pd.to_numeric(df[col], errors="coerce").tolist(), mode="lines+markers",
                name=f"{model} · {part}", legendgroup=model, line=dict(color=color, dash=dash, width=2),
                marker=dict(size=5), hovertemplate=f"{model} {part}<br>epoch %{{x}}<br>{metric} %{{y:.4f}}<extra></extra>"))
        for xs, phase in phase_starts(df):
            text = f"{model}: fine-tune" if "fine" in phase.lower() else f"{model}: {phase}"
            fig.add_vline(x=xs - 0.5, line=dict(color=color, dash="dot", width=1.5),
                          annotation_text=text, annotation_position="top left",
                          annotation_font=dict(size=11, color=color))
    if not fig.data:
        _empty_note(fig, f"no {metric} history recorded")
    fig.update_layout(title=f"{metric_label(metric)} per epoch (solid: train, dashed: validation)",
                      margin=_MARGIN, hovermode="x unified")
    fig.update_xaxes(title_text="Epoch", dtick=1 if max((len(d) for d in history_by_model.values()
                                                         if d is not None), default=0) <= 30 else None)
    fig.update_yaxes(title_text=metric_label(metric))
    return fig


# --------------------------------------------------------------------------- data and summary bars


def counts_figure(counts_df: pd.DataFrame) -> go.Figure:
    """Grouped bars: x = dataset / split, one bar per class (real, fake)."""
    fig = go.Figure()
    df = counts_df.copy()
    if df.empty:
        _empty_note(fig, "no images")
    else:
        split_rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
        df["_s"] = df["split"].map(split_rank).fillna(len(SPLIT_ORDER))
        keys = df[["dataset", "split", "_s"]].drop_duplicates().sort_values(["dataset", "_s", "split"])
        index = list(zip(keys["dataset"], keys["split"]))
        labels = [lab for lab in LABEL_ORDER if lab in set(df["label"])] + sorted(
            set(df["label"]) - set(LABEL_ORDER))
        for lab in labels:
            sub = df[df["label"] == lab].set_index(["dataset", "split"])["n"]
            ys = [int(sub.get(k, 0)) for k in index]
            fig.add_trace(go.Bar(
                x=[[k[0] for k in index], [k[1] for k in index]], y=ys, name=lab, text=ys, textposition="auto",
                marker_color=LABEL_COLORS.get(lab), hovertemplate=f"%{{x}}<br>{lab}: %{{y}}<extra></extra>"))
    fig.update_layout(barmode="group", title="Images per dataset, split and class", margin=_MARGIN,
                      legend_title_text="class")
    fig.update_xaxes(title_text="Dataset / split")
    fig.update_yaxes(title_text="Images")
    return fig


def metric_bar_figure(summary_df: pd.DataFrame, metric: str, colors: Mapping[str, str] | None = None) -> go.Figure:
    """Bars of ``metric`` per model; with several scopes in ``summary_df``, one bar group per model."""
    fig = go.Figure()
    if summary_df.empty or metric not in summary_df.columns:
        _empty_note(fig, f"no {metric_label(metric)} to show")
    else:
        models = list(dict.fromkeys(summary_df["model"]))
        scopes = list(dict.fromkeys(summary_df["scope"])) if "scope" in summary_df.columns else [None]
        digits = 3 if metric in _UNIT_METRICS else 2
        if len(scopes) > 1:
            for i, scope in enumerate(scopes):
                sub = summary_df[summary_df["scope"] == scope].set_index("model")[metric]
                ys = [sub.get(m) for m in models]
                fig.add_trace(go.Bar(x=models, y=ys, name=str(scope), marker_color=SCOPE_PALETTE[i % len(SCOPE_PALETTE)],
                                     text=[_fmt(v, digits) for v in ys], textposition="auto"))
            fig.update_layout(barmode="group", legend_title_text="scope")
        else:
            cmap = _colors(models, colors)
            ys = summary_df.set_index("model")[metric].reindex(models).tolist()
            fig.add_trace(go.Bar(x=models, y=ys, name=metric_label(metric), marker_color=[cmap[m] for m in models],
                                 text=[_fmt(v, digits) for v in ys], textposition="auto", showlegend=False))
        if metric in _UNIT_METRICS:
            fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(title=f"{metric_label(metric)} per model", margin=_MARGIN)
    fig.update_xaxes(title_text="Model")
    fig.update_yaxes(title_text=metric_label(metric))
    return fig


# --------------------------------------------------------------------------- single-image check / explain


def probability_bars_figure(records: list[Mapping[str, Any]], colors: Mapping[str, str] | None = None,
                            ensemble: Mapping[str, Any] | None = None, title: str = "P(fake) per model") -> go.Figure:
    """Horizontal bars of P(fake) per model, each model's threshold marked by a black tick (a bar past
    its tick is a "fake" verdict). ``records``: ``{"model", "p_fake", "threshold", "verdict"}``.
    With ``ensemble`` (``{"p_fake", "verdict"}``) an extra grey bar "log-odds vote" (the Keras
    models' vote of :func:`pipeline.checking.ensemble`) with its 0.5 mark."""
    fig = go.Figure()
    if not records:
        _empty_note(fig, "no model scored this image")
        fig.update_layout(title=title, margin=_MARGIN, height=200)
        return fig
    models = [str(r["model"]) for r in records]
    cmap = _colors(models, colors)
    names = list(models)
    ps = [float(r["p_fake"]) for r in records]
    ts = [float(r["threshold"]) for r in records]
    verdicts = [str(r.get("verdict", "")) for r in records]
    bar_colors = [cmap[m] for m in models]
    if ensemble and ensemble.get("p_fake") is not None:
        names.append("log-odds vote")
        ps.append(float(ensemble["p_fake"]))
        ts.append(0.5)
        verdicts.append(str(ensemble.get("verdict", "")))
        bar_colors.append("#5B6472")
    fig.add_trace(go.Bar(y=names, x=ps, orientation="h", marker_color=bar_colors, showlegend=False,
                         text=[f"{p:.3f} · {v}" for p, v in zip(ps, verdicts)], textposition="auto",
                         hovertemplate="%{y}: P(fake) %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(y=names, x=ts, mode="markers", name="| = where this model starts saying fake",
                             marker=dict(symbol="line-ns-open", size=26, color="black", line=dict(width=3, color="black")),
                             hovertemplate="%{y} says fake from P(fake) %{x:.3f} on (its own cut-off, chosen on the "
                                           "validation split)<extra></extra>"))
    fig.update_xaxes(range=[0, 1], title_text="P(fake) (0 = surely real, 1 = surely fake)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, margin=_MARGIN, height=150 + 38 * len(names),
                      legend=dict(orientation="h", yanchor="top", y=-0.3 - 0.9 / max(1, len(names)), xanchor="left", x=0))
    return _clear_title(fig)


def image_figure(rgb, title: str = "", colorscale: list | None = None, cmin: float = 0.0, cmax: float = 1.0,
                 colorbar_title: str = "", tick_labels: tuple[str, str] | None = None,
                 height: int | None = None) -> go.Figure:
    """An RGB image (H, W, 3 uint8 array) with, when ``colorscale`` is given, a colour bar explaining the
    overlay (``tick_labels`` at its two ends, e.g. ``("low", "high")``)."""
    import numpy as np

    arr = np.asarray(rgb)
    fig = go.Figure(go.Image(z=arr, hoverinfo="skip"))
    if colorscale:
        ticks = dict(tickvals=[cmin, cmax], ticktext=list(tick_labels)) if tick_labels else {}
        # an invisible one-cell heat map carries the colour bar
        fig.add_trace(go.Heatmap(z=[[cmin, cmax]], x=[0, 0], y=[0, 0], colorscale=colorscale, zmin=cmin, zmax=cmax,
                                 opacity=0, hoverinfo="skip", showscale=True,
                                 colorbar=dict(title=dict(text=colorbar_title, side="right"), thickness=12,
                                               len=0.9, **ticks)))
    fig.update_xaxes(visible=False, range=[-0.5, arr.shape[1] - 0.5])
    fig.update_yaxes(visible=False, range=[arr.shape[0] - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(title=dict(text=title, font=dict(size=13)), margin=dict(l=0, r=0, t=30 if title else 0, b=0),
                      height=height + (TITLE_BAND - 30 if title and height else 0) if height else None,
                      plot_bgcolor="white")
    return _clear_title(fig)


# --------------------------------------------------------------------------- experiments (pipeline.experiments)

SEARCH_DIMENSIONS = ["blocks", "filters", "kernel_size", "dense_units", "dropout", "pooling", "learning_rate"]
PERTURBATION_TITLES = {"jpeg": "JPEG quality", "scale": "Down-then-up scale factor", "blur": "Gaussian blur sigma (px)",
                       "noise": "Gaussian noise sigma (0..255)"}
PERTURBATION_SHORT = {"jpeg": "JPEG quality", "scale": "Shrink factor", "blur": "Blur σ (px)",
                      "noise": "Noise σ (0-255)"}  # panel titles that fit a quarter of a laptop screen
CLEAN_LEVEL = {"jpeg": 100.0, "scale": 1.0, "blur": 0.0, "noise": 0.0}  # where the clean image sits on each axis


def search_parallel_figure(trials: pd.DataFrame, objective: str = "val_auc") -> go.Figure:
    """Parallel coordinates of the search trials: one line per trial, coloured by ``objective``.
    Categorical hyper-parameters (pooling) get one tick per value; learning rate is on a log10 axis."""
    import numpy as np

    fig = go.Figure()
    df = trials.copy()
    if objective in df.columns:
        df = df[pd.to_numeric(df[objective], errors="coerce").notna()]
    if df.empty or objective not in df.columns:
        _empty_note(fig, "no completed trial")
        fig.update_layout(title="Search trials", margin=_MARGIN)
        return fig
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
        _empty_note(fig, "no ablation results")
        fig.update_layout(title="Optimizer x learning rate", margin=_MARGIN)
        return fig
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
    for i, o in enumerate(optimizers):
        for j, x in enumerate(xs):
            fig.add_annotation(x=x, y=o, text=_fmt(z[i][j]), showarrow=False,
                               font=dict(color="black" if z[i][j] is not None and z[i][j] > mid else "white"))
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
        fig = go.Figure()
        _empty_note(fig, f"no robustness results for {dataset}")
        fig.update_layout(title="Robustness", margin=_MARGIN)
        return fig
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
        _empty_note(fig, "no generalisation matrix")
        fig.update_layout(title="Generalisation", margin=_MARGIN)
        return fig
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
    for i, a in enumerate(train):
        for j, b in enumerate(test):
            text = _fmt(z[i][j])
            fig.add_annotation(x=b, y=a, text=f"<b>{text}</b>" if a == b else text, showarrow=False,
                               font=dict(size=14, color=text_color_on("RdYlGn", z[i][j], lo, hi)))
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
        _empty_note(fig, "no routed test images")
        fig.update_layout(title=title, margin=_MARGIN)
        return fig
    rows, cols = [str(r) for r in confusion.index], [str(c) for c in confusion.columns]
    counts = confusion.to_numpy(dtype=int)
    totals = counts.sum(axis=1, keepdims=True)
    share = (counts / totals.clip(min=1)).tolist()
    fig.add_trace(go.Heatmap(z=share, x=cols, y=rows, zmin=0, zmax=1, colorscale="Blues", showscale=False,
                             customdata=counts.tolist(),
                             hovertemplate="%{y} routed to %{x}<br>%{customdata} images (%{z:.1%} of the row)"
                                           "<extra></extra>"))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            fig.add_annotation(x=c, y=r, showarrow=False, text=f"<b>{counts[i][j]}</b><br>{share[i][j]:.1%}",
                               font=dict(size=14, color="white" if share[i][j] > 0.55 else "#222"))
    fig.update_layout(title=title, margin=_MARGIN, height=120 + 70 * len(rows))
    fig.update_xaxes(title_text="Routed to", type="category", side="bottom")
    fig.update_yaxes(title_text="True dataset", type="category", autorange="reversed")
    return fig


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


def reliability_figure(curves: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str] | None = None,
                       title: str = "Reliability (test split)", height: int = 380) -> go.Figure:
    """Reliability diagram: per model (``curves``: name -> :func:`pipeline.calibration.reliability_table`,
    i.e. ``mean_predicted``, ``fraction_fake``, ``n`` per bin) the observed share of fakes against the
    mean predicted probability of "fake"; the diagonal is perfect calibration. Marker size ~ bin count."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dash"),
                             name="perfectly calibrated", hoverinfo="skip"))
    for name, c in curves.items():
        n = list(c.get("n", []))
        size = [6 + 14 * (k / max(n)) ** 0.5 for k in n] if n else 8
        fig.add_trace(go.Scatter(
            x=c["mean_predicted"], y=c["fraction_fake"], mode="lines+markers", name=name,
            marker=dict(size=size, color=(colors or {}).get(name.split(" (")[0])),
            customdata=n, hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}<br>%{customdata} images"
                                        "<extra>" + name + "</extra>"))
    fig.update_layout(title=title, height=height, xaxis_title="mean predicted p(fake)",
                      yaxis_title="share that is fake", xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]),
                      legend=dict(orientation="h", yanchor="top", y=-0.22), margin=dict(t=50, b=10))
    return fig

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
    its tick is a "fake" verdict). ``records``: ``{"model", "p_fake", "threshold", "verdict"}`` and optionally
    ``"tick_hover"`` (the hover text of that bar's tick, plotly template syntax).
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
    generic = "%{y} says fake from P(fake) %{x:.3f} on (its own cut-off, chosen on the validation split)"
    tick_hover = [str(r.get("tick_hover") or generic) for r in records] + [generic] * (len(names) - len(records))
    fig.add_trace(go.Scatter(y=names, x=ts, mode="markers", name="| = where this model starts saying fake",
                             marker=dict(symbol="line-ns-open", size=26, color="black", line=dict(width=3, color="black")),
                             hovertemplate=([h + "<extra></extra>" for h in tick_hover]
                                            if any(h != generic for h in tick_hover) else generic + "<extra></extra>")))
    fig.update_xaxes(range=[0, 1], title_text="P(fake) (0 = surely real, 1 = surely fake)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, margin=_MARGIN, height=150 + 38 * len(names),
                      legend=dict(orientation="h", yanchor="top", y=-0.3 - 0.9 / max(1, len(names)), xanchor="left", x=0))
    return _clear_title(fig)


def png_data_uri(rgb) -> str:
    """``data:image/png;base64,...`` of an (H, W, 3), (H, W, 1) or (H, W) image, 0-255 (another dtype is clipped
    to 0-255 and cast to uint8), lossless (Pillow, fast compression)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_figure(rgb, title: str = "", colorscale: list | None = None, cmin: float = 0.0, cmax: float = 1.0,
                 colorbar_title: str = "", tick_labels: tuple[str, str] | None = None,
                 height: int | None = None) -> go.Figure:
    """An RGB image (H, W, 3 uint8 array) with, when ``colorscale`` is given, a colour bar explaining the
    overlay (``tick_labels`` at its two ends, e.g. ``("low", "high")``).

    The picture travels as one lossless PNG data URI (plotly's ``Image.source``), not as a pixel array
    (``Image.z``): the browser shows it as an image instead of painting every pixel from 200 KB of JSON
    for a 256 px face, which was most of the browser's work per checked photo."""
    import numpy as np

    arr = np.asarray(rgb)
    fig = go.Figure(go.Image(source=png_data_uri(arr), hoverinfo="skip"))
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

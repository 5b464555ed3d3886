"""The dataset shortcut audit (pipeline.forensics.audit) drawn for the Overview page."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pipeline.forensics import audit as audit_mod

FACT_LABELS = {"format": "File format", "jpeg_quality": "JPEG quality (closest IJG)",
               "jpeg_table": "JPEG quantisation table (hash)", "subsampling": "Chroma subsampling",
               "progressive": "Progressive JPEG", "size": "Image size (pixels)", "has_exif": "EXIF present"}
LABEL_COLORS = {"real": "#2e7d32", "fake": "#c62828"}
TOP_VALUES = 12


def distribution_figure(dist: pd.DataFrame, fact: str) -> go.Figure:
    """Share of each class's images per value of ``fact``, one small group of bars per dataset.

    ``dist``: :func:`pipeline.forensics.audit.distributions`. Values beyond the 12 most common of a
    dataset are pooled as "other".
    """
    sub = dist[dist["fact"] == fact].copy()
    labels = [c[len("share_"):] for c in sub.columns if c.startswith("share_")]
    fig = go.Figure()
    rows = []
    for dataset, part in sub.groupby("dataset", sort=True):
        part = part.assign(total=part[[f"n_{lab}" for lab in labels]].sum(axis=1)).sort_values("total", ascending=False)
        if len(part) > TOP_VALUES:
            other = part.iloc[TOP_VALUES - 1:]
            pooled = {f"share_{lab}": other[f"share_{lab}"].sum() for lab in labels}
            part = pd.concat([part.iloc[:TOP_VALUES - 1], pd.DataFrame([{"value": "other", **pooled}])])
        for r in part.itertuples(index=False):
            rows.append({"x": f"{dataset} · {r.value}", **{lab: getattr(r, f"share_{lab}") for lab in labels}})
    frame = pd.DataFrame(rows)
    for lab in labels:
        fig.add_bar(x=frame["x"] if len(frame) else [], y=frame[lab] if len(frame) else [], name=lab,
                    marker_color=LABEL_COLORS.get(lab), hovertemplate="%{x}<br>%{y:.1%} of " + lab + "<extra></extra>")
    fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      yaxis={"title": "share of the class", "tickformat": ".0%", "range": [0, 1.05]},
                      legend={"orientation": "h", "y": 1.1})
    return fig


def baseline_table(baseline: pd.DataFrame) -> pd.DataFrame:
    """The per-dataset baseline as a display table."""
    out = baseline[["dataset", "n_real", "n_fake", "roc_auc", "roc_auc_std", "shortcut"]].copy()
    out["differences"] = [", ".join(d) if len(d) else "none" for d in baseline["differences"]]
    return out


def _audit(run) -> audit_mod.Audit:
    """From the run folder's cache, this session's memo, or computed now with a progress bar."""
    memo_key = f"shortcut_audit::{run.path}::{run.file_mtime('manifest.parquet')}"
    found = st.session_state.get(memo_key) or audit_mod.load_cached(run)
    if found is not None:
        st.session_state[memo_key] = found
        return found
    bar = st.progress(0.0, text="Reading file headers for the shortcut audit...")

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Shortcut audit: {stage} {done:,}/{total:,}")

    result = audit_mod.for_run(run, progress)
    bar.empty()
    st.session_state[memo_key] = result
    return result


def render_audit(run) -> None:
    """The section: verdict per dataset, the file-facts baseline table, the distributions of one fact."""
    st.subheader("File shortcut audit")
    st.caption("Can a detector tell real from fake by the file alone (format, JPEG quality and table, "
               "subsampling, size, EXIF), without looking at the face? A classifier that sees only these file "
               f"facts, never a pixel, is cross-validated per dataset ({audit_mod.FOLDS} folds, ROC-AUC; 0.5 = "
               f"cannot tell). From {audit_mod.SHORTCUT_AUC:.2f} on, the dataset is flagged: a detector can score "
               "well there by reading the encoding, so test it on images re-encoded at one quality "
               "(Robustness page).")
    try:
        result = _audit(run)
    except Exception as exc:  # noqa: BLE001 - the Overview must render even if the audit cannot
        st.warning(f"The shortcut audit could not be computed: {exc}", icon=":material/warning:")
        return
    clean = []
    for line, row in zip(result.verdict_lines(), result.baseline.itertuples(index=False)):
        if row.shortcut:
            st.error(line, icon=":material/warning:")
        elif row.differences or row.roc_auc != row.roc_auc:
            st.warning(line)
        else:
            clean.append(f"{row.dataset} ({row.roc_auc:.2f})")
    if clean:
        st.success(f"No file shortcut in {', '.join(clean)}: no format, table, size or EXIF difference between "
                   "real and fake (file-facts ROC-AUC in brackets).", icon=":material/check:")
    st.dataframe(baseline_table(result.baseline), hide_index=True, width="stretch", column_config={
        "roc_auc": st.column_config.NumberColumn("file-facts ROC-AUC", format="%.3f",
                                                 help="Cross-validated; 0.5 = the file facts say nothing about the class."),
        "roc_auc_std": st.column_config.NumberColumn("± (folds)", format="%.3f"),
        "shortcut": st.column_config.CheckboxColumn("shortcut"),
        "differences": st.column_config.TextColumn("facts that differ between the classes", width="large"),
    })
    fact = st.selectbox("Distribution of", list(FACT_LABELS), format_func=FACT_LABELS.get, key="overview_audit_fact")
    st.plotly_chart(distribution_figure(result.distributions(), fact), key="overview_audit_figure", width="stretch")
    st.caption("Bars: share of each class's images with that value, per dataset. Bars of equal height for real "
               "and fake mean the classes were encoded alike; a value only one class has is a shortcut.")

"""Embeddings: every model's penultimate vectors of the images, in 3-D and 2-D (PCA or UMAP).

Projections are computed by the pipeline (``pipeline.embeddings``), never here. The 3-D chart
lives in its own fragment with a stable key and ``uirevision``: touching the 2-D view, the image
viewer or anything outside the fragment does not rerun it, so a rotated camera stays put.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import common
from pipeline import figures, results

PROJECTIONS = {"PCA": ("pca_1", "pca_2", "pca_3"), "UMAP": ("umap_1", "umap_2", "umap_3")}
PROJECTIONS_2D = {"PCA": ("pca2d_1", "pca2d_2"), "UMAP": ("umap2d_1", "umap2d_2")}
SPLIT_LABELS = {"test": "test", "val": "validation", "train": "train"}
WHAT_TO_RUN = (f"Embeddings are built by the pipeline after training:\n\n```\n{results.TRAIN_COMMAND}\n```\n\n"
               "(with `[embeddings] enabled = true`, the default). A rerun with the same config trains "
               "nothing again and only adds what is missing.")


def _mtime(run: results.Run, model: str, name: str) -> float:
    return run.file_mtime(f"models/{model}/{name}") + run.file_mtime(f"models/{model}/embeddings.json")


@st.cache_data(show_spinner=False, max_entries=32)
def _projections(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return results.load_run(results.info_at(run_path)).projections(model)


@st.cache_data(show_spinner=False, max_entries=32)
def _separability(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return results.load_run(results.info_at(run_path)).separability(model)


@st.cache_data(show_spinner=False, max_entries=32)
def _embedding_info(run_path: str, model: str, mtime: float) -> dict:
    return results.load_run(results.info_at(run_path)).embedding_info(model)


run = common.selected_run()
models = common.require_models(run)
st.title("Embeddings")
st.caption(common.run_caption(run))
available = [m for m in models if run.has_embeddings(m)]
if not available:
    common.stop_with(f"Run `{run.run_id}` has no embeddings yet. {WHAT_TO_RUN}")

model = st.selectbox("Model", available, key="emb_model",
                     help="Each model's penultimate layer (named 'embedding'): its vector representation of a face.")
info = common.guarded(_embedding_info, str(run.path), model, _mtime(run, model, "embeddings.json"))
table = common.guarded(_projections, str(run.path), model, _mtime(run, model, "projections.parquet"))
try:
    threshold = float(common.metrics(run, model).get("threshold", 0.5))
except (TypeError, ValueError):
    threshold = 0.5
st.markdown(f"**{model}**: {info.get('n', len(table)):,} images × {info.get('dim', '?'):,}-D embedding → "
            f"standardised, PCA to {info.get('n_components', '?')} components (fitted on the training split). "
            f"UMAP on those components, fixed seed, fitted on {info.get('umap_fit_points', '?'):,} images.")
has_umap = bool(table["umap_1"].notna().any())
projection_options = list(PROJECTIONS) if has_umap else ["PCA"]


def _filtered(splits: list[str]) -> pd.DataFrame:
    return table[table["split"].isin(splits)] if splits else table.iloc[0:0]


@st.fragment
def explorer_3d() -> None:
    c1, c2, c3 = st.columns([1, 1, 2])
    proj = c1.radio("Projection", projection_options, key="emb_projection", horizontal=True)
    color_by = c2.selectbox("Colour by", figures.COLOR_BY, key="emb_color",
                            help=f"predicted/correct use the model's own head at its threshold ({threshold:.2f}).")
    splits = c3.multiselect("Images", list(SPLIT_LABELS), default=["test"], key="emb_splits",
                            format_func=SPLIT_LABELS.get)
    df = _filtered(splits)
    fig = figures.embedding_scatter_figure(df, PROJECTIONS[proj], color_by, threshold,
                                           title=f"{model} · {proj} 3-D · {len(df):,} images",
                                           uirevision=f"{run.run_id}/{model}/{proj}")
    st.plotly_chart(fig, key="emb_3d", width="stretch")
    st.caption("Drag to rotate, scroll to zoom, click legend entries to hide a group. The view is kept while "
               "you change the colouring or the images shown.")


@st.fragment
def explorer_2d() -> None:
    c1, c2, c3 = st.columns([1, 1, 2])
    proj = c1.radio("2-D projection", projection_options, key="emb_projection_2d", horizontal=True)
    color_by = c2.selectbox("Colour by ", figures.COLOR_BY, key="emb_color_2d")
    splits = c3.multiselect("Images ", list(SPLIT_LABELS), default=["test"], key="emb_splits_2d",
                            format_func=SPLIT_LABELS.get)
    df = _filtered(splits).reset_index(drop=True)
    fig = figures.embedding_scatter_figure(df, PROJECTIONS_2D[proj], color_by, threshold,
                                           title=f"{model} · {proj} 2-D", uirevision=f"{run.run_id}/{model}/{proj}/2d")
    event = st.plotly_chart(fig, key="emb_2d", width="stretch", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    rows = []
    for pt in points:
        cd = pt.get("customdata")
        idx = cd[0] if isinstance(cd, (list, tuple)) else cd
        if isinstance(idx, (int, float)) and 0 <= int(idx) < len(df):
            rows.append(int(idx))
    if not rows:
        st.caption("Click a point (or draw a box / lasso) to see the images.")
        return
    st.markdown(f"**{len(rows)} image(s) selected**" + (" · showing the first 8" if len(rows) > 8 else ""))
    cols = st.columns(4)
    for i, r in enumerate(rows[:8]):
        row = df.iloc[r]
        img = common.load_thumbnail(str(row["path"]), 200)
        col = cols[i % 4]
        if img is None:
            col.warning(f"{row['path']} is missing or unreadable")
        else:
            col.image(img, width="stretch")
        p = row.get("p_fake")
        col.caption(f"{Path(str(row['path'])).name} · **{row['label']}** · {row['dataset']} · "
                    f"p(fake) {'?' if pd.isna(p) else f'{p:.3f}'}")


st.subheader("3-D view")
explorer_3d()
st.subheader("2-D view: select points to see the images")
explorer_2d()

st.subheader("Do real and fake cluster?")
c1, c2 = st.columns([3, 2], gap="large")
c1.plotly_chart(figures.explained_variance_figure(common.guarded(run.explained_variance, model),
                                                  title=f"{model}: explained variance of the PCA"),
                key="emb_variance", width="stretch")
sep = common.guarded(_separability, str(run.path), model, _mtime(run, model, "separability.json"))
c2.markdown("**Separability on the test split** (classifiers fitted on train)")
c2.dataframe(sep, hide_index=True, width="stretch", key="emb_separability",
             column_config={"accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
                            "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
                            "space": "Space", "dims": "Dims", "classifier": "Classifier"})
c2.caption("A high score in 2-D or 3-D means the classes form separate clusters you can see; a score that "
           "only appears in the full PCA space means they separate, but not in a view you can draw. "
           "Try the SVM lab for kernels on the same components.")

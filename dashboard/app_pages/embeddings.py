"""Embeddings: every model's penultimate vectors of the images, in 3-D and 2-D (PCA or UMAP).

Projections are computed by the pipeline (``pipeline.embeddings``), never here. The 3-D chart
lives in its own fragment with a stable key and ``uirevision``: touching the 2-D view, the image
viewer or anything outside the fragment does not rerun it, so a rotated camera stays put.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import common, compute_panel
from pipeline import figures, figures_embeddings, images, results, run_embeddings

PROJECTIONS = {"PCA": ("pca_1", "pca_2", "pca_3"), "UMAP": ("umap_1", "umap_2", "umap_3")}
PROJECTIONS_2D = {"PCA": ("pca2d_1", "pca2d_2"), "UMAP": ("umap2d_1", "umap2d_2")}
SPLIT_LABELS = {"test": "test", "val": "validation", "train": "train"}
VIEWS = ["2-D map: click a face to explore it", "3-D view"]
VIEW_KEY = "emb_view"
PICK_KEY, PICK_SOURCE_KEY = "emb_pick", "emb_pick_source"  # manifest row of the opened image; what set it
WHAT_TO_RUN = (f"Embeddings are built by the pipeline after training:\n\n```\n{results.TRAIN_COMMAND}\n```\n\n"
               "(with `[embeddings] enabled = true`, the default). A rerun with the same config trains "
               "nothing again and only adds what is missing.")


def _mtime(run: results.Run, model: str, name: str) -> float:
    return run.file_mtime(f"models/{model}/{name}") + run.file_mtime(f"models/{model}/embeddings.json")


@st.cache_data(show_spinner=False, max_entries=32)
def _projections(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return run_embeddings.projections(results.load_run(results.info_at(run_path)), model)


@st.cache_data(show_spinner=False, max_entries=32)
def _separability(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return run_embeddings.separability(results.load_run(results.info_at(run_path)), model)


@st.cache_data(show_spinner=False, max_entries=8)
def _pca_scores(run_path: str, model: str, mtime: float):
    return run_embeddings.pca(results.load_run(results.info_at(run_path)), model)["scores"]


@st.cache_data(show_spinner=False, max_entries=32)
def _embedding_info(run_path: str, model: str, mtime: float) -> dict:
    return run_embeddings.embedding_info(results.load_run(results.info_at(run_path)), model)


run = common.selected_run()
models = common.require_models(run)
st.title("Embeddings")
st.caption(common.run_caption(run))
available = [m for m in models if run_embeddings.has_embeddings(run, m)]
compute_panel.require_embeddings(run, available, what="this page draws", what_to_run=WHAT_TO_RUN, key="emb_compute")

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
    color_by = c2.selectbox("Colour by", figures_embeddings.COLOR_BY, key="emb_color",
                            help=f"predicted/correct use the model's own head at its threshold ({threshold:.2f}).")
    splits = c3.multiselect("Images", list(SPLIT_LABELS), default=["test"], key="emb_splits",
                            format_func=SPLIT_LABELS.get)
    df = _filtered(splits)
    fig = figures_embeddings.embedding_scatter_figure(df, PROJECTIONS[proj], color_by, threshold,
                                           title=f"{model} · {proj} 3-D · {len(df):,} images",
                                           uirevision=f"{run.run_id}/{model}/{proj}")
    st.plotly_chart(fig, key="emb_3d", width="stretch")
    st.caption("How to read this: each dot is one face, placed so that faces the model represents alike sit close "
               "together; if the colours form separate clouds, the model tells real from fake. Drag to rotate, scroll "
               "to zoom, click a legend entry to hide a group; hover a dot to name it. To open a face, click it in "
               "the 2-D map (the other tab).")


def _open(row: int) -> None:
    st.session_state[PICK_KEY] = row


def _selected_rows(event, df: pd.DataFrame) -> list[int]:
    """Row positions in ``df`` of the points selected in a plotly chart event (click, box or lasso)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    rows = []
    for pt in points:
        cd = pt.get("customdata")
        idx = cd[0] if isinstance(cd, (list, tuple)) else cd
        if isinstance(idx, (int, float)) and 0 <= int(idx) < len(df):
            rows.append(int(idx))
    return rows


@st.fragment
def explorer_2d() -> None:
    c1, c2, c3 = st.columns([1, 1, 2])
    proj = c1.radio("2-D projection", projection_options, key="emb_projection_2d", horizontal=True)
    color_by = c2.selectbox("Colour by ", figures_embeddings.COLOR_BY, key="emb_color_2d")
    splits = c3.multiselect("Images ", list(SPLIT_LABELS), default=["test"], key="emb_splits_2d",
                            format_func=SPLIT_LABELS.get)
    # "row" = the image's position in the run's manifest (= in the embedding arrays)
    df = _filtered(splits).rename_axis("row").reset_index()
    fig = figures_embeddings.embedding_scatter_figure(df, PROJECTIONS_2D[proj], color_by, threshold,
                                           title=f"{model} · {proj} 2-D", uirevision=f"{run.run_id}/{model}/{proj}/2d")
    event = st.plotly_chart(fig, key="emb_2d", width="stretch", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    rows = _selected_rows(event, df)
    if not rows and PICK_KEY not in st.session_state:
        st.caption("How to read this: each dot is one face, placed so that faces the model represents alike sit "
                   "close together. Click a dot to open it (the box and lasso in the chart's toolbar select several): the face, every model's score, "
                   "where the model looked and its nearest neighbours.")
        return
    if rows:
        if len(rows) > 1:
            st.markdown(f"**{len(rows)} image(s) selected**" + (" · showing the first 8" if len(rows) > 8 else "")
                        + " · press *Open* under a face to explore it")
            cols = st.columns(4)
            for i, r in enumerate(rows[:8]):
                row = df.iloc[r]
                img = common.load_thumbnail(str(row["path"]), 200)
                col = cols[i % 4]
                if img is None:
                    col.warning(f"{row['relpath']} is missing or unreadable")
                else:
                    col.image(img, width="stretch")
                p = row.get("p_fake")
                col.caption(f"{Path(str(row['relpath'])).name} · **{row['label']}** · {row['dataset']} · "
                            f"P(fake) {'?' if pd.isna(p) else f'{p:.3f}'}")
                col.button("Open", key=f"emb_open_{int(row['row'])}", on_click=_open, args=(int(row["row"]),))
        elif st.session_state.get(PICK_SOURCE_KEY) != (model, int(df.iloc[rows[0]]["row"])):
            st.session_state[PICK_KEY] = int(df.iloc[rows[0]]["row"])
            st.session_state[PICK_SOURCE_KEY] = (model, st.session_state[PICK_KEY])
    if PICK_KEY in st.session_state:
        image_details(int(st.session_state[PICK_KEY]), splits)


def image_details(row: int, splits: list[str]) -> None:
    """The picked image: the face, every model's score, where the model looked, its nearest neighbours."""
    from pipeline import correlation, figures_explore, neighbours

    if not 0 <= row < len(table):
        st.session_state.pop(PICK_KEY, None)
        return
    item = table.iloc[row]
    st.markdown(f"#### {item['dataset']} · `{item['relpath']}` · {SPLIT_LABELS.get(item['split'], item['split'])} "
                f"· label **{item['label']}**")
    try:
        rgb = images.load_rgb(str(item["path"]))
    except (images.ImageError, OSError) as exc:
        st.warning(f"{item['relpath']} cannot be read ({exc}); was the data moved?")
        return
    left, mid, right = st.columns([1, 2, 1])
    left.image(rgb, caption=f"{rgb.shape[1]}×{rgb.shape[0]} px", width="stretch")
    names = common.require_models(run)
    preds = {m: common.predictions(run, m) for m in names}
    thresholds = {m: float(common.metrics(run, m).get("threshold", 0.5) or 0.5) for m in names}
    scores = correlation.stored_scores(preds, thresholds, str(item["path"]))
    with mid:
        if scores:
            st.plotly_chart(figures.probability_bars_figure(scores, figures.model_colors(names),
                                                            title="Every model's P(fake) for this face"),
                            width="stretch", key="emb_pick_scores")
            st.caption("How to read this: a bar past its model's tick calls the face fake. Scores are the ones "
                       "stored for the test and validation images.")
        else:
            st.info("A training image: the run stores model scores for validation and test images only "
                    "(the models learned from this one).")
    with right:
        keras_names = common.keras_model_names(run)
        cam_model = model if model in keras_names else (keras_names[0] if keras_names else None)
        if cam_model is None:
            st.caption("No Keras model in this run to draw a Grad-CAM with.")
        elif st.toggle("Grad-CAM", value=False, key="emb_pick_cam",
                       help=f"Where {cam_model} looked: loads the model and computes its Grad-CAM (a few seconds "
                            "the first time)."):
            from pipeline import explain

            loaded = common.run_models(run, [cam_model])[cam_model]
            exp = explain.heatmap(loaded.model, rgb, "gradcam")
            st.image(explain.overlay(rgb, exp.heatmap, 0.45), width="stretch",
                     caption=f"{exp.label} · {cam_model}: red = what raised P(fake) most")
            if exp.note:
                st.caption(exp.note)
    k = st.slider("Nearest neighbours", 3, 16, 8, key="emb_k",
                  help=f"The faces closest to this one in {model}'s embedding (cosine distance between the PCA "
                       "scores), among the images shown above.")
    Z = common.guarded(_pca_scores, str(run.path), model, _mtime(run, model, "pca.npz"))
    pool = table["split"].isin(splits).to_numpy() if splits else None
    nn = neighbours.nearest(Z, row, k=k, candidates=pool)
    if nn.empty:
        st.caption("No other image to compare with.")
        return
    cols = st.columns(min(8, len(nn)))
    for i, r in enumerate(nn.itertuples()):
        other = table.iloc[int(r.row)]
        col = cols[i % len(cols)]
        img = common.load_thumbnail(str(other["path"]), 160)
        if img is not None:
            col.image(img, width="stretch")
        col.caption(f"{other['dataset']} · **{other['label']}** · {SPLIT_LABELS.get(other['split'], other['split'])}"
                    f" · similarity {r.similarity:.3f}")
        col.button("Open", key=f"emb_nn_{int(r.row)}", on_click=_open, args=(int(r.row),))
    same = float((table.iloc[nn["row"].to_numpy()]["label"] == item["label"]).mean())
    st.caption(f"How to read this: {same:.0%} of its {len(nn)} nearest neighbours share its label "
               f"({item['label']}). Near neighbours of the other label are the faces the model confuses it with; "
               "a neighbour from another split that looks identical is a possible leak (see the Leakage page).")
    with st.expander("Neighbour similarities"):
        labels = [f"{table.iloc[int(r)]['dataset']} · {Path(str(table.iloc[int(r)]['relpath'])).name}" for r in nn["row"]]
        st.plotly_chart(figures_explore.neighbour_distance_figure(nn, labels), width="stretch", key="emb_nn_fig")


# Only the open view is computed and drawn (lazy tabs): the 3-D chart needs WebGL, which costs a
# browser without a GPU about 2 s to draw (BENCHMARKS.md, "Third pass"); the 2-D map opens faces.
tab_2d, tab_3d = st.tabs(VIEWS, key=VIEW_KEY, on_change="rerun")
if tab_2d.open:
    with tab_2d:
        explorer_2d()
if tab_3d.open:
    with tab_3d:
        explorer_3d()

st.subheader("Do real and fake cluster?")
c1, c2 = st.columns([3, 2], gap="large")
variance = common.guarded(run_embeddings.explained_variance, run, model)
c1.plotly_chart(figures_embeddings.explained_variance_figure(variance, title=f"{model}: explained variance of the PCA"),
                key="emb_variance", width="stretch")
c1.caption("How to read this: how much of the differences between faces each principal component carries (bars) "
           "and the first components together (line). If the first 3 carry little, the 3-D view shows only a "
           "small part of what the model sees.")
sep = common.guarded(_separability, str(run.path), model, _mtime(run, model, "separability.json"))
c2.markdown("**Separability on the test split** (classifiers fitted on train)")
c2.dataframe(sep, hide_index=True, width="stretch", key="emb_separability",
             column_config={"accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
                            "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
                            "space": "Space", "dims": "Dims", "classifier": "Classifier"})
c2.caption("A high score in 2-D or 3-D means the classes form separate clusters you can see; a score that "
           "only appears in the full PCA space means they separate, but not in a view you can draw. "
           "Try the SVM lab for kernels on the same components.")

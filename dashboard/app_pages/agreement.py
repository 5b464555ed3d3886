"""Do the detectors agree? Spearman correlation of the models' test scores and the images they disagree
on most (pipeline.correlation; stored predictions only, nothing is re-scored)."""
from __future__ import annotations

import streamlit as st

from dashboard import common
from pipeline import correlation, figures, figures_explore

run = common.selected_run()
models = common.require_models(run)
st.title("Do the detectors agree?")
st.caption(common.run_caption(run))

datasets = ["all"] + sorted(common.manifest(run)["dataset"].astype(str).unique())
scope = st.selectbox("Test images of", datasets, key="agree_scope",
                     format_func=lambda d: "all data sets" if d == "all" else d)
preds = {m: common.predictions(run, m) for m in models}
if scope != "all":
    preds = {m: df[df["dataset"].astype(str) == scope] for m, df in preds.items()}
try:
    table = correlation.score_table(preds)
except ValueError as exc:
    common.stop_with(f"Nothing to compare: {exc}.", "info")
names = correlation.model_columns(table)
corr = correlation.score_correlation(table, names)
st.caption(f"{len(table):,} test images scored by all {len(names)} models"
           + ("" if scope == "all" else f" (data set {scope})") + ".")

st.plotly_chart(figures_explore.correlation_figure(corr), width="stretch", key="agree_corr")
st.markdown("**How to read this**: each cell compares how two models *rank* the test images (Spearman correlation). "
            "**1** = the same order, **0** = unrelated, **below 0** = opposite. Two models near 1 add little to each "
            "other in an ensemble; low values mean each sees something different, or one is guessing.")
pairs = [p for p in (correlation.most_alike(corr), correlation.least_alike(corr)) if p]
if pairs:
    st.markdown(" · ".join(f"{what}: **{a}** and **{b}** ({v:.2f})"
                           for what, (a, b, v) in zip(("Most alike", "Least alike"), pairs)))

st.subheader("The images they disagree on most")
top = st.slider("Images", 4, 24, 8, 4, key="agree_top")
rows = correlation.disagreements(table, names, top=top)
st.caption("How to read this: each model's scores are turned into ranks among these test images (0 = the most "
           "real-looking to that model, 1 = the most fake-looking); *disagreement* is the largest minus the smallest "
           "rank. 0.9 means one model puts the face among its most fake tenth, another among its most real tenth.")
st.plotly_chart(figures_explore.disagreement_figure(rows, names, figures.model_colors(names)), width="stretch",
                key="agree_dots")
for start in range(0, len(rows), 4):
    cols = st.columns(4)
    for col, row in zip(cols, rows.iloc[start:start + 4].itertuples()):
        with col:
            img = common.load_thumbnail(str(row.path), 200)
            if img is not None:
                st.image(img, width="stretch")
            st.caption(f"{row.dataset} · `{row.relpath}` · label **{row.label}**  \n"
                       f"disagreement {row.disagreement:.2f}: most fake to **{row.most_fake}**, most real to "
                       f"**{row.most_real}**")
st.dataframe(rows.drop(columns=["path"]), hide_index=True, width="stretch", key="agree_table",
             column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in [*names, "disagreement"]})

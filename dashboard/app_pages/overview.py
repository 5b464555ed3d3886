"""Overview: what data the selected run was trained and tested on, and whether its files give the label away."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import audit_panel, common, progress_panel
from pipeline import figures
from pipeline.results import LABELS, SPLITS

SEED_KEY = "overview_sample_seed"
SECTION_KEY = "overview_section"  # the open tab: shortcut audit or sample images
PER_ROW = 8

run = common.selected_run()
st.title("Overview")
st.caption(common.run_caption(run))
progress_panel.show()  # a training running in the background (scripts/run.sh): its progress bar

man = common.manifest(run)
counts = common.counts(run)
skipped = common.skipped(run)

if man.empty:
    common.stop_with(f"Run `{run.run_id}` has no usable image in its manifest. Check the data folders in its "
                     f"config and the skipped files, then rebuild with `python -m pipeline train`.", "warning")

# --------------------------------------------------------------------------- headline numbers
n_total = len(man)
n_fake = int((man["label"] == "fake").sum())
c1, c2, c3, c4 = st.columns(4)
c1.metric("Usable images", f"{n_total:,}")
c2.metric("Datasets", man["dataset"].nunique())
c3.metric("Fake share", f"{n_fake / n_total:.1%}", help="Share of images labelled fake, all datasets and splits.")
c4.metric("Skipped files", f"{len(skipped):,}", help="Files found in the data folders that could not be used.")

# --------------------------------------------------------------------------- counts
st.subheader("Images per dataset, split and class")
split_order = [s for s in SPLITS if s in set(counts["split"])] + sorted(set(counts["split"]) - set(SPLITS))
label_order = [lab for lab in LABELS if lab in set(counts["label"])] + sorted(set(counts["label"]) - set(LABELS))
pivot = counts.pivot_table(index="dataset", columns=["split", "label"], values="n", aggfunc="sum", fill_value=0)
pivot = pivot.reindex(columns=pd.MultiIndex.from_product([split_order, label_order]), fill_value=0)
pivot.columns = [f"{s} · {lab}" for s, lab in pivot.columns]
pivot["total"] = pivot.sum(axis=1)
pivot.loc["all datasets"] = pivot.sum(axis=0)
pivot = pivot.astype("int64")

st.dataframe(pivot, width="stretch", column_config={"_index": st.column_config.TextColumn("dataset")})
left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown("**Class balance**")
    bal = (counts.pivot_table(index="dataset", columns="label", values="n", aggfunc="sum", fill_value=0)
           .reindex(columns=label_order, fill_value=0))
    bal.loc["all datasets"] = bal.sum(axis=0)
    bal["total"] = bal.sum(axis=1)
    bal["fake share"] = bal.get("fake", 0) / bal["total"].where(bal["total"] > 0)
    st.dataframe(bal.reset_index(), hide_index=True, width="stretch", column_config={
        "dataset": st.column_config.TextColumn("dataset"),
        "fake share": st.column_config.ProgressColumn("fake share", format="percent", min_value=0.0, max_value=1.0,
                                                      help="Fakes / all images of the dataset (0.5 = balanced)."),
    })
    test = counts[counts["split"] == "test"]
    if not test.empty:
        st.caption(f"Test split: {int(test['n'].sum()):,} images. Every metric on *Compare models* is computed on "
                   "it, pooled (*all*) and per dataset.")
with right:
    st.plotly_chart(figures.counts_figure(counts), key="overview_counts", width="stretch")
    st.caption("How to read this: for each data set, how many images each split holds, real and fake side by "
               "side. Bars of equal height mean balanced classes, so 50% accuracy is a coin toss.")

# --------------------------------------------------------------------------- skipped
st.subheader("Skipped files")
if skipped.empty:
    st.success("No file was skipped: every image found in the data folders is used.", icon=":material/check:")
else:
    reasons = skipped.groupby("reason").size().rename("files").sort_values(ascending=False).reset_index()
    st.markdown(f"**{len(skipped):,}** file(s) could not be used. Most common reasons:")
    st.dataframe(reasons.head(5), hide_index=True, width="content")
    with st.expander(f"All {len(skipped):,} skipped files"):
        from pipeline import display

        st.dataframe(skipped.assign(path=display.relative_paths(skipped["path"], display.data_roots(run.config))),
                     hide_index=True, width="stretch",
                     column_config={"path": st.column_config.TextColumn("path (in its data folder)", width="large")})


# --------------------------------------------------------------------------- audit and samples: lazy tabs
def _shuffle() -> None:  # a callback, so the click survives a rerun
    st.session_state[SEED_KEY] = int(st.session_state.get(SEED_KEY, 0)) + 1


def _samples() -> None:
    """A few images of each class of one dataset and split, redrawn with *Shuffle*."""
    if SEED_KEY not in st.session_state:
        st.session_state[SEED_KEY] = 0
    datasets = sorted(man["dataset"].astype(str).unique())
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    dataset = c1.selectbox("Dataset", datasets, key="overview_dataset")
    split = c2.selectbox("Split", ["any", *split_order], key="overview_split")
    per_class = c3.slider("Images per class", 2, 16, 8, step=2, key="overview_per_class")
    c4.button("Shuffle", icon=":material/shuffle:", help="Draw other images", key="overview_shuffle", on_click=_shuffle)
    seed = int(st.session_state[SEED_KEY])

    pool = man[man["dataset"] == dataset]
    if split != "any":
        pool = pool[pool["split"] == split]
    for label in label_order:
        sub = pool[pool["label"] == label]
        st.markdown(f"**{label}** · {len(sub):,} images")
        if sub.empty:
            st.caption("none in this selection")
            continue
        sample = sub.sample(n=min(per_class, len(sub)), random_state=np.random.RandomState(seed))
        common.thumbnail_grid([(str(row.path), f"{Path(str(row.relpath or row.path)).name} · {row.split}")
                               for row in sample.itertuples(index=False)], PER_ROW)
    st.caption("Images are shown as stored on disk; models see them resized to their input size. "
               "File names can give the label away: models never see them.")


# Only the open tab is computed and drawn (st.tabs with on_change="rerun"): Overview is the first page a
# session opens, and every chart, table and thumbnail below the first screen cost its first visit time
# in the browser (BENCHMARKS.md, "Third pass").
SECTIONS = {"File shortcut audit": lambda: audit_panel.render_audit(run), "Sample images": _samples}
for tab, section in zip(st.tabs(list(SECTIONS), key=SECTION_KEY, on_change="rerun"), SECTIONS.values()):
    if tab.open:
        with tab:
            section()

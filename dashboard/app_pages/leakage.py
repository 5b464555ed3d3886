"""Leakage check: near-duplicate images on both sides of the split (pipeline.leakage: perceptual hash)."""
from __future__ import annotations

import streamlit as st

from dashboard import common
from pipeline import figures_explore, leakage

PAIRS_SHOWN = 24


@st.cache_resource(show_spinner=False, max_entries=4)
def _hash_store(run_path: str, manifest_mtime: float) -> dict:
    """Process-wide store of a run's perceptual hashes (8 bytes per image), filled by the button below."""
    return {}


run = common.selected_run()
st.title("Leakage check")
st.caption(common.run_caption(run))
st.markdown("Is a test image really new to the models? The run keeps identical files once and keeps the frames of a "
            "video on one side of the split, but a **re-saved, resized or slightly cropped copy** of a training "
            "picture in the test split still lets a detector score well by remembering it. This check compares every "
            "validation and test image with every training image by a *perceptual hash* (a 64-bit fingerprint of the "
            "picture's coarse look: copies differ in a few bits, different faces in about 32).")

manifest = common.manifest(run)
store = _hash_store(str(run.path), run.file_mtime("manifest.parquet"))
max_distance = st.slider("Near-duplicate when the fingerprints differ in at most … bits (of 64)", 0, 12,
                         leakage.DEFAULT_MAX_DISTANCE, key="leak_distance",
                         help="0 = the same fingerprint; 4 is the usual choice for 'the same picture'; above about 10, "
                              "different faces with the same pose and lighting start to match.")
if "hashes" not in store:
    intro = st.empty()
    with intro.container():
        st.info(f"Fingerprinting the run's {len(manifest):,} images takes about "
                f"{max(1, round(len(manifest) * 1.5 / 1000))} s on this machine; it is done once per server.",
                icon=":material/fingerprint:")
        clicked = st.button("Find near-duplicates", key="leak_run", type="primary", icon=":material/search:")
    if not clicked:
        st.stop()
    intro.empty()
    bar = st.progress(0.0, text="Fingerprinting images…")
    store["hashes"] = leakage.perceptual_hashes(
        manifest["path"].astype(str).tolist(),
        progress=lambda done, total: bar.progress(done / total, text=f"Fingerprinted {done:,} of {total:,} images"))
    bar.empty()

hashes = store["hashes"]
unreadable = int((~hashes.ok).sum())
pairs = leakage.cross_split_pairs(hashes, manifest["split"].astype(str).tolist(), max_distance)
counts = leakage.counts_per_dataset(pairs, manifest)
table = leakage.pairs_table(pairs, manifest)

n_test = int(counts["test images"].sum())
n_leaked = int(counts["test with a training near-duplicate"].sum())
c1, c2, c3 = st.columns(3)
c1.metric("Test images with a training near-duplicate", f"{n_leaked:,} of {n_test:,}")
c2.metric("Validation images with one", f"{int(counts['validation with a training near-duplicate'].sum()):,} of "
                                        f"{int(counts['validation images'].sum()):,}")
c3.metric("Cross-split pairs", f"{len(pairs):,}")
if unreadable:
    st.warning(f"{unreadable} image(s) could not be read and were left out of the check.")
if n_leaked == 0:
    st.success("No test image has a near-duplicate in training at this setting: the test scores are not "
               "inflated by copies.", icon=":material/check_circle:")
else:
    st.warning(f"{n_leaked} test image(s) have a near-copy in training. Their scores may be too good; look at the "
               "pairs below (some may be different faces that merely look alike: raise the bar by lowering the "
               "slider).", icon=":material/content_copy:")

left, right = st.columns([3, 2], gap="large")
left.plotly_chart(figures_explore.leakage_counts_figure(counts), width="stretch", key="leak_counts_fig")
left.caption("How to read this: the height is the share of a data set's test images that have a near-copy in its "
             "or another data set's training split; the label gives the count. 0 everywhere is what you want.")
right.dataframe(counts, hide_index=True, width="stretch", key="leak_counts",
                column_config={"dataset": "data set", "test images": "test",
                               "test with a training near-duplicate": st.column_config.NumberColumn(
                                   "copied", help="Test images with a near-duplicate in training"),
                               "share of test": st.column_config.NumberColumn("share", format="percent"),
                               "validation images": "validation",
                               "validation with a training near-duplicate": st.column_config.NumberColumn(
                                   "val. copied", help="Validation images with a near-duplicate in training")})

st.subheader("The pairs")
if pairs.empty:
    st.caption("No pair of images across the splits is this alike.")
    st.stop()
datasets = sorted(table["dataset_a"].astype(str).unique())
c1, c2 = st.columns(2)
chosen = c1.multiselect("Data set of the test / validation image", datasets, default=datasets, key="leak_datasets")
which = c2.radio("Pairs", ["test vs training", "validation vs training", "test vs validation"], horizontal=True,
                 key="leak_which")
a, b = {"test vs training": ("test", "train"), "validation vs training": ("val", "train"),
        "test vs validation": ("test", "val")}[which]
shown = table[(table["split_a"] == a) & (table["split_b"] == b) & table["dataset_a"].astype(str).isin(chosen)]
st.caption(f"{len(shown):,} pair(s), most alike first" + (f"; the first {PAIRS_SHOWN} shown" if len(shown) > PAIRS_SHOWN
                                                          else "") + ". Paths are relative to each data set's folder.")
for start in range(0, min(len(shown), PAIRS_SHOWN), 4):
    cols = st.columns(4)
    for col, row in zip(cols, shown.iloc[start:start + 4].itertuples()):
        with col.container(border=True):
            t1, t2 = st.columns(2)
            for t, side, split_name in ((t1, "a", a), (t2, "b", b)):
                img = common.load_thumbnail(str(getattr(row, f"path_{side}")), 140)
                if img is not None:
                    t.image(img, width="stretch")
                t.caption(f"{split_name} · {getattr(row, f'dataset_{side}')} · **{getattr(row, f'label_{side}')}**  \n"
                          f"`{getattr(row, f'relpath_{side}')}`")
            st.caption(f"{row.distance} bit(s) apart" + ("" if row.same_label else " · :orange[labels differ]"))
st.download_button("Download the pairs (CSV)",
                   shown.drop(columns=["path_a", "path_b"]).to_csv(index=False).encode(),
                   file_name="near_duplicates.csv", mime="text/csv", icon=":material/download:", key="leak_csv")

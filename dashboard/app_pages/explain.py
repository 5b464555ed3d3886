"""Explain: what each model looks at, for one image of the test set or an upload."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from dashboard import common
from pipeline import checking, detectors, explain, explain_lime, figures, image_formats, images

OUTCOMES = ["all", "correct", "wrong", "most confident mistakes"]
MAX_OPTIONS = 500
LIME_KEY = "explain_lime_results"
LIME_KEEP = 4  # LIME results a session keeps (the run folder's cache keeps them all on disk)

def _stored_scores(run, names: list[str], path: str) -> list[dict] | None:
    """One record per model (model, p_fake, threshold, verdict) from the run's stored test predictions
    of the image at ``path``; None when a model has no row for it."""
    out = []
    for name in names:
        preds = common.predictions(run, name)
        hit = preds.loc[(preds["split"] == "test") & (preds["path"].astype(str) == path), "p_fake"]
        if hit.empty:
            return None
        p, threshold = float(hit.iloc[0]), float(common.metrics(run, name)["threshold"])
        out.append({"model": name, "p_fake": round(p, 6), "threshold": round(threshold, 6),
                    "verdict": detectors.verdict(p, threshold)})
    return out


run = common.selected_run()
st.title("Explain")
st.caption(common.run_caption(run))
common.require_models(run)
model_names = common.keras_model_names(run)
if not model_names:
    common.stop_with(f"Run `{run.run_id}` has no finished Keras model to score images with yet.", "info")
summary = common.summary(run)
best = checking.best_model(summary, model_names)

# --------------------------------------------------------------------------- pick an image
source = st.radio("Image", ["From the test set", "Upload"], horizontal=True, key="explain_source")
rgb, image_name, truth = None, None, None
if source == "Upload":
    up = st.file_uploader("Photo", type=image_formats.UPLOAD_TYPES, key="explain_upload",
                          help=f"Up to {common.upload_limit_mb()} MB. Use a tight face crop: the models were trained "
                               "on those (the *Check an image* page crops faces for you).")
    if up is None:
        common.stop_with("Upload a photo to explain.")
    try:
        rgb = images.load_rgb(up.getvalue(), name=up.name)
    except images.ImageError as exc:
        common.stop_with(str(exc), "error")
    image_name = up.name
else:
    c1, c2, c3, c4 = st.columns(4)
    all_models = common.require_models(run)
    ref = c1.selectbox("Correct / wrong according to", all_models, index=all_models.index(best),
                       key="explain_ref", help="The model whose test predictions the filters use.")
    preds = common.predictions(run, ref)
    test = preds[preds["split"] == "test"].copy()
    if test.empty:
        common.stop_with(f"{ref} has no test predictions in this run.", "warning")
    threshold = float(common.metrics(run, ref)["threshold"])
    test["pred"] = np.where(test["p_fake"] >= threshold, "fake", "real")
    test["correct"] = test["pred"] == test["label"]
    test["margin"] = (test["p_fake"] - threshold).abs()
    datasets = sorted(test["dataset"].astype(str).unique())
    chosen = c2.multiselect("Dataset", datasets, default=datasets, key="explain_datasets")
    label = c3.selectbox("Label", ["any", "real", "fake"], key="explain_label")
    outcome = c4.selectbox("Outcome", OUTCOMES, key="explain_outcome",
                           help="'most confident mistakes': wrong predictions, furthest from the threshold first.")
    pool = test[test["dataset"].astype(str).isin(chosen)]
    if label != "any":
        pool = pool[pool["label"] == label]
    if outcome == "correct":
        pool = pool[pool["correct"]]
    elif outcome == "wrong":
        pool = pool[~pool["correct"]]
    elif outcome == "most confident mistakes":
        pool = pool[~pool["correct"]].sort_values("margin", ascending=False)
    if pool.empty:
        common.stop_with("No test image matches these filters.")
    pool = pool.head(MAX_OPTIONS).reset_index(drop=True)
    st.caption(f"{len(pool):,} image(s) match" + (f" (first {MAX_OPTIONS} listed)" if len(pool) == MAX_OPTIONS else ""))
    pick = st.selectbox(
        "Test image", range(len(pool)), key="explain_pick",
        format_func=lambda i: (f"{pool.at[i, 'dataset']} · {pool.at[i, 'relpath']} · label {pool.at[i, 'label']} · "
                               f"p {pool.at[i, 'p_fake']:.3f} ({'correct' if pool.at[i, 'correct'] else 'wrong'})"))
    row = pool.iloc[int(pick or 0)]
    try:
        rgb = images.load_rgb(str(row["path"]))
    except images.ImageError as exc:
        common.stop_with(str(exc), "error")
    except OSError as exc:
        common.stop_with(f"{row['path']} cannot be read ({exc}); was the data moved?", "warning")
    image_name, truth = str(row["relpath"]), str(row["label"])

sha = explain.image_sha256(rgb)
stored = _stored_scores(run, model_names, str(row["path"])) if truth is not None else None
if stored is None:  # an upload (or a test image a model has no row for): score it with every model
    scores = detectors.score_records([rgb], common.run_models(run, model_names))[0]
else:  # the test set's stored predictions: the same numbers, without loading a model
    scores = stored
ens = checking.ensemble(scores)

left, right = st.columns([1, 2])
with left:
    h, w = rgb.shape[:2]
    st.image(rgb, caption=f"{image_name} · {w}×{h} px" + (f" · label **{truth}**" if truth else ""), width="stretch")
with right:
    st.plotly_chart(figures.probability_bars_figure(scores, figures.model_colors(model_names), ens),
                    width="stretch", key="explain_bars")
    st.caption("How to read this: one bar per model, its probability that the face is fake; the black tick is where "
               "that model starts calling a face fake (its own cut-off, chosen on the validation split).")

# --------------------------------------------------------------------------- gradient maps
st.subheader("Where each model looks")
c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
target = c1.radio("Explain the score of", ["fake", "real"], horizontal=True, key="explain_target",
                  help="fake: what raises P(fake); real: what raises P(real) = 1 - P(fake).")
alpha = c2.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="explain_alpha")
legend = explain.colorize(np.repeat(np.linspace(0, 1, 256)[None, :], 12, axis=0))
st.image(legend, caption="colour: blue = little influence → red = strongest influence on the score (each map "
                         "scaled to its own range)", width=320)


# Every map of every model in one cached call per (image, target); maps are kept at display size
# (long side <= 640 px) and for at most 16 images for 30 minutes, so explanations do not pile up.
@st.cache_data(show_spinner="Computing the gradient maps…", max_entries=16, ttl=1800)
def _gradient_maps(run_path: str, names: tuple[str, ...], stamp: str, sha: str, tgt: str, out_hw: tuple[int, int],
                   _rgb, _models) -> tuple[dict, float]:
    t0 = time.perf_counter()
    maps = explain.explain_all(_models, _rgb, tgt, out_hw=out_hw)
    return ({name: {method: (e.heatmap, e.method, e.note) if isinstance(e, explain.Explanation) else str(e)
                    for method, e in per.items()} for name, per in maps.items()}, time.perf_counter() - t0)


disp_hw = explain.display_size(rgb.shape[:2])
disp = explain.display_image(rgb, disp_hw)
map_models = st.multiselect("Maps of", model_names, default=[best], key="explain_map_models",
                            help="Each model's three maps cost 0.02-0.4 s on this server (the first time a model is "
                                 "explained, its explainer is built too); add the others to compare where they look.")
map_models = [m for m in model_names if m in map_models]  # the run's order
models = common.run_models(run, map_models) if map_models else {}
grad_maps, grad_seconds = _gradient_maps(str(run.path), tuple(map_models), common.models_stamp(run, map_models),
                                         sha, target,
                                         disp_hw, rgb, {n: models[n].model for n in map_models})
cols = st.columns(max(len(map_models), 4))  # a lone model does not fill the page
for col, name in zip(cols, map_models):
    with col:
        st.markdown(f"**{name}**" + (" (best)" if name == best else ""))
        for method in explain.METHODS:
            got = grad_maps[name][method]
            if isinstance(got, str):  # one model's failure must not hide the others
                st.warning(f"{explain.METHOD_LABELS[method]} failed for {name}: {got}")
                continue
            heat, used, note = got
            st.image(explain.overlay(disp, heat, alpha), caption=explain.METHOD_LABELS[used], width="stretch")
            if note:
                st.caption(note)
st.caption(f"{len(map_models) * len(explain.METHODS)} maps computed in {grad_seconds:.1f} s on this server "
           "(kept for this image for 30 minutes).")

# --------------------------------------------------------------------------- LIME
st.subheader("LIME")
st.caption("LIME splits the image into superpixels (SLIC), hides random subsets and fits a linear model to the "
           "detector's answers: red segments push toward fake, blue toward real. Results are cached in the run "
           "folder (`explanations/`).")
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
lime_model = c1.selectbox("Model", model_names, index=model_names.index(best), key="explain_lime_model")


samples = int(c2.number_input(
    "Samples (0 = automatic)", 0, 5000, 0, 50, key="explain_lime_samples",
    help=f"0: as many as {lime_model} scores in about {explain_lime.LIME_BUDGET_SECONDS:.0f} s on this server now (timed "
         f"when you press Run: at least {explain_lime.LIME_MIN_SAMPLES}, at most {explain_lime.LIME_DEFAULT_SAMPLES}). More "
         "samples, a steadier explanation."))
store = st.session_state.setdefault(LIME_KEY, {})
key = (str(run.path), lime_model, sha, samples)
if c3.button("Run LIME", icon=":material/play_arrow:", key="explain_lime_run"):
    bar = st.progress(0.0, text="LIME…")

    def _progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{stage}: {done}/{total} samples")

    try:
        while len(store) >= LIME_KEEP:  # a session keeps its last few LIME results only
            store.pop(next(iter(store)))
        lime_keras = common.run_models(run, [lime_model])[lime_model].model
        n = samples or explain_lime.lime_sample_budget(lime_keras)[0]
        store[key] = explain_lime.lime_explain(lime_keras, rgb, num_samples=n, run_dir=run.path,
                                          model_name=lime_model, progress=_progress)
    except Exception as exc:  # noqa: BLE001
        st.error(f"LIME failed for {lime_model}: {exc}")
    bar.empty()
res = store.get(key)
if res is None:
    st.info("Press **Run LIME**: " + (f"about {explain_lime.LIME_BUDGET_SECONDS:.0f} s on this server (the number of "
                                      "samples is chosen from the model's speed, timed when you press the button)"
                                      if not samples else f"{samples} samples") + "; the time it took is shown below.")
else:
    a, b = st.columns(2)
    a.plotly_chart(figures.image_figure(
        explain.overlay(rgb, res.heatmap, 0.6, signed=True), title=f"LIME weights · {lime_model}",
        colorscale=explain.plotly_colorscale(explain.SIGNED_CMAP), cmin=-1, cmax=1,
        tick_labels=explain.colorbar_labels(signed=True), height=360), width="stretch", key="explain_lime_fig")
    b.image(explain_lime.lime_boundaries(rgb, res, top=5), width="stretch",
            caption="Top 5 segments toward fake (red outline) and toward real (blue outline)")
    st.caption(f"{len(res.weights)} segments · {res.num_samples} samples · local fit R² {res.score:.2f} · "
               + ("from the cache" if res.cached else f"took {res.seconds:.1f} s"))

# --------------------------------------------------------------------------- feature maps
st.subheader("Feature maps")
# lazy (on_change="rerun"): the layer model and its activations are computed only once the user opens it
fm_panel = st.expander("What one layer of a model computes: its most active channels", key="explain_fm_open",
                       on_change="rerun", icon=":material/grid_view:")
if fm_panel.open:
    with fm_panel:
        c1, c2, c3 = st.columns(3)
        fm_model = c1.selectbox("Model", model_names, index=model_names.index(best), key="explain_fm_model")
        fm_keras = common.run_models(run, [fm_model])[fm_model].model
        layers = explain.conv_layers(fm_keras)
        if not layers:
            st.info(f"{fm_model} has no convolutional layer.")
        else:
            layer = c2.selectbox("Layer", layers, index=len(layers) - 1, key="explain_fm_layer",
                                 help="Convolutional layers (and the activations after them), input side first.")
            n_ch = c3.slider("Channels", 4, 64, 32, 4, key="explain_fm_channels")
            try:
                maps, order = explain.feature_maps(fm_keras, rgb, layer, max_channels=n_ch)
                cell = max(24, min(96, 768 // 8))
                st.image(explain.feature_grid(maps, cols=8, cell=cell), width="stretch",
                         caption=f"{len(maps)} most active channels of `{layer}` ({maps.shape[1]}×{maps.shape[2]} each), "
                                 "each scaled to its own range (dark = low, yellow = high)")
            except Exception as exc:  # noqa: BLE001
                st.warning(f"Feature maps of {layer} could not be computed: {exc}")

"""Check an image: upload photos, crop their faces, score each face with every model of the run and
give the run's verdict (its combined model, when it has one: see pipeline.checking)."""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # when Streamlit runs this page without dashboard/app.py (see ensure_app_shell)
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import common, figures  # noqa: E402
from pipeline import checking  # noqa: E402

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
TABLE_FROM = 2  # show the results table from this many files on

common.ensure_app_shell()
run = common.selected_run()
st.title("Check an image")
st.caption(common.run_caption(run))
common.require_models(run)
model_names = common.keras_model_names(run)
if not model_names:
    common.stop_with(f"Run `{run.run_id}` has no finished Keras model to score images with yet.", "info")

limit = common.upload_limit_mb()
files = st.file_uploader(
    "Photos to check", type=UPLOAD_TYPES, accept_multiple_files=True, key="check_files",
    help=f"JPEG, PNG, WebP or BMP, up to {limit} MB each (server.maxUploadSize in .streamlit/config.toml). "
         "Files are decoded safely: a damaged or non-image file gets its own message.")
c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")
crop_faces = c1.toggle("Crop faces", value=True, key="check_crop",
                       help="Detect faces (MTCNN) and score each face crop (20% margin, squared). The detectors "
                            "were trained on tight face crops: leave this on for ordinary photos.")
whole = c2.checkbox("No face found: score the whole image", value=True, key="check_whole", disabled=not crop_faces)
min_conf = c3.slider("Face detector confidence", 0.5, 0.99, 0.9, 0.01, key="check_conf", disabled=not crop_faces)
show_cam = c4.toggle("Grad-CAM of the best model", value=True, key="check_cam")

summary = common.summary(run)
best = checking.best_model(summary, model_names)
combiner, combiner_problem = common.run_combiner(run, model_names)
colors = figures.model_colors(model_names + ([combiner.name] if combiner else []))
if combiner is not None:
    st.caption(f"**Run verdict**: **{combiner.name}**, the run's combined model ({combiner.description}, "
               f"fitted on the validation split; members: {', '.join(combiner.members)}), at its own threshold "
               f"{combiner.threshold:.3f} chosen on the validation split. Each model's verdict uses its own "
               f"threshold too. **Log-odds vote** of the Keras models (shown under the run verdict): "
               f"{checking.ENSEMBLE_RULE}. Best single Keras model (highest pooled test ROC-AUC, used for "
               f"Grad-CAM): **{best}**.")
else:
    st.caption(f"Verdicts use each model's own threshold (chosen on the validation split). **Ensemble**: "
               f"{checking.ENSEMBLE_RULE}. Best single Keras model (highest pooled test ROC-AUC): **{best}**.")
if combiner_problem:
    st.warning(f"The run's combined model cannot score uploads, so the verdict below is the log-odds vote: "
               f"{combiner_problem}", icon=":material/warning:")

if not files:
    st.info("Upload one or more photos to check them. Each face found is scored by every finished model "
            f"of this run ({', '.join(model_names)}).", icon=":material/upload:")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def _check(run_path: str, names: tuple, stamp: tuple, combined_key: str | None, name: str, data: bytes, crop: bool,
           whole_image: bool, conf: float):
    models = common._run_models(run_path, names, stamp)
    comb = common._run_combiner(run_path, names, stamp, combined_key) if combined_key is not None else None
    return checking.check_files([(name, data)], models, crop_faces=crop, whole_image_if_no_face=whole_image,
                                min_confidence=conf, combiner=comb)[0]


models = common.run_models(run, model_names)
stamp = tuple(common._model_mtime(run, m, "model.keras") for m in model_names)
combined_key = common.combiner_key(run) if combiner is not None else None
results = []
bar = st.progress(0.0, text="Checking…") if len(files) > 1 else None
for k, f in enumerate(files):
    try:
        res = _check(str(run.path), tuple(model_names), stamp, combined_key, f.name, f.getvalue(), crop_faces, whole,
                     float(min_conf))
    except Exception as exc:  # noqa: BLE001 - one odd file must never break the page
        res = checking.FileCheck(name=f.name, error=f"{f.name} could not be checked ({type(exc).__name__}: {exc})")
    results.append(res)
    if bar is not None:
        bar.progress((k + 1) / len(files), text=f"Checked {k + 1} of {len(files)}")
if bar is not None:
    bar.empty()

n_bad = sum(not r.ok for r in results)
if len(files) >= TABLE_FROM:
    st.subheader("Results")
    table = checking.results_table(results)
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download CSV", table.to_csv(index=False).encode(), file_name="deepfake_lens_check.csv",
                       mime="text/csv", icon=":material/download:", key="check_csv")
    if n_bad:
        st.warning(f"{n_bad} of {len(files)} file(s) could not be checked; see the messages below.")


def _icon(verdict: str) -> str:
    return ":red[:material/warning:]" if verdict == "fake" else ":green[:material/check_circle:]"


def _heat(model_name: str, crop):
    from pipeline import explain

    exp = explain.heatmap(models[model_name].model, crop, "gradcam")
    return explain.overlay(crop, exp.heatmap, 0.45), exp


for res in results:
    if not res.ok:
        st.error(res.error, icon=":material/broken_image:")
        continue
    with st.container(border=True):
        st.markdown(f"#### {res.name}")
        h, w = res.rgb.shape[:2]
        if res.note:
            st.warning(res.note, icon=":material/face:")
        if not res.faces:
            st.image(res.rgb, caption=f"{w}×{h} px", width=360)
            continue
        if crop_faces and res.detected:
            from pipeline import faces as face_mod

            photo = face_mod.draw_boxes(res.rgb, res.detected)
            st.image(photo, caption=f"{w}×{h} px · {len(res.detected)} face(s) found", width=min(w, 640))
        for face in res.faces:
            ens = face.ensemble
            if face.combined is not None:
                st.markdown(f"{_icon(face.combined['verdict'])} {face.label.capitalize()}: "
                            f"{checking.combined_headline(face.combined, summary)}")
            cols = st.columns([1, 3, 2] if show_cam else [1, 3])
            with cols[0]:
                conf = f" · detector {face.confidence:.2f}" if face.confidence is not None else ""
                st.image(face.crop, caption=f"{face.label}{conf}", width="stretch")
                if face.combined is not None:
                    st.caption(f"Log-odds vote of the Keras models: {ens['verdict']} (p {ens['p_fake']:.3f}; "
                               f"{ens['votes_fake']}/{ens['n_models']} models say fake)")
                else:
                    st.markdown(f"{_icon(ens['verdict'])} Ensemble: **{ens['verdict']}** (p {ens['p_fake']:.3f}; "
                                f"{ens['votes_fake']}/{ens['n_models']} models say fake)")
            with cols[1]:
                bars = ([{k: face.combined[k] for k in ("model", "p_fake", "threshold", "verdict")}]
                        if face.combined is not None else []) + face.scores
                st.plotly_chart(figures.probability_bars_figure(bars, colors, ens,
                                                                title=f"P(fake) per model · {face.label}"),
                                width="stretch", key=f"check_bars_{res.name}_{face.index}_{id(res)}")
            if show_cam:
                with cols[2]:
                    try:
                        from pipeline import explain

                        over, exp = _heat(best, face.crop)
                        st.plotly_chart(figures.image_figure(
                            over, title=f"{exp.label} · {best}", colorscale=explain.plotly_colorscale(),
                            tick_labels=explain.colorbar_labels(), height=260),
                            width="stretch", key=f"check_cam_{res.name}_{face.index}_{id(res)}")
                        if exp.note:
                            st.caption(exp.note)
                    except Exception as exc:  # noqa: BLE001 - the scores stay useful without the map
                        st.warning(f"Grad-CAM could not be computed for {best}: {exc}")

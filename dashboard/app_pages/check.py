"""Check an image: upload photos, crop their faces, score each face with every model of the run and
give the run's verdict (its combined model, when it has one: see pipeline.checking)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import common, presentation
from dashboard.forensic_panel import render_panel
from pipeline import checking, figures, image_formats, store
from pipeline import verdict as verdict_mod

TABLE_FROM = 2  # show the results table from this many files on

run = common.selected_run()
present = presentation.active()  # projector: the answer and the picture first, fewer controls
if not present:
    presentation.compact_top()
st.title("Check an image")
if not present:
    st.caption(common.run_caption(run))
common.require_models(run)
model_names = common.keras_model_names(run)
if not model_names:
    common.stop_with(f"Run `{run.run_id}` has no finished Keras model to score images with yet.", "info")

limit = common.upload_limit_mb()
files = st.file_uploader(
    "Photos to check", type=image_formats.UPLOAD_TYPES, accept_multiple_files=True, key="check_files",
    help=f"JPEG, PNG, WebP, BMP, HEIC/HEIF or AVIF, up to {limit} MB each (server.maxUploadSize in .streamlit/config.toml). "
         "Files are decoded safely: a damaged or non-image file gets its own message.")
# The answer goes right under the uploader; the settings and the small print follow it on screen
# (their widgets run first, so their values are known when the photos are scored).
rate_box = st.container() if not present else None  # the verdict's known error rate, stated above the results
answer = st.container()
policy, policy_problem = common.run_policy(run)
stable_default = policy is None or policy.stability  # the run's `[verdict] stability` unless the user switches it
if present:  # fewer controls: the defaults (or what was set before switching)
    crop_faces = bool(st.session_state.get("check_crop", True))
    stability = bool(st.session_state.get("check_stability", stable_default))
    show_cam = bool(st.session_state.get("check_cam", True))
    whole = bool(st.session_state.get("check_whole", False))
    min_conf = float(st.session_state.get("check_conf", 0.9))
else:
    c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
    crop_faces = c1.toggle("Find faces", value=True, key="check_crop",
                           help="Detect faces (MTCNN) and frame each one as the training photos were framed (no "
                                "letterbox bars, no neighbouring face). Off: score the whole picture as it is.")
    stability = c2.toggle("Stability check", value=stable_default, key="check_stability",
                          help="Also score copies of each face (re-saved as JPEG, resized or slightly cropped; which "
                               "ones: 'How is this computed?' below): if a copy lands clearly on the other side of "
                               "the line, the verdict is 'Can't tell'. On unless the run's config turns it off.")
    show_cam = c3.toggle("Where it looked", value=True, key="check_cam",
                         help="Grad-CAM of the best single model: warm colours mark the pixels that pushed its "
                              "score most.")
    with st.expander("Face finding settings"):
        whole = st.checkbox("No face found? Score the whole picture anyway", value=False, key="check_whole",
                            disabled=not crop_faces,
                            help="The detectors judge faces: a score of a picture without a face means little.")
        min_conf = st.slider("Face detector confidence", 0.5, 0.99, 0.9, 0.01, key="check_conf",
                             disabled=not crop_faces,
                             help="How sure the face finder must be that a region is a face (0.5-0.99).")

summary = common.summary(run)
best = checking.best_model(summary, model_names)
if not files:  # the models load in the background while the user picks a photo; the page does not wait
    common.warm_up(run)
# Loaded (or awaited) only once there is something to score: an empty page renders at once.
combiner, combiner_problem = common.run_combiner(run, model_names) if files else (None, None)
colors = figures.model_colors(model_names + ([combiner.name] if combiner else []))
if policy is not None:
    (rate_box or st).caption(verdict_mod.error_rate_words(policy) + " " + verdict_mod.fakes_missed_words(policy) +
                             " Never the sole basis for accusing a person.")
if not present:
    with st.expander("How is this computed?"):
        if policy is not None:
            st.markdown(
                f"- **The verdict** comes from **{policy.model}** (the run's verdict model"
                + (f": {combiner.description}, members {', '.join(combiner.members)}" if combiner is not None
                   and combiner.name == policy.model else "") + "). Its score is **calibrated** on the validation "
                f"split ({policy.calibrator.get('method')} scaling), so 80% means about 8 in 10 such faces were fake.\n"
                f"- **Threshold**: {verdict_mod.threshold_words(policy)}.\n"
                f"- **Can't tell** when the score is within the band around the threshold that holds "
                f"{policy.unsure_share:.0%} of the validation photos"
                + ((", or when the stability check flips the answer (the face "
                    f"{verdict_mod.copies_words(policy)} lands clearly on the other side"
                    + (f": {policy.flip_margin:g} times as far past the line as the band's edge"
                       if policy.flip_margin != 1 else "") + ")")
                   if policy.stability else " (this run's stability check is off)")
                + ".\n"
                f"- **Faces** are framed as the training photos framed theirs (the widest framing of the data sets: "
                f"the face takes {policy.face_fraction or 0:.0%} of the crop's side); a photo framed like a training "
                f"image is scored whole.")
        st.markdown(f"- **The top bar** is the verdict: its calibrated P(fake) against the line that judged this face "
                    f"(a bar past the line can still be 'can't tell': see above).\n"
                    f"- **Each model's own answer** (the other bars) uses its own threshold, chosen on the validation split. "
                    f"The **log-odds vote** of the Keras models: {checking.ENSEMBLE_RULE}.\n"
                    f"- **Where the model looked**: Grad-CAM of **{best}**, the single model with the best pooled test "
                    f"ROC-AUC.")
if combiner_problem:
    st.warning(f"The run's combined model cannot score uploads: {combiner_problem}", icon=":material/warning:")
if policy_problem:
    st.warning(f"No real / fake / can't-tell verdict for this run: {policy_problem}", icon=":material/warning:")

if not files:
    members = [m for m in (run.config.get("verdict") or {}).get("members", [])  # "all": the models listed already
               if m != "all" and m not in model_names]
    answer.info("Upload one or more photos to check them. Each face found is scored by this run's Keras models "
                f"({', '.join(model_names)})" + (f" and by its verdict model, which also asks {', '.join(members)}"
                                                  if members else "") + ".", icon=":material/upload:")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def _check(run_path: str, names: tuple, stamp: tuple, combined_key: str | None, policy_key: str | None, name: str,
           data: bytes, crop: bool, whole_image: bool, conf: float, stable: bool):
    models = common._run_models(run_path, names, stamp)
    comb = common._run_combiner(run_path, names, stamp, combined_key) if combined_key is not None else None
    pol = verdict_mod.load_policy(Path(run_path)) if policy_key is not None else None
    with common.CHECK_SLOTS:  # one photo per core at a time: under load, verdicts come one after another
        return checking.check_files([(name, data)], models, crop_faces=crop, whole_image_if_no_face=whole_image,
                                    min_confidence=conf, combiner=comb, policy=pol, stability=stable)[0]


@st.cache_data(show_spinner=False, max_entries=64, ttl=1800)
def _gradcam(run_path: str, model_name: str, stamp: tuple, crop, _model):
    """Grad-CAM overlay of one face crop, kept for 30 minutes: every upload reruns the page for all of the
    session's photos, and the map (about 0.03 s once traced, one model at a time) is the same each time."""
    from pipeline import explain

    exp = explain.heatmap(_model, crop, "gradcam")
    return explain.overlay(crop, exp.heatmap, 0.45), exp


models = common.run_models(run, model_names)
stamp = tuple(common._model_mtime(run, m, store.KERAS_MODEL) for m in model_names)
combined_key = common.combiner_key(run) if combiner is not None else None
results = []
bar = answer.progress(0.0, text="Checking…") if len(files) > 1 else None
for k, f in enumerate(files):
    try:
        res = _check(str(run.path), tuple(model_names), stamp, combined_key, policy.key if policy else None, f.name,
                     f.getvalue(), crop_faces, whole, float(min_conf), stability)
    except Exception as exc:  # noqa: BLE001 - one odd file must never break the page
        res = checking.FileCheck(name=f.name, error=f"{f.name} could not be checked ({type(exc).__name__}: {exc})")
    results.append(res)
    if bar is not None:
        bar.progress((k + 1) / len(files), text=f"Checked {k + 1} of {len(files)}")
if bar is not None:
    bar.empty()

with answer:
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
        return {"fake": ":red[:material/warning:]", "real": ":green[:material/check_circle:]"}.get(
            verdict, ":orange[:material/help:]")


    def _heat(model_name: str, crop):
        return _gradcam(str(run.path), model_name, stamp, crop, models[model_name].model)


    maps: dict = {}  # (file name, face index) -> [(caption, Grad-CAM overlay)] for the report


    for i, (res, upload) in enumerate(zip(results, files)):
        if not res.ok:
            st.error(res.error, icon=":material/broken_image:")
            continue
        with st.container(border=True):
            overall = checking.photo_verdict(res)
            with st.container(key=f"check_headline_{i}"):  # the main answer: first on screen (browser test)
                st.markdown(f"#### {res.name}" + (f" — {_icon(overall[0])} {overall[1]}" if overall else ""))
            h, w = res.rgb.shape[:2]
            if res.note:
                st.warning(res.note, icon=":material/face:")
            if not res.faces:
                st.image(res.rgb, caption=f"{w}×{h} px", width=360)
                if not present:
                    render_panel(res.name, upload.getvalue(), key=f"check_forensics_{i}")
                continue
            for face in res.faces:
                ens = face.ensemble
                if face.verdict is not None:
                    st.markdown(f"### {_icon(face.verdict['verdict'])} {face.label.capitalize()}: "
                                f"{face.verdict['headline']}")
                elif face.combined is not None:
                    st.markdown(f"{_icon(face.combined['verdict'])} {face.label.capitalize()}: "
                                f"{checking.combined_headline(face.combined, summary)}")
                widths = ([2, 3, 2] if present else [1, 3, 2]) if show_cam else ([2, 3] if present else [1, 3])
                cols = st.columns(widths)
                with cols[0]:
                    conf = f" · detector {face.confidence:.2f}" if face.confidence is not None else ""
                    st.image(face.crop, caption=f"{face.label}{conf}", width="stretch")
                    if face.combined is not None:
                        if not present:
                            st.caption(f"Log-odds vote of the Keras models: {ens['verdict']} (p {ens['p_fake']:.3f}; "
                                       f"{ens['votes_fake']}/{ens['n_models']} models say fake)")
                    else:
                        st.markdown(f"{_icon(ens['verdict'])} Ensemble: **{ens['verdict']}** (p {ens['p_fake']:.3f}; "
                                    f"{ens['votes_fake']}/{ens['n_models']} models say fake)")
                with cols[1]:
                    top = checking.verdict_bar(face)  # the verdict model's bar says what the headline says
                    bars = ([top] if top is not None else []) + face.scores
                    if top is not None and combiner is not None and top["model"] not in colors:
                        colors[top["model"]] = colors.get(combiner.name)  # the verdict keeps its model's colour
                    st.plotly_chart(figures.probability_bars_figure(bars, colors, ens,
                                                                    title="Each model's answer"),
                                    width="stretch", key=f"check_bars_{i}_{face.index}")
                if show_cam:
                    with cols[2]:
                        try:
                            from pipeline import explain

                            over, exp = _heat(best, face.crop)
                            maps.setdefault((res.name, face.index), []).append((f"Grad-CAM · {best}", over))
                            st.plotly_chart(figures.image_figure(
                                over, title="Where it looked", colorscale=explain.plotly_colorscale(),
                                tick_labels=explain.colorbar_labels(), height=260),
                                width="stretch", key=f"check_cam_{i}_{face.index}",
                                config={"displayModeBar": False})  # a picture: no zoom toolbar over its title
                            st.caption(f"{exp.label} of {best}, the best single model: red marks what raised its "
                                       "P(fake) most.")
                            if exp.note:
                                st.caption(exp.note)
                        except Exception as exc:  # noqa: BLE001 - the scores stay useful without the map
                            st.warning(f"Grad-CAM could not be computed for {best}: {exc}")
            if crop_faces and res.detected and (len(res.faces) > 1 or not present):
                from pipeline import faces as face_mod

                photo = face_mod.draw_boxes(res.rgb, res.detected)
                st.image(photo, caption=f"The photo: {w}×{h} px · {len(res.detected)} face(s) found, numbered left to "
                                        "right", width=min(w, 480))
            if not present:
                render_panel(res.name, upload.getvalue(), key=f"check_forensics_{i}")


def _report() -> bytes:
    from dashboard.forensic_panel import inspect_bytes
    from pipeline import forensics
    from pipeline.report.check_report import check_report_html

    facts = {}
    for upload in files:
        result, _ = inspect_bytes(upload.getvalue(), upload.name)
        if result is not None:
            facts[upload.name] = forensics.fact_lines(result)
    return check_report_html(results, run=run, summary=summary, explanations=maps, forensic_facts=facts).encode()


st.download_button("Download the check report (HTML)", _report, file_name="deepfake_lens_check_report.html",
                   mime="text/html", icon=":material/description:", key="check_report",
                   help="One self-contained HTML file: every photo with its faces, the verdicts and their reasons, "
                        "every model's score, the Grad-CAM maps and what the file itself says. No request when "
                        "opened, so it can be mailed.")

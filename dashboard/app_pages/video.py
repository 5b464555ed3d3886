"""Check a video: sample its frames, find and track the faces, score every face with every model of
the run, and give the clip's verdict from its most suspicious face track (pipeline.video)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from dashboard import common
from pipeline import store
from pipeline.video import decode, scoring
from pipeline.video import figures as vfig

DEFAULT_FOLDER = Path(__file__).resolve().parents[3] / "shared" / "videos"  # ../shared/videos beside the repo
MAX_LISTED = 500
KEEP_RESULTS = 3
DISPLAY_SIDE = 800  # px: frames kept per result for the scrubber (16 frames at 800x450: 17 MB)
STAGES = {"decoding frames": (0.0, 0.3), "finding faces": (0.3, 0.85), "scoring faces": (0.85, 1.0)}

run = common.selected_run()
st.title("Check a video")
st.caption(common.run_caption(run))
common.require_models(run)
model_names = common.keras_model_names(run)
if not model_names:
    common.stop_with(f"Run `{run.run_id}` has no finished Keras model to score faces with yet.", "info")

cap_mb = common.upload_limit_mb()
source_kind = st.radio("Clip", ["Upload", "Pick from a folder"], horizontal=True, key="video_source",
                       index=1 if DEFAULT_FOLDER.is_dir() else 0)
name, source, source_key = None, None, None
if source_kind == "Upload":
    up = st.file_uploader(
        "Video to check", type=[e.lstrip(".") for e in decode.VIDEO_EXTENSIONS], key="video_upload",
        max_upload_size=cap_mb,
        help=f"MP4, MOV, M4V, WebM, AVI or MKV, up to {cap_mb} MB (server.maxUploadSize in .streamlit/config.toml).")
    if up is not None:
        data = up.getvalue()
        if len(data) > cap_mb * 2**20:  # the uploader enforces it too; checked again here
            common.stop_with(f"{up.name} is {len(data) / 2**20:.0f} MB; videos are accepted up to {cap_mb} MB.", "error")
        name, source, source_key = up.name, data, "upload:" + hashlib.sha256(data).hexdigest()
else:
    folder = st.text_input("Folder", value=str(DEFAULT_FOLDER) if DEFAULT_FOLDER.is_dir() else "", key="video_folder",
                           help="A folder of clips (sub-folders are searched), e.g. ../shared/videos.")
    if folder:
        root = Path(folder).expanduser()
        if not root.is_dir():
            st.warning(f"`{root}` is not a folder.")
        else:
            clips = sorted(p for p in root.rglob("*") if p.is_file() and decode.is_video_file(p))[:MAX_LISTED]
            if not clips:
                st.info(f"No video ({', '.join(decode.VIDEO_EXTENSIONS)}) in `{root}`.")
            else:
                pick = st.selectbox("Clip", clips, format_func=lambda p: str(p.relative_to(root)), key="video_pick",
                                    index=None, placeholder=f"Choose one of {len(clips)} clips")
                if pick is not None:
                    name, source = str(pick.relative_to(root)), pick
                    stat = pick.stat()
                    source_key = f"path:{pick.resolve()}:{stat.st_size}:{stat.st_mtime}"

with st.expander("Sampling and verdict settings", expanded=False):
    c1, c2, c3 = st.columns(3)
    mode = c1.radio("Sample", ["N frames evenly", "one every k seconds"], key="video_mode")
    if mode == "N frames evenly":
        n_frames = c1.slider("N frames", 2, 64, decode.DEFAULT_FRAMES, key="video_n",
                             help="Evenly over the duration: a long clip costs what a short one does.")
        sampling = decode.Sampling(n_frames=n_frames)
    else:
        every = c1.number_input("k seconds", 0.1, 60.0, 1.0, 0.1, key="video_every")
        max_frames = c1.slider("at most", 2, 128, decode.DEFAULT_MAX_FRAMES, key="video_max",
                               help="A longer clip gets this many frames evenly instead.")
        sampling = decode.Sampling(every_seconds=float(every), max_frames=max_frames)
    rule = c2.selectbox("Track score", scoring.RULES, format_func=lambda r: scoring.RULE_TEXT[r], key="video_rule")
    band = c2.slider("Unsure band (± around the threshold)", 0.0, 0.3, scoring.DEFAULT_BAND, 0.01, key="video_band")
    min_faces = c3.slider("Unsure below this many faces in a track", 1, 10, scoring.DEFAULT_MIN_FACES, key="video_minf")
    min_conf = c3.slider("Face detector confidence", 0.5, 0.99, 0.9, 0.01, key="video_conf")

if source is None:  # the models load in the background while the user picks a clip; the page does not wait
    common.warm_up(run)
combiner, combiner_problem = common.run_combiner(run, model_names) if source is not None else (None, None)
policy, _ = common.run_policy(run)
if combiner_problem:
    st.warning(f"The run's combined model cannot score faces, so the verdict uses the log-odds vote: "
               f"{combiner_problem}", icon=":material/warning:")
st.caption(f"Every face of every sampled frame is scored by each model of the run; the verdict model is "
           f"**{policy.model if policy is not None else common.combiner_name(run) or scoring.VOTE_NAME}**"
           f"{' (calibrated on validation, as on the Check page)' if policy is not None else ''}. A face track's score is the "
           f"{scoring.RULE_TEXT[rule]}; the clip's verdict is its most suspicious track's: fake at or above the "
           f"threshold + {band:.2f}, real below the threshold − {band:.2f}, unsure in between or with fewer than "
           f"{min_faces} faces.")

if source is None:
    st.info("Upload a clip or pick one from a folder. Its frames are sampled, the faces found and tracked, and "
            f"every face is scored by each finished model of this run ({', '.join(model_names)}).",
            icon=":material/movie:")
    st.stop()

models = common.run_models(run, model_names)
stamp = tuple(common._model_mtime(run, m, store.KERAS_MODEL) for m in model_names)
key = (str(run.path), stamp, common.combiner_key(run) if combiner is not None else "", policy.key if policy else "",
       source_key, sampling, rule,
       band, min_faces, float(min_conf))
store = st.session_state.setdefault("video_results", {})
result = store.get(key)
if result is None:
    bar = st.progress(0.0, text=f"Reading {name}…")

    def progress(stage: str, done: int, total: int) -> None:
        lo, hi = STAGES.get(stage, (0.0, 1.0))
        bar.progress(min(1.0, lo + (hi - lo) * done / max(1, total)), text=f"{stage}: {done} of {total}")

    try:
        result = scoring.analyse_video(source, models, combiner, name=name, sampling=sampling, rule=rule, band=band,
                                       min_faces=min_faces, min_confidence=float(min_conf), progress=progress,
                                       policy=policy)
    except Exception as exc:  # noqa: BLE001 - an odd clip must never break the page
        result = scoring.VideoResult(name=name, error=f"{name} could not be checked ({type(exc).__name__}: {exc})")
    bar.empty()
    scoring.shrink_frames(result, DISPLAY_SIDE)  # the session keeps frames for display only
    while len(store) >= KEEP_RESULTS:
        store.pop(next(iter(store)))
    store[key] = result

if not result.ok:
    common.stop_with(result.error, "error")

info = result.info
st.caption(f"**{result.name}** · {info.width}x{info.height} px · {info.duration or 0:.1f} s · "
           f"{(info.fps or 0):.2f} frames/s · {info.codec}"
           + (f" · rotated {info.rotation}°" if info.rotation else "") + (" · with audio" if info.has_audio else "")
           + f" · {len(result.frames)} frames sampled (asked: {result.sampling}) · {result.n_faces} faces in "
           f"{len(result.tracks)} track{'s' if len(result.tracks) != 1 else ''} · "
           f"{sum(v for k, v in result.seconds.items() if k != 'faces_scored'):.1f} s")
for note in result.notes:
    st.warning(note, icon=":material/warning:")

text = scoring.verdict_text(result)
box = {"fake": st.error, "real": st.success}.get(result.verdict, st.warning)
box(text, icon={"fake": ":material/warning:", "real": ":material/check_circle:"}
    .get(result.verdict, ":material/help:"))
if not result.tracks:
    st.stop()

times = [f.time for f in result.frames]
if "video_scrub" in st.session_state and st.session_state["video_scrub"] not in range(len(times)):
    del st.session_state["video_scrub"]
scrub = st.select_slider("Frame", options=list(range(len(times))), key="video_scrub",
                         value=result.deciding_frames[0] if result.deciding_frames else 0,
                         format_func=lambda i: f"{times[i]:.2f} s", help="Scrub through the sampled frames.")
st.plotly_chart(vfig.timeline_figure(result, selected_time=times[scrub]), width="stretch", key="video_timeline")

left, right = st.columns([3, 2])
with left:
    here = [(tr, f) for tr in result.tracks for f in tr.faces if f.detection.frame_index == scrub]
    st.image(vfig.frame_with_boxes(result, scrub), width="stretch")
    st.caption(f"Sampled frame {scrub + 1} of {len(times)} at {times[scrub]:.2f} s: {len(here)} "
               f"face{'s' if len(here) != 1 else ''}")
with right:
    if not here:
        st.caption("No face found on this frame.")
    for tr, f in here:
        st.image(f.detection.crop, width=160,
                 caption=f"track {tr.track_id} · {f.record['verdict']['model']} p(fake) {f.p_fake:.3f}")
        st.caption(" · ".join(f"{r['model']} {r['p_fake']:.2f}" for r in f.record["models"]))

st.subheader("Face tracks")
st.dataframe(vfig.track_table(result), hide_index=True, width="stretch")

st.subheader("Most suspicious frames")
from pipeline import checking

best = checking.best_model(common.summary(run), model_names)
deciding = result.track(result.deciding_track)
top = sorted((f for f in deciding.faces if f.detection.frame_index in result.deciding_frames), key=lambda f: -f.p_fake)
st.caption(f"Track {deciding.track_id}'s frames of highest p(fake), with the face crop and the Grad-CAM of **{best}** "
           f"(the run's best single model by pooled test ROC-AUC): red is where the model looked for its 'fake' score.")
cols = st.columns(max(1, len(top)))
for col, f in zip(cols, top):
    with col:
        st.markdown(f"**{f.detection.time:.2f} s** · p(fake) {f.p_fake:.3f}")
        st.image(f.detection.crop, width="stretch", caption="face crop")
        try:
            from pipeline import explain

            exp = explain.heatmap(models[best].model, f.detection.crop, "gradcam")
            st.image(explain.overlay(f.detection.crop, exp.heatmap, 0.45), width="stretch",
                     caption=f"{exp.label} · {best}")
            if exp.note:
                st.caption(exp.note)
        except Exception as exc:  # noqa: BLE001 - the scores stay useful without the map
            st.warning(f"Grad-CAM could not be computed for {best}: {exc}")

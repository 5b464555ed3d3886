"""Forensics: the analyst's bench for one image (a test image of the run, or an upload).

Classic image forensics and provenance beside the detectors: error level analysis, noise, spectrum, JPEG
facts, metadata, the EXIF thumbnail and C2PA Content Credentials (pipeline.forensics). Each view is a
magnifying glass, not a verdict.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import common, forensic_panel
from pipeline import image_formats

run = common.selected_run()
st.title("Forensics")
st.caption("What the file itself shows: how it was compressed, what its noise and frequencies look like, what its "
           "metadata and signed Content Credentials say. Analysts read these beside a detector's number. "
           "Nothing leaves this machine.")

source = st.radio("Image", ["A test image of this run", "Upload a photo"], horizontal=True, key="forensics_source")
data: bytes | None = None
name = ""
if source == "Upload a photo":
    limit = common.upload_limit_mb()
    up = st.file_uploader("Photo", type=image_formats.UPLOAD_TYPES, key="forensics_upload",
                          help=f"JPEG, PNG, WebP, BMP, HEIC/HEIF (phones) or AVIF, up to {limit} MB. Read locally; "
                               "nothing is uploaded anywhere else.")
    if up is None:
        st.caption("Pick a photo to inspect. A phone photo straight from the camera shows the most (EXIF, "
                   "thumbnail); one saved from a messenger has usually lost them.")
        st.stop()
    data, name = up.getvalue(), up.name
else:
    man = common.manifest(run)
    test = man[man["split"] == "test"] if "test" in set(man["split"]) else man
    if test.empty:
        common.stop_with(f"Run `{run.run_id}` lists no image; upload a photo instead.", "info")
    c1, c2, c3 = st.columns([1, 1, 3])
    dataset = c1.selectbox("Dataset", sorted(test["dataset"].astype(str).unique()), key="forensics_dataset")
    pool = test[test["dataset"] == dataset]
    label = c2.selectbox("Class", sorted(pool["label"].astype(str).unique()), key="forensics_label")
    pool = pool[pool["label"] == label].sort_values("relpath")
    rel = c3.selectbox("File", pool["relpath"].astype(str).tolist(), key="forensics_file",
                       help="Test-split images of the run, by their path in the data folder.")
    path = str(pool.loc[pool["relpath"].astype(str) == rel, "path"].iloc[0])
    name = rel
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        common.stop_with(f"{path} could not be read ({exc.strerror or exc}); is the data folder of this run on "
                         "this machine?", "warning")

c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
quality = c1.slider("ELA quality", 50, 100, 90, 1, key="forensics_quality",
                    help="The JPEG quality the image is re-saved at for error level analysis. 90 is the usual "
                         "choice; try the file's own estimated quality and lower ones too.")
gps = c2.checkbox("Show GPS coordinates", value=False, key="forensics_gps",
                  help="GPS positions are personal data: hidden unless you ask.")

with st.spinner("Inspecting..."):
    result, problem = forensic_panel.inspect_bytes(data, name, quality, gps)
if result is None:
    common.stop_with(problem, "error")
forensic_panel.render_inspection(result, key="forensics")

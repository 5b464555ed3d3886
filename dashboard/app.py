"""Deepfake Lens dashboard. Run from the repository root: ``python -m dashboard.serve`` (``streamlit run
dashboard/app.py`` after a warm start; ``streamlit run dashboard/app.py`` works too, without it).

Pages are listed in :data:`SECTIONS` (sidebar section -> pages); add a page by adding an
``st.Page`` there. The sidebar run selector is shared by every page (see ``dashboard/common.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import dashboard.* and pipeline.*
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import common, presentation  # noqa: E402
from dashboard import after_run  # noqa: E402
from pipeline import results  # noqa: E402

after_run.install()  # no Keras reset after every script run; a full garbage collection at most every 10 s

st.set_page_config(page_title="Deepfake Lens", page_icon=common.favicon(), layout="wide")

SECTIONS: dict[str, list] = {
    "Data": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dataset:", default=True),
        st.Page("app_pages/leakage.py", title="Leakage check", icon=":material/content_copy:"),
    ],
    "Models": [
        st.Page("app_pages/compare.py", title="Compare models", icon=":material/leaderboard:"),
        st.Page("app_pages/training.py", title="Training", icon=":material/show_chart:"),
        st.Page("app_pages/robustness.py", title="Robustness", icon=":material/shield:"),
        st.Page("app_pages/generalisation.py", title="Generalisation", icon=":material/grid_on:"),
        st.Page("app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("app_pages/agreement.py", title="Agreement", icon=":material/join_inner:"),
        st.Page("app_pages/svm_lab.py", title="SVM lab", icon=":material/tune:"),
    ],
    "Images": [
        st.Page("app_pages/check.py", title="Check an image", icon=":material/image_search:"),
        st.Page("app_pages/video.py", title="Check a video", icon=":material/movie:"),
        st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
        st.Page("app_pages/forensics.py", title="Forensics", icon=":material/biotech:"),
        st.Page("app_pages/quiz.py", title="Real or fake?", icon=":material/quiz:"),
    ],
}

page = st.navigation(SECTIONS)

runs = results.list_runs()
with st.sidebar:
    presentation.sidebar_toggle()
    if runs:
        ids = [r.run_id for r in runs]
        by_id = {r.run_id: r for r in runs}
        try:
            default = ids.index(results.latest_run().run_id)
        except results.RunNotFound:
            default = 0
        st.selectbox("Run", ids, index=default, key=common.RUN_KEY,
                     format_func=lambda rid: by_id[rid].label if rid in by_id else rid,
                     help="Runs in the artifacts folder, newest first: id · config · created · finished models. "
                          "Every page shows the run chosen here.")
    st.caption("**Deepfake Lens** trains a zoo of real-vs-fake face detectors on the same data split and "
               "compares them: data, accuracy, speed and what each model looks at. "
               f"Results are read from `{results.artifacts_dir()}`.")

if not runs:
    st.title("Deepfake Lens")
    from dashboard import progress_panel

    progress_panel.show()  # the first run is training (scripts/run.sh): its progress, then its pages
    st.info(common.no_run_message(), icon=":material/info:")
    st.stop()

try:
    page.run()
finally:  # after the first page (even one that stopped early): what the next pages need, in the background
    try:
        common.preload(results.load_run(results.resolve_run(st.session_state.get(common.RUN_KEY))))
    except (results.RunNotFound, results.ArtifactError, OSError):
        pass  # a run that cannot be read: the page said why

"""The training progress bar of the Overview page (and of the start page before any run exists).

Reads ``<artifacts>/progress.json`` (:mod:`pipeline.run_progress`), written by a running
``python -m pipeline train`` (``scripts/run.sh`` starts the dashboard first and trains in the
background). The panel refreshes itself every :data:`REFRESH_SECONDS` (an ``st.fragment`` with
``run_every``) and reruns the whole app when a model finishes or a run folder appears, so the other
pages fill as training goes on. Nothing is shown when no training is running.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from pipeline import results, run_progress

REFRESH_SECONDS = 2.0
LOG_SHOWN = 12


def _finished(root: Path) -> tuple:
    """(run id, finished models) of every run: changes when a model finishes or a run appears."""
    return tuple((r.run_id, len(r.complete_models)) for r in results.list_runs(root))


def show(root: Path | str | None = None) -> None:
    """Draw the panel when a training is running (or just stopped) in ``root`` (default: the
    dashboard's artifacts folder)."""
    root = Path(root) if root is not None else results.artifacts_dir()
    status = run_progress.read_status(root)
    if status is None or status.status == "complete":
        return
    seen = _finished(root)

    @st.fragment(run_every=REFRESH_SECONDS if status.active else None)
    def panel() -> None:
        now = run_progress.read_status(root)
        if now is None:
            return
        if now.active:
            with st.container(border=True):
                st.markdown("**Training in progress** — pages fill in as models finish; this bar refreshes "
                            f"every {REFRESH_SECONDS:.0f} s.")
                st.progress(now.fraction, text=f"{now.stage or 'starting'}: {now.done:,} / {now.total:,}"
                            if now.total else (now.stage or "starting…"))
                if now.log:
                    st.caption("Latest: " + now.log[-1])
                    with st.expander("Training log"):
                        st.code("\n".join(now.log[-LOG_SHOWN:]), language=None)
        elif now.status == "failed":
            st.error(f"The last training stopped with an error: {now.message}. Finished models are kept; "
                     "rerun `bash scripts/run.sh` to continue where it stopped.")
        elif now.status == "stopped":
            st.warning("The last training was stopped before it finished (its process is gone). Finished models "
                       "are kept; rerun `bash scripts/run.sh` to continue where it stopped.")
        if _finished(root) != seen or now.status != status.status:
            st.rerun(scope="app")  # a model finished or the training ended: redraw the page with it

    panel()

""""This result is missing": one line saying why and a button that computes it with a progress bar.

Pages call :func:`offer` with a pipeline function from :mod:`pipeline.on_demand` (never training
code); results that need training keep their command (:func:`pipeline.on_demand.training_command`).
After the step the page reruns: the cached loaders are keyed by the files' modification times, so
the new files are read at once.
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from pipeline import on_demand
from pipeline.progress import ProgressFn


def progress_bar(text: str = "Starting…") -> Callable[[str, int, int], None]:
    """An ``st.progress`` bar as a pipeline ``progress(stage, done, total)`` callable."""
    bar = st.progress(0.0, text=text)

    def update(stage: str, done: int, total: int) -> None:
        frac = min(1.0, max(0.0, done / total)) if total else 0.0
        bar.progress(frac, text=f"{stage}: {done:,} of {total:,}" if total else stage)

    return update


def offer(reason: str, label: str, compute: Callable[[ProgressFn], Any], *, key: str, busy: bool = False,
          kind: str = "info", help: str | None = None) -> bool:
    """Show ``reason`` (one line, an info box) and a button ``label``; on a click run
    ``compute(progress)`` under a progress bar, then rerun the page. Returns False when nothing was
    clicked (the page goes on or stops as it likes). A failure is shown as an error with its message;
    ``busy`` (another session computes the same step) disables the button and says so."""
    getattr(st, kind)(reason)
    if busy:
        st.caption(":material/hourglass_top: Another session is computing this now; reload the page in a moment.")
    if not st.button(label, key=key, type="primary", icon=":material/play_arrow:", disabled=busy, help=help):
        return False
    progress = progress_bar()
    try:
        compute(progress)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        st.error(f"Could not compute it: {exc}")
        return False
    st.rerun()
    return True  # not reached: st.rerun() ends the script run


def offer_embeddings(run, missing: list[str], *, key: str, reason: str) -> bool:
    """:func:`offer` for the embeddings (and PCA-SVM row) of the Keras models ``missing``."""
    n = len(missing)
    label = f"Compute embeddings of {missing[0]}" if n == 1 else f"Compute embeddings of {n} models"
    return offer(reason, label,
                 lambda progress: on_demand.compute_embeddings(run.path, missing, progress),
                 key=key, busy=on_demand.is_busy(run.path, "embeddings"),
                 help="Every image of the run through the model's forward pass, then PCA, UMAP and the "
                      "PCA-SVM row; written into the run folder like `train` does. Minutes on a large run.")


def require_embeddings(run, available: list[str], *, what: str, what_to_run: str, key: str) -> None:
    """For pages built on the models' embeddings (Embeddings, SVM lab): with none available, say why and
    offer to compute them for every finished Keras model (the page stops here), or give ``what_to_run``
    when the run has no Keras model to compute them from; with some available, offer the missing ones
    in a collapsed line."""
    from dashboard import common

    missing = [m for m in on_demand.missing_embeddings(run.path) if m not in available]
    if not available:
        if not missing:
            common.stop_with(f"Run `{run.run_id}` has no embeddings yet. {what_to_run}")
        offer_embeddings(run, missing, key=key,
                         reason=f"Run `{run.run_id}` has no embeddings yet: {what} each model's embedding of "
                                f"every image, which can be computed here from its {len(missing)} finished "
                                "Keras model(s).")
        st.stop()
    if missing:
        with st.expander(f"No embeddings yet for {', '.join(missing)}"):
            offer_embeddings(run, missing, key=key,
                             reason=f"No embeddings were computed for {'this model' if len(missing) == 1 else 'these models'} "
                                    "(the run's `[embeddings] models` left "
                                    f"{'it' if len(missing) == 1 else 'them'} out, or the step did not finish); "
                                    f"compute them here to add {'it' if len(missing) == 1 else 'them'} to this page.")

"""Keep Keras' process-wide state across Streamlit script runs.

After every script run (every page visit, every widget change, every upload) Streamlit calls
``keras.backend.clear_session()`` once Keras is imported (``_clean_problem_modules`` in
``streamlit/runtime/scriptrunner/script_runner.py``, Streamlit 1.67). In Keras 3 that runs a full
``gc.collect()`` and clears TensorFlow's kernel cache, so the next run re-creates its kernels. The
dashboard loads each model once (``st.cache_resource``) and builds no model per run, so the reset
frees nothing; measured on the 10-minute default run (BENCHMARKS.md, load section) it was about a
third of the server's CPU per checked photo and 0.3 s on every rerun of any page, and it clears the
kernel cache under the feet of the other sessions' scoring threads.

:func:`keep_keras_state` replaces that hook with one that only does its other job (closing
matplotlib's pyplot figures). Nothing else of Streamlit is touched.
"""
from __future__ import annotations

import sys


def _close_pyplot_figures() -> None:
    """Streamlit's clean-up without the Keras reset: close every open pyplot figure, if pyplot is in use."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001, S110 - as Streamlit's own hook: never break the app over this
            pass


def keep_keras_state() -> bool:
    """Make Streamlit's after-run clean-up leave Keras alone (idempotent; call before pages run).

    Returns True when the hook was found and replaced (or already replaced), False when this
    Streamlit version has no such hook (then there is nothing to undo)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # pragma: no cover - a Streamlit without the module
        return False
    if not hasattr(script_runner, "_clean_problem_modules"):
        return False
    script_runner._clean_problem_modules = _close_pyplot_figures
    return True

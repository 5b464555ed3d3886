"""What the server does after every Streamlit script run (every page visit, widget change and upload).

Streamlit's own after-run clean-up (``_clean_problem_modules`` in
``streamlit/runtime/scriptrunner/script_runner.py``, Streamlit 1.67) calls ``keras.backend.clear_session()``
once Keras is imported. In Keras 3 that runs a full ``gc.collect()`` and clears TensorFlow's kernel
cache, so the next run re-creates its kernels. The dashboard loads each model once
(``st.cache_resource``) and builds no model per run, so the reset freed nothing; measured on the
10-minute default run (BENCHMARKS.md, sixth pass) it was about a third of the server's CPU per
checked photo and 0.3 s on every rerun of any page, and it cleared the kernel cache under the feet of
the other sessions' scoring threads. Streamlit then also ran its own full collection after every run
(``runner.postScriptGC``, off in ``.streamlit/config.toml``): another 14%.

Without any full collection the server's memory grew by about 10 MB per checked photo (1.4 -> 1.95 GB
over 48 uploads, still rising; with Streamlit's collection it stayed at 1.4 GB). So
:func:`install` replaces Streamlit's hook with :func:`after_script_run`: close pyplot's figures (the
hook's other job) and run a full collection at most every :data:`FULL_COLLECTION_EVERY_S` seconds.
"""
from __future__ import annotations

import gc
import logging
import sys
import threading
import time

FULL_COLLECTION_EVERY_S = 10.0  # seconds between two full garbage collections after script runs

_lock = threading.Lock()
_last_collection = [float("-inf")]  # time.monotonic() of the last full collection
_warned: list = []  # the missing-hook warning is logged once per process


def after_script_run() -> None:
    """Streamlit's after-run clean-up without the Keras reset: close every open pyplot figure (when pyplot
    is in use), then a full garbage collection if the last one was :data:`FULL_COLLECTION_EVERY_S` or more
    seconds ago (one thread at a time; the others skip it)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001, S110 - as Streamlit's own hook: never break the app over this
            pass
    if not _lock.acquire(blocking=False):
        return
    try:
        now = time.monotonic()
        if now - _last_collection[0] >= FULL_COLLECTION_EVERY_S:
            gc.collect()
            _last_collection[0] = time.monotonic()
    finally:
        _lock.release()


def install() -> bool:
    """Make Streamlit call :func:`after_script_run` after each script run instead of its own clean-up
    (idempotent; call before pages run). Returns True when the hook was found and replaced (or already
    replaced), False when this Streamlit version has no such hook (then nothing changed and a warning is
    logged once)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # pragma: no cover - a Streamlit without the module
        return False
    if not hasattr(script_runner, "_clean_problem_modules"):
        if not _warned:
            _warned.append(True)
            logging.getLogger(__name__).warning(
                "Streamlit %s has no script_runner._clean_problem_modules: its after-run clean-up was not replaced "
                "(dashboard/after_run.py); if it still resets Keras after every run, each rerun costs more CPU.",
                getattr(sys.modules.get("streamlit"), "__version__", "?"))
        return False
    script_runner._clean_problem_modules = after_script_run
    return True

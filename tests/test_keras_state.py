"""Streamlit must not reset Keras after every script run (dashboard/keras_state.py).

Streamlit's after-run hook called ``keras.backend.clear_session()`` (a full garbage collection and a
cleared kernel cache) on every rerun of every page: a third of the server's CPU per checked photo.
"""
from __future__ import annotations

import gc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from dashboard.keras_state import keep_keras_state
from pipeline import results
from synthetic_run import write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture
def original_hook(monkeypatch):
    """Streamlit's own hook for the test; restored afterwards whatever the app replaced it with."""
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    return script_runner._clean_problem_modules


@pytest.fixture
def resets(monkeypatch) -> list:
    """Counts calls of ``keras.backend.clear_session`` (and of the collector it runs)."""
    import keras

    calls: list = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append("clear_session"))
    return calls


def test_the_dashboard_never_resets_keras_between_script_runs(monkeypatch, tmp_path, original_hook, resets):
    write_synthetic_run(tmp_path, seed=1, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")  # no background model load outliving the test
    at = AppTest.from_file(APP, default_timeout=60)
    for page in (None, "app_pages/compare.py", "app_pages/check.py"):
        if page:
            at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    at.run()  # a plain rerun, as after a widget change
    assert resets == [], f"Streamlit reset Keras {len(resets)} time(s) in 4 script runs"


def test_the_replaced_hook_still_closes_pyplot_figures_and_keeps_keras_names(original_hook):
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        assert keep_keras_state() is True
        assert keep_keras_state() is True  # idempotent
        first = keras.layers.Dense(2)
        plt.figure()
        script_runner._clean_problem_modules()
        assert plt.get_fignums() == []
        second = keras.layers.Dense(2)
        # clear_session would have restarted the automatic names ("dense" again)
        assert first.name != second.name
    finally:
        plt.close("all")
        gc.collect()

"""What the server does after every Streamlit script run (dashboard/after_run.py).

Streamlit's after-run hook called ``keras.backend.clear_session()`` (a full garbage collection and a
cleared kernel cache) on every rerun of every page: a third of the server's CPU per checked photo.
Without any full collection, memory grew by about 10 MB per checked photo: one runs at most every 10 s.
"""
from __future__ import annotations

import gc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from dashboard import after_run
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
    """Counts calls of ``keras.backend.clear_session``."""
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
    assert script_runner._clean_problem_modules is after_run.after_script_run


def test_the_hook_closes_pyplot_figures_and_keeps_keras_names(original_hook):
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        assert after_run.install() is True
        assert after_run.install() is True  # idempotent
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


def test_a_full_collection_runs_at_most_every_few_seconds(monkeypatch):
    """Memory must not grow without bound (it did by about 10 MB per checked photo with no full collection),
    and a collection after every run cost 14% of the CPU: at most one every FULL_COLLECTION_EVERY_S."""
    clock = [1000.0]
    collections: list = []
    monkeypatch.setattr(after_run.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(after_run.gc, "collect", lambda *a: collections.append(clock[0]) or 0)
    monkeypatch.setattr(after_run, "_last_collection", [float("-inf")])
    for _ in range(3):
        after_run.after_script_run()
    assert collections == [1000.0]
    clock[0] += after_run.FULL_COLLECTION_EVERY_S - 0.5
    after_run.after_script_run()
    assert collections == [1000.0]
    clock[0] += 1.0
    after_run.after_script_run()
    after_run.after_script_run()
    assert collections == [1000.0, clock[0]]


def test_a_streamlit_without_the_hook_is_reported_once(monkeypatch, caplog):
    monkeypatch.delattr(script_runner, "_clean_problem_modules")
    monkeypatch.setattr(after_run, "_warned", [])
    with caplog.at_level("WARNING", logger="dashboard.after_run"):
        assert after_run.install() is False
        assert after_run.install() is False
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "was not replaced" in caplog.records[0].getMessage()

"""progress.json of a running `train` (pipeline.run_progress) and the Overview's progress bar."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from streamlit.testing.v1 import AppTest
from synthetic_run import write_synthetic_run

from pipeline import results, run_progress

APP = str(REPO / "dashboard" / "app.py")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_progress_file_follows_the_stages_log_and_end(tmp_path):
    ticks = iter(range(1000))
    pf = run_progress.ProgressFile(tmp_path, min_interval=10, clock=lambda: next(ticks))
    status = run_progress.read_status(tmp_path)
    assert status.status == "running" and status.active and status.pid == os.getpid() and status.stage is None
    pf("train spectrum", 0, 10)
    pf("train spectrum", 3, 10)  # within min_interval of the stage's first write: not written yet
    assert run_progress.read_status(tmp_path).done == 0
    pf("train spectrum", 10, 10)  # the end of a stage is always written
    status = run_progress.read_status(tmp_path)
    assert (status.stage, status.done, status.total, status.fraction) == ("train spectrum", 10, 10, 1.0)
    for i in range(run_progress.LOG_LINES + 5):
        pf.log(f"line {i}")
    status = run_progress.read_status(tmp_path)
    assert len(status.log) == run_progress.LOG_LINES and status.log[-1] == f"line {run_progress.LOG_LINES + 4}"
    pf.finish("failed", "disk full")
    status = run_progress.read_status(tmp_path)
    assert (status.status, status.message, status.active) == ("failed", "disk full", False)


def test_a_running_file_whose_process_is_gone_reads_as_stopped(tmp_path):
    path = run_progress.progress_path(tmp_path)
    path.write_text(json.dumps({"status": "running", "stage": "x", "done": 1, "total": 2, "pid": _dead_pid()}))
    assert run_progress.read_status(tmp_path).status == "stopped"
    path.write_text("{not json")
    assert run_progress.read_status(tmp_path) is None
    assert run_progress.read_status(tmp_path / "missing") is None


def test_tee_calls_each_progress_function():
    seen_a, seen_b = [], []
    both = run_progress.tee(lambda *a: seen_a.append(a), None, lambda *a: seen_b.append(a))
    both("s", 1, 2)
    assert seen_a == seen_b == [("s", 1, 2)]


def _write(root: Path, **state) -> None:
    run_progress.progress_path(root).write_text(json.dumps(state))


def test_overview_shows_a_running_training_and_its_log(monkeypatch, tmp_path):
    write_synthetic_run(tmp_path, seed=1)
    _write(tmp_path, status="running", stage="spectrum: train", done=3, total=12, pid=os.getpid(),
           log=["run x: 100 images", "baseline_cnn: test accuracy 0.700, AUC 0.6, trained in 5s"])
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Training in progress" in m.value for m in at.markdown)
    assert any("Latest: baseline_cnn: test accuracy 0.700" in c.value for c in at.caption)
    assert "spectrum: train: 3 / 12" in str(at.get("progress")[0].proto)

    # A fresh session each time: the run's label in the sidebar changes with its state (training, then
    # stopped), and AppTest replays a selectbox by its old label (a real browser sends the index).
    _write(tmp_path, status="failed", message="no space left on device", pid=os.getpid())
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any("no space left on device" in e.value for e in at.error)
    _write(tmp_path, status="complete", pid=os.getpid())
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.error and not any("Training in progress" in m.value for m in at.markdown)


def test_the_start_page_shows_the_first_runs_progress(monkeypatch, tmp_path):
    _write(tmp_path, status="running", stage="checking images", done=5, total=60, pid=os.getpid())
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Training in progress" in m.value for m in at.markdown)
    assert "checking images: 5 / 60" in str(at.get("progress")[0].proto)


def test_models_are_loaded_once_per_server_in_the_background(monkeypatch, tiny_run):
    """Visiting Check starts loading the run's models in a thread (the page does not wait for them);
    the other pages do not load them; Check then reuses them."""
    import threading

    import streamlit as st

    from pipeline import detectors

    calls = []
    real = detectors.load
    monkeypatch.setattr(detectors, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    from dashboard import common

    st.cache_resource.clear()
    common._WARMED.clear()  # a fresh server: earlier tests of this process may have warmed this run
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tiny_run.parent))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("app_pages/compare.py").run()
    assert not [t for t in threading.enumerate() if t.name == "deepfake-lens-warm-up"] and not calls
    at.switch_page("app_pages/check.py").run()
    assert not at.exception, [e.value for e in at.exception]
    for thread in [t for t in threading.enumerate() if t.name == "deepfake-lens-warm-up"]:
        thread.join(timeout=120)
    assert sorted(c[1] for c in calls) == ["baseline_cnn", "custom_cnn"]  # each model once
    at.switch_page("app_pages/check.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("app_pages/explain.py").run()  # one model for its maps: the same loaded object
    assert not at.exception, [e.value for e in at.exception]
    assert len(calls) == 2

"""Run discovery: a run whose run.json says "running" but whose process is gone (crashed or killed) is
shown as stopped and never preferred over a complete run or one that is really training."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline import results, run_progress, store
from synthetic_run import write_synthetic_run


def _set(run_dir: Path, **fields) -> None:
    path = run_dir / store.RUN_JSON
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


@pytest.fixture()
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _runs(root: Path, n: int) -> list[Path]:
    """``n`` synthetic runs, oldest first (one month apart)."""
    return [write_synthetic_run(root, seed=i, name=f"cfg{i}", created=datetime(2025, 1 + i, 1, tzinfo=timezone.utc))
            for i in range(n)]


def test_a_crashed_run_is_stopped_and_not_preferred(tmp_path, dead_pid):
    old, new = _runs(tmp_path, 2)
    _set(old, status="complete")
    _set(new, status="running", pid=dead_pid)  # newest, but its train crashed
    by_id = {r.run_id: r for r in results.list_runs(tmp_path)}
    assert by_id[new.name].state == "stopped" and by_id[old.name].state == "complete"
    assert "stopped (crashed or killed)" in by_id[new.name].label
    assert "stopped" not in by_id[old.name].label
    assert results.latest_run(tmp_path).run_id == old.name


def test_a_run_in_progress_beats_a_dead_one_but_not_a_complete_one(tmp_path, dead_pid):
    import os

    complete, alive, dead = _runs(tmp_path, 3)
    _set(alive, status="running", pid=os.getpid())  # this test's process: alive
    _set(dead, status="running", pid=dead_pid)
    assert results.info_at(alive).state == "running" and "training" in results.info_at(alive).label
    assert results.latest_run(tmp_path).run_id == alive.name  # the oldest run has no pid and no training: stopped
    _set(complete, status="complete")
    assert results.latest_run(tmp_path).run_id == complete.name  # complete first, though it is the oldest
    _set(complete, status="running", pid=dead_pid)
    assert results.latest_run(tmp_path).run_id == alive.name  # then the one really training, over a newer dead one


def test_only_dead_runs_still_show_the_newest(tmp_path, dead_pid):
    old, new = _runs(tmp_path, 2)
    for run_dir in (old, new):
        _set(run_dir, status="running", pid=dead_pid)
    assert results.latest_run(tmp_path).run_id == new.name


def test_a_run_without_a_pid_follows_the_training_of_its_folder(tmp_path, dead_pid):
    (run_dir,) = _runs(tmp_path, 1)  # run.json of an older version: status running, no pid
    assert results.info_at(run_dir).state == "stopped"  # no training at all in the folder
    progress = run_progress.ProgressFile(tmp_path)  # this process trains in the folder
    assert results.info_at(run_dir).state == "running"
    progress.finish("complete")
    assert results.info_at(run_dir).state == "stopped"


def test_a_pid_of_another_host_cannot_be_checked(tmp_path, dead_pid):
    (run_dir,) = _runs(tmp_path, 1)
    _set(run_dir, status="running", pid=dead_pid, host="some-other-machine")
    assert results.info_at(run_dir).state == "running"


def test_the_dashboard_shows_a_dead_run_as_stopped(monkeypatch, tmp_path, dead_pid):
    from streamlit.testing.v1 import AppTest

    old, new = _runs(tmp_path, 2)
    _set(old, status="complete")
    _set(new, status="running", pid=dead_pid)
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")
    at = AppTest.from_file(str(results.REPO_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sel = at.sidebar.selectbox(key="run_id")
    assert sel.value == old.name  # the complete run is picked, not the newer crashed one
    labels = {o.split(" · ")[0]: o for o in sel.options}
    assert labels[new.name].endswith("stopped (crashed or killed)")
    sel.set_value(new.name).run()
    assert any("stopped (crashed or killed)" in c.value for c in at.caption)


def test_train_records_its_process(tiny_run):
    import os

    data = json.loads((tiny_run / store.RUN_JSON).read_text())
    assert data["pid"] == os.getpid() and data["host"]
    assert results.info_at(tiny_run).state == "complete"

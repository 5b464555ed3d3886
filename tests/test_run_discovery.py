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


def _with_clip_model(run_dir: Path, version: int | None) -> None:
    """Give a synthetic run a CLIP model (kind clip_linear) in its config and record ``version`` (None: the
    field absent, as in runs made before it was recorded)."""
    data = json.loads((run_dir / store.RUN_JSON).read_text())
    data["config"]["models"].append({"name": "clip", "kind": "clip_linear"})
    data.pop("clip_embeddings", None)
    if version is not None:
        data["clip_embeddings"] = version
    (run_dir / store.RUN_JSON).write_text(json.dumps(data))


def test_runs_fitted_on_old_clip_embeddings_are_marked_in_info_and_on_every_page(monkeypatch, tmp_path, capsys):
    """Runs made before the int8 fix (no clip_embeddings in run.json, or another version) hold CLIP heads
    that may be at chance on CPUs without VNNI: `info`, the run selector and the pages say so and how to
    retrain; a run made today and a run without CLIP models are not marked."""
    from streamlit.testing.v1 import AppTest

    from pipeline.__main__ import main
    from pipeline.config import CLIP_EMBEDDINGS_VERSION

    no_clip, unrecorded, older, today = _runs(tmp_path, 4)
    _with_clip_model(unrecorded, None)
    _with_clip_model(older, CLIP_EMBEDDINGS_VERSION - 1)
    _with_clip_model(today, CLIP_EMBEDDINGS_VERSION)
    by_id = {r.run_id: r for r in results.list_runs(tmp_path)}
    marked = {rid for rid, info in by_id.items() if info.warnings}
    assert marked == {unrecorded.name, older.name}
    for rid in marked:
        assert "old CLIP embeddings" in by_id[rid].label
        assert "python -m pipeline train --config" in by_id[rid].warnings[0]
    assert "CLIP" not in by_id[today.name].label + by_id[no_clip.name].label

    assert main(["info", "--artifacts", str(tmp_path), "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert {rid for rid, r in listed.items() if r.get("warnings")} == marked
    assert main(["info", "--artifacts", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("WARNING: its CLIP models (clip)") == 2

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")
    at = AppTest.from_file(str(results.REPO_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="run_id").value == today.name
    assert not any("CLIP embeddings" in w.value for w in at.warning)
    at.sidebar.selectbox(key="run_id").set_value(unrecorded.name).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("CLIP embeddings made before the int8 fix" in w.value for w in at.warning)

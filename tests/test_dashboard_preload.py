"""dashboard.common.preload: the background import and trust table start from the second page run on."""
from __future__ import annotations

from types import SimpleNamespace

from dashboard import common


def test_preload_waits_for_the_second_page_run_and_runs_once(monkeypatch, tmp_path):
    started = []

    class Inline:  # runs the thread's target at once, so the test sees what it did
        def __init__(self, target, name=None, daemon=None):
            self.target = target

        def start(self):
            started.append(True)
            self.target()

    computed = []
    monkeypatch.setattr(common.threading, "Thread", Inline)
    monkeypatch.setattr(common, "trust_table", lambda run: computed.append(run))
    monkeypatch.setattr(common, "_PAGE_RUNS", {})
    monkeypatch.setattr(common, "_PRELOADED", set())
    monkeypatch.delenv("DEEPFAKE_LENS_WARM_UP", raising=False)
    run = SimpleNamespace(path=tmp_path / "run-a", run_id="run-a")
    common.preload(run)  # the first page: its browser is still drawing it
    assert started == [] and computed == []
    common.preload(run)  # the second page run: the preload starts
    assert started == [True] and computed == [run]
    common.preload(run)  # and only once per process and run
    assert started == [True]
    other = SimpleNamespace(path=tmp_path / "run-b", run_id="run-b")
    common.preload(other)
    assert started == [True]  # another run also waits for its own second page run


def test_preload_is_off_with_warm_up_0(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(common.threading, "Thread", lambda **kw: SimpleNamespace(start=lambda: started.append(1)))
    monkeypatch.setattr(common, "_PAGE_RUNS", {})
    monkeypatch.setattr(common, "_PRELOADED", set())
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")
    run = SimpleNamespace(path=tmp_path / "run", run_id="run")
    for _ in range(3):
        common.preload(run)
    assert started == []

"""Load: 8 dashboard sessions check images at the same time against the real server.

A Streamlit session is a websocket driven by the page's JavaScript, so each session here is a real
headless chromium tab on the "Check an image" page (selenium; one thread per browser). To fit 2
CPU cores shared with the server, the default is 4 browsers x 2 tabs (every tab is its own
Streamlit session: its own websocket and session state). All sessions finish loading the page, then
start together; each uploads ``PER_SESSION`` different photos one after another (the next as soon as
the previous verdict is on screen) and waits for that photo's verdict. Bounded: 8 x 2 = 16 uploads
and a hard time limit. The server is fresh, so the first uploads of all 8 sessions also race for
the model load.

Asserted: 0 errors (every upload gets a verdict, no exception box or traceback anywhere), the run's
models are loaded once in the server process although 8 sessions asked for them at the same moment
(``st.cache_resource`` in dashboard/common.py; counted by the instrumented launcher in
tests/server.py), the server is still healthy, and its peak RSS (VmHWM) stays under a bound.
p50/p95 time-to-verdict and the peak RSS are printed (bench/bench_load.py records them).

Environment knobs: ``DEEPFAKE_LENS_LOAD_SESSIONS`` (8), ``DEEPFAKE_LENS_LOAD_TABS`` (sessions per
browser, 2; 1 = one chromium per session), ``DEEPFAKE_LENS_LOAD_PER_SESSION`` (2),
``DEEPFAKE_LENS_LOAD_LIMIT`` (seconds, 240: generous because the 2 cores are often shared; the
printed "server CPU s" is the demand independent of contention). ``bench/bench_load.py`` runs the same driver with
other sizes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import REPO
from server import StreamlitServer, browser_missing, load_images, run_load

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SESSIONS = int(os.environ.get("DEEPFAKE_LENS_LOAD_SESSIONS", "8"))
TABS = int(os.environ.get("DEEPFAKE_LENS_LOAD_TABS", "2"))
PER_SESSION = int(os.environ.get("DEEPFAKE_LENS_LOAD_PER_SESSION", "2"))
TIME_LIMIT = float(os.environ.get("DEEPFAKE_LENS_LOAD_LIMIT", "240"))
PEAK_RSS_LIMIT_MB = 3072  # the server with TensorFlow, 2 small CNNs and MTCNN is about 1 GB


def test_eight_sessions_check_images_at_once(request, tmp_path, capsys):
    why = browser_missing()
    if why:
        pytest.skip(why)  # before training the tiny run
    tiny_run = request.getfixturevalue("tiny_run")
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    images = load_images(SESSIONS, PER_SESSION, tmp_path / "images")
    for old in (out / "screenshots").glob("load-*.png"):
        old.unlink()
    t0 = time.perf_counter()
    with StreamlitServer(Path(tiny_run).parent, count_loads=True, log_path=out / "streamlit-load.log") as server:
        print(f"\nstreamlit pid {server.pid} at {server.url}; {SESSIONS} sessions x {PER_SESSION} uploads, "
              f"{TABS} tab(s) per browser, limit {TIME_LIMIT:.0f} s")
        result = run_load(server.url, images, tabs_per_browser=TABS, time_limit=TIME_LIMIT,
                          shots=out / "screenshots")
        result.peak_rss_mb = server.peak_rss_mb()
        result.server_cpu_s = server.cpu_seconds()
        result.model_loads = server.model_loads()
        alive, healthy = server.alive(), server.healthy()
        tracebacks = server.tracebacks()
    total = time.perf_counter() - t0
    row = result.row()
    with capsys.disabled():  # CI's log keeps the numbers even when the test passes
        print("\nload result: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in row.items()))
        print(f"model loads in the server: {result.model_loads}")
        print(f"test wall time {total:.1f} s (server log {out / 'streamlit-load.log'})", flush=True)

    failures = [r for r in result.requests if r.error] + result.session_errors
    assert not failures, f"{len(failures)} error(s):\n" + "\n".join(map(str, failures))
    assert len(result.requests) == SESSIONS * PER_SESSION
    assert all(r.verdict in ("real", "fake") for r in result.requests)
    assert alive and healthy, "the server died or stopped answering under load"
    assert not tracebacks, tracebacks
    loads = [line.split(" models=")[1].split()[0] for line in result.model_loads.get("run_models", [])]
    assert loads and len(loads) == len(set(loads)), f"a model was loaded more than once in one process: {loads}"
    assert len(result.model_loads.get("face_detector", [])) <= 1, result.model_loads
    assert result.peak_rss_mb is not None and result.peak_rss_mb < PEAK_RSS_LIMIT_MB, result.peak_rss_mb
    assert result.wall_s < TIME_LIMIT + 30

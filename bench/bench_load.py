"""Load benchmark of the dashboard: N simultaneous sessions on "Check an image", each uploading
photos and waiting for the verdicts, against a fresh ``streamlit run dashboard/app.py`` on 127.0.0.1.
Writes the "load" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_load.py [--sessions 8] [--per-session 3] [--tabs 1] [--time-limit 300]
                                         [--artifacts DIR | --tiny] [--no-write]

Each session is a real headless chromium tab (Debian's /usr/bin/chromium through selenium; a
Streamlit session is a websocket driven by the page's JavaScript). ``--tabs 2`` puts two sessions in
each browser (each tab still is its own Streamlit session) to spare CPU. Every upload is a different
photo (faces from ../shared/data, else synthetic), so no verdict comes from a cache. Time-to-verdict
runs from choosing the file in the browser to that file's verdict on screen; it includes the cold
start (TensorFlow import, model and face-detector load) for the first uploads of a fresh server.

``--artifacts``: the artifacts folder the server reads (default ``$DEEPFAKE_LENS_ARTIFACTS`` or
``artifacts/``; the newest run with a finished model is what the check page uses). ``--tiny``:
train the two-small-CNN synthetic run of the tests into a temporary folder first (about 1.5 min).
The shared driver lives in ``tests/server.py`` (also used by ``tests/test_load.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import REPO, markdown_table, write_section  # noqa: E402
from server import StreamlitServer, browser_missing, load_images, run_load  # noqa: E402

COLUMNS = ["sessions", "browsers", "requests", "errors", "p50 s", "p95 s", "max s", "wall s",
           "server CPU s", "server peak RSS MB", "model loads"]


def tiny_artifacts(folder: Path) -> Path:
    """The tests' tiny run (synthetic faces, baseline_cnn + custom_cnn at 32 px) trained into ``folder``."""
    import conftest
    from pipeline import config_load, runner

    data = folder / "faces"
    conftest.make_labelled_folder(data / "alpha", n_per_class=40, seed=1)
    conftest.make_split_folder(data / "beta", counts=(24, 8, 8), seed=2)
    cfg = config_load.from_dict({
        "name": "tiny", "data": [str(data)], "seed": 7, "artifacts_dir": str(folder / "artifacts"),
        "augmentation": {"flip": True, "shift": 0.0, "zoom": 0.0, "brightness": 0.0},
        "training": {"batch_size": 16, "epochs": 4, "learning_rate": 3e-3, "early_stopping_patience": 0},
        "models": [{"name": "baseline_cnn", "image_size": 32}, {"name": "custom_cnn", "image_size": 32}],
    })
    return Path(runner.train_run(cfg, log=lambda _: None)).parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--per-session", type=int, default=3, help="photos each session uploads, one after another")
    ap.add_argument("--tabs", type=int, default=1, help="sessions per browser (tabs)")
    ap.add_argument("--time-limit", type=float, default=300.0, help="hard limit for the whole load, seconds")
    ap.add_argument("--artifacts", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="train the tests' tiny run into a temp folder and use it")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    args = ap.parse_args(argv)

    why = browser_missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    if args.tiny:
        t = time.perf_counter()
        artifacts = tiny_artifacts(tmp)
        print(f"trained the tiny run in {time.perf_counter() - t:.0f} s")
    else:
        from pipeline import results

        artifacts = args.artifacts or results.artifacts_dir()
    from pipeline import results

    runs = results.list_runs(artifacts)
    run = next((r for r in runs if r.complete_models), None)
    if run is None:
        print(f"no run with a finished model in {artifacts}: use --tiny or --artifacts", file=sys.stderr)
        return 2

    images = load_images(args.sessions, args.per_session, tmp / "images")
    log_path = REPO / "bench" / "out" / "streamlit-load.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_avg = os.getloadavg()[0]
    with StreamlitServer(artifacts, count_loads=True, log_path=log_path) as server:
        print(f"streamlit pid {server.pid} at {server.url} (healthy after {server.started_s:.1f} s); "
              f"run {run.run_id}: {', '.join(run.complete_models)}; {args.sessions} sessions x "
              f"{args.per_session} uploads, {args.tabs} tab(s) per browser; 1-min load average {load_avg:.1f}")
        res = run_load(server.url, images, tabs_per_browser=args.tabs, time_limit=args.time_limit)
        res.peak_rss_mb = server.peak_rss_mb()
        res.server_cpu_s = server.cpu_seconds()
        res.model_loads = server.model_loads()
        healthy = server.alive() and server.healthy()
        tracebacks = server.tracebacks()
    row = res.row()
    table = markdown_table([row], COLUMNS)
    print()
    print(table)
    for err in [r for r in res.requests if r.error] + res.session_errors:
        print(f"error: {err}")
    print(f"server healthy after the load: {healthy}; tracebacks in its log: {len(tracebacks)}; "
          f"model loads: {res.model_loads}")

    if not args.no_write:
        body = (f"{args.sessions} simultaneous dashboard sessions on *Check an image* (headless chromium, "
                f"{args.tabs} session(s) per browser, {res.browsers} browser(s) on the same machine as the server), "
                f"each uploading {args.per_session} different face photos one after another; run `{run.run_id}` "
                f"({', '.join(run.complete_models)}); fresh server, so the first uploads include the cold start. "
                f"Latency = file chosen in the browser -> its verdict on screen. Peak memory = VmHWM of the "
                f"streamlit process; server CPU s = its user+system CPU time (start included), the demand "
                f"independent of how busy the machine was. 1-min load average before the run: {load_avg:.1f} "
                f"(the machine is shared).\n\n{table}\n\n"
                f"Models loaded {len(res.model_loads.get('run_models', []))} time(s) in the server process "
                f"(st.cache_resource); face detector built {len(res.model_loads.get('face_detector', []))} time(s). "
                f"Command: `python bench/bench_load.py --sessions {args.sessions} --per-session {args.per_session} "
                f"--tabs {args.tabs}`.")
        write_section("load", "Dashboard under load (simultaneous check sessions)", body)
        print(f"wrote the 'load' section of {REPO / 'BENCHMARKS.md'}")
    return 0 if res.errors == 0 and healthy else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load benchmark of the dashboard: N simultaneous sessions on "Check an image", each uploading
photos and waiting for the verdicts, against a fresh server (``python -m dashboard.serve``) on 127.0.0.1.
Writes the "load" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_load.py [--sessions 8] [--per-session 3] [--tabs 1] [--time-limit 300]
                                         [--artifacts DIR | --tiny] [--modes fresh in-use] [--no-write]

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
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import REPO, markdown_table, write_section  # noqa: E402
from server import StreamlitServer, browser_missing, load_images, machine_cpu_seconds, run_load  # noqa: E402

MODES = {
    "fresh": "the sessions are the server's first visitors, so the first uploads include the cold start "
             "(TensorFlow's import, loading and tracing the models)",
    "in-use": "one other session checked one photo before the load (models loaded and traced)",
}
COLUMNS = ["server", "sessions", "browsers", "requests", "errors", "p50 s", "p95 s", "max s", "wall s",
           "server CPU s", "other CPU s", "server peak RSS MB", "model loads", "load avg"]


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
    ap.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES),
                    help="one fresh server per mode: " + "; ".join(f"'{k}' = {v}" for k, v in MODES.items()))
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

    images = load_images(args.sessions + 1, args.per_session, tmp / "images")
    warm_image, images = images[-1][:1], images[:-1]
    log_path = REPO / "bench" / "out" / "streamlit-load.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rows, failed, notes = [], False, []
    for mode in args.modes:
        load_avg = os.getloadavg()[0]
        machine0 = machine_cpu_seconds()
        with StreamlitServer(artifacts, count_loads=True, log_path=log_path) as server:
            print(f"[{mode}] streamlit pid {server.pid} at {server.url} (healthy after {server.started_s:.1f} s); "
                  f"run {run.run_id}: {', '.join(run.complete_models)}; {args.sessions} sessions x "
                  f"{args.per_session} uploads, {args.tabs} tab(s) per browser; 1-min load average {load_avg:.1f}")
            if mode != "fresh":
                warm = run_load(server.url, [warm_image], time_limit=args.time_limit, log=lambda _: None)
                print(f"one session checked {warm_image[0].name} first ({warm.wall_s:.1f} s, {warm.errors} error(s))")
            res = run_load(server.url, images, tabs_per_browser=args.tabs, time_limit=args.time_limit)
            res.peak_rss_mb = server.peak_rss_mb()
            res.server_cpu_s = server.cpu_seconds()
            machine1 = machine_cpu_seconds()
            res.machine_cpu_s = machine1 - machine0 if machine0 is not None and machine1 is not None else None
            res.model_loads = server.model_loads()
            healthy = server.alive() and server.healthy()
            tracebacks = server.tracebacks()
        rows.append({"server": mode, **res.row(), "load avg": round(load_avg, 1)})
        for err in [r for r in res.requests if r.error] + res.session_errors:
            print(f"error: {err}")
        print(f"server healthy after the load: {healthy}; tracebacks in its log: {len(tracebacks)}; "
              f"model loads: {res.model_loads}")
        loads = [m for line in res.model_loads.get("run_models", []) for m in re.findall(r"models=(\S+)", line)]
        notes.append(f"{mode}: {len(loads)} model loads for {len(set(loads))} models"
                     f"{' (each loaded once, st.cache_resource)' if len(loads) == len(set(loads)) else ''}, "
                     f"face detector built {len(res.model_loads.get('face_detector', []))} time(s)")
        failed |= res.errors > 0 or not healthy
    table = markdown_table(rows, COLUMNS)
    print()
    print(table)

    if not args.no_write:
        body = (f"{args.sessions} simultaneous dashboard sessions on *Check an image* (headless chromium, "
                f"{args.tabs} session(s) per browser, {rows[0]['browsers']} browser(s) on the same 2 cores as the "
                f"server), each uploading {args.per_session} different face photos one after another; run "
                f"`{run.run_id}` ({', '.join(run.complete_models)}). Each row is a fresh server: "
                + "; ".join(f"*{m}* = {MODES[m]}" for m in args.modes) + ". "
                f"Latency = file chosen in the browser -> its verdict on "
                f"screen. Peak memory = VmHWM of the streamlit process; server CPU s = its user+system CPU time "
                f"(start included), the demand independent of how busy the machine was; other CPU s = the CPU "
                f"time of every other process over the same time (/proc/stat): the headless browsers, their "
                f"drivers and anything else running. Load avg = the 1-minute load average before the row (the "
                f"machine is shared).\n\n{table}\n\n{'; '.join(notes)}. Command: `python bench/bench_load.py "
                f"--sessions {args.sessions} --per-session {args.per_session} --tabs {args.tabs}`.")
        write_section("load", "Dashboard under load (simultaneous check sessions)", body)
        print(f"wrote the 'load' section of {REPO / 'BENCHMARKS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

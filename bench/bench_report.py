"""Benchmark of the run report: build time and file size of ``python -m pipeline report`` on a run.
Writes the "report" section of BENCHMARKS.md (goals: <= 20 s to build, <= 15 MB).

    .venv/bin/python bench/bench_report.py [--run RUN] [--artifacts DIR] [--repeats 3] [--no-write]

Two times: ``cold CLI s``, the wall time of a fresh ``python -m pipeline report`` process (Python
start-up and imports included, as a user meets it), and ``build s``, the median over ``--repeats``
in-process builds of :func:`pipeline.report.build_run_report` (pandas, plotly and sklearn already
imported). The report is written to a temporary folder, never into the run. The size is split into
plotly.js (inlined once), the inline images and the rest (figure data, tables, text).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table, write_section  # noqa: E402

COLUMNS = ["run", "models", "test images", "cold CLI s", "build s", "size MB", "plotly.js MB", "images MB",
           "figures", "images", "model cards s"]


def measure(run_ref: str | None, artifacts: str | None, repeats: int) -> dict:
    import re

    from pipeline.report import build_run_report, write_model_cards
    from pipeline.report.render import plotly_js
    from pipeline.results import load_run

    if artifacts:
        os.environ["DEEPFAKE_LENS_ARTIFACTS"] = str(Path(artifacts).resolve())
    run = load_run(run_ref)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        cmd = [sys.executable, "-m", "pipeline", "report", "--run", str(run.path), "--out", str(out), "--quiet"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        cold = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"report failed: {done.stderr}")
        times, text = [], ""
        for _ in range(repeats):
            t0 = time.perf_counter()
            text = build_run_report(run)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        write_model_cards(run, Path(tmp) / "cards")
        cards = time.perf_counter() - t0
        size = out.stat().st_size
    uris = re.findall(r'src="(data:image/[^"]+)"', text)
    experiments = [n for n in ("robustness", "crossdataset") if (run.path / "experiments" / n).is_dir()]
    about = (f"config `{run.info.config_name}`, {len(run.manifest()):,} images in {len(run.datasets())} datasets, "
             f"{len(run.models())} finished models, experiments: {', '.join(experiments) or 'none'}; "
             f"load average {os.getloadavg()[0]:.1f} on the machine when measured")
    n_test = int(run.counts().query("split == 'test'")["n"].sum())
    return {"run": run.run_id, "models": len(run.models()), "test images": n_test, "cold CLI s": round(cold, 2),
            "build s": round(statistics.median(times), 2), "size MB": round(size / 2**20, 2),
            "plotly.js MB": round(len(plotly_js().encode()) / 2**20, 2),
            "images MB": round(sum(len(u) for u in uris) / 2**20, 2),
            "figures": text.count('class="plotly-graph-div"'), "images": len(uris), "model cards s": round(cards, 2),
            "about": about}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="run id, prefix or folder (default: the newest run)")
    ap.add_argument("--artifacts", help="artifacts folder (default: $DEEPFAKE_LENS_ARTIFACTS or artifacts/)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    row = measure(args.run, args.artifacts, max(1, args.repeats))
    table = markdown_table([row], COLUMNS)
    print(table)
    if not args.no_write:
        where = args.artifacts or os.environ.get("DEEPFAKE_LENS_ARTIFACTS") or "artifacts/"
        write_section("report", "Run report (`python -m pipeline report`)",
                      f"`.venv/bin/python bench/bench_report.py --artifacts {where} --run {row['run']}`\n\n"
                      f"Run: {row['run']} ({row['about']}).\n\n{table}\n\n"
                      "Goals: build <= 20 s, file <= 15 MB. `cold CLI s`: a fresh `python -m pipeline report` "
                      "process (start-up and imports included); `build s`: median in-process build. plotly.js is "
                      "inlined once; images are JPEG thumbnails (112-128 px).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

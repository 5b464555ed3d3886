"""First visit to every dashboard page and the server's memory afterwards, on a fresh server.

    .venv/bin/python bench/bench_pages.py [--artifacts DIR] [--out FILE] [--floor]

Starts the dashboard (``python -m dashboard.serve``) on 127.0.0.1 (``tests/server.py``), opens one headless
chromium (Debian's /usr/bin/chromium through selenium) at 1280x800 and loads every page of the
sidebar once, in sidebar order, by its URL (a new Streamlit session per load, like a user who opens
a link). Time to first render = from the page request until the script has finished and no spinner
or skeleton is left (``Browser.wait_idle``); ``load`` is the 1-minute load average as the page was
requested (the cores may be shared). After the last page the resident memory (VmRSS) and
the peak (VmHWM) of the server process are read from /proc.

It also lists every resource the browser fetched (``performance.getEntriesByType('resource')``,
fonts, images and scripts included): any that left 127.0.0.1 is printed as "external".

The server is started as ``scripts/run.sh`` starts it (``python -m dashboard.serve``: a warm start
first). The time includes the harness's own wait: the page must stay idle for 0.6 s and is polled
every 0.15 s. ``--floor`` first measures the same first visit of three two-line Streamlit apps on a
fresh server each (an empty page, one plotly bar chart, one dataframe): what Streamlit and the
browser cost on this machine before any page of ours (plotly's and the data grid's front-end code is
fetched and compiled by the browser on the first page that shows one).

Prints a table (page, seconds, tracebacks) and a summary line; writes nothing to BENCHMARKS.md
(the numbers go into its "Dashboard speed and memory, wave 2" section by hand, with the load
average). The artifacts folder must not be the read-only shared run when a page writes a cache
(Explain's LIME cache is written into the run folder): point ``--artifacts`` at a copy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import markdown_table  # noqa: E402
from server import Browser, StreamlitServer, browser_missing  # noqa: E402

EXTERNAL_JS = ("return performance.getEntriesByType('resource').map(e => e.name)"
               ".filter(u => !/^(https?|wss?):\\/\\/(127\\.0\\.0\\.1|localhost)(:|\\/)/.test(u) && !/^(data|blob):/.test(u));")


def visit_pages(url: str, width: int = 1280, height: int = 800, timeout: float = 180) -> tuple[list[dict], list[str]]:
    """Load every sidebar page once; rows of (page, seconds, problems) and the external resources seen."""
    rows, external = [], []
    with Browser(width, height) as b:
        load_first = os.getloadavg()[0]
        t0 = time.perf_counter()
        b.driver.get(url)
        b.wait_idle(timeout)
        first = time.perf_counter() - t0
        pages = b.sidebar_pages()
        external += b.driver.execute_script(EXTERNAL_JS)
        for i, (title, href) in enumerate(pages):
            if i == 0:
                seconds, load = first, load_first  # the default page was just loaded as the server's first visit
            else:
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                b.driver.get(href)
                try:
                    b.wait_idle(timeout)
                    seconds = time.perf_counter() - t0
                except TimeoutError:
                    seconds = float("nan")
            external += b.driver.execute_script(EXTERNAL_JS)
            rows.append({"page": title, "first render s": round(seconds, 2), "load": round(load, 2),
                         "problems": "; ".join(p[:120] for p in b.problems()) or ""})
    return rows, sorted(set(external))


FLOOR_APPS = {
    "empty page (title and text)": "import streamlit as st\nst.title('Floor')\nst.write('text')\n",
    "one plotly bar chart": ("import plotly.graph_objects as go\nimport streamlit as st\nst.title('Floor')\n"
                             "st.plotly_chart(go.Figure(go.Bar(x=[1, 2], y=[3, 4])))\n"),
    "one dataframe": ("import pandas as pd\nimport streamlit as st\nst.title('Floor')\n"
                      "st.dataframe(pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']}))\n"),
}


def floor(folder: Path, repeats: int = 2, timeout: float = 120) -> list[dict]:
    """First visit (s) of each :data:`FLOOR_APPS` app in a new browser on a fresh server, ``repeats`` times."""
    rows = []
    for name, source in FLOOR_APPS.items():
        app = folder / f"floor_{len(rows)}.py"
        app.write_text(source)
        times = []
        for _ in range(repeats):
            with StreamlitServer(None, app=app) as server, Browser(1280, 800) as b:
                t0 = time.perf_counter()
                b.driver.get(server.url)
                b.wait_idle(timeout)
                times.append(round(time.perf_counter() - t0, 2))
        rows.append({"reference app": name, "first visit s": ", ".join(map(str, times))})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, default=None, help="artifacts folder the server reads")
    ap.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    ap.add_argument("--floor", action="store_true", help="first measure three two-line Streamlit apps (the floor)")
    args = ap.parse_args(argv)
    why = browser_missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    floor_rows = []
    if args.floor:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
            floor_rows = floor(Path(tmp))
        print(markdown_table(floor_rows, ["reference app", "first visit s"]) + "\n")
    from pipeline import results

    artifacts = args.artifacts or results.artifacts_dir()
    load_before = os.getloadavg()
    with StreamlitServer(artifacts) as server:
        rss_start = server.rss_mb()
        rows, external = visit_pages(server.url)
        time.sleep(1.0)
        rss_after, peak = server.rss_mb(), server.peak_rss_mb()
        tracebacks = server.tracebacks()
    load_after = os.getloadavg()
    print(markdown_table(rows, ["page", "first render s", "load", "problems"]))
    worst = max(rows, key=lambda r: r["first render s"] if r["first render s"] == r["first render s"] else 1e9)
    print(f"\nslowest first visit: {worst['page']} {worst['first render s']} s; server RSS at start "
          f"{rss_start:.0f} MB, after every page {rss_after:.0f} MB (peak {peak:.0f} MB); tracebacks in the log: "
          f"{len(tracebacks)}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("external requests:", external or "none")
    if args.out:
        args.out.write_text(json.dumps({"pages": rows, "floor": floor_rows, "rss_start_mb": rss_start, "rss_after_mb": rss_after,
                                        "peak_rss_mb": peak, "external": external, "tracebacks": len(tracebacks),
                                        "load_before": load_before, "load_after": load_after}, indent=1))
    return 0 if not tracebacks and not external else 1


if __name__ == "__main__":
    sys.exit(main())

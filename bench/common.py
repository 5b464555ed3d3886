"""Shared by the benchmark scripts: machine description and writing one section of BENCHMARKS.md.

Each script owns a section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and
replaces only that, so scripts can be rerun independently.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nMeasured by the scripts in `bench/`; each section says when and on what machine.\n"


def machine() -> str:
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()}, Python {platform.python_version()}"


def stamp() -> str:
    return f"_Measured {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}._"


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_(no rows)_"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def check_setup(run: str | None):
    """The run (``pipeline.results.load_run``: id, prefix, folder or None for the newest) and its loaded check
    setup (``pipeline.checking.load_check_setup``); exits with status 2 and says why when it has no verdict
    policy."""
    from pipeline import checking, results

    loaded = results.load_run(run)
    setup = checking.load_check_setup(loaded.path)
    if setup.policy is None:
        print("the run has no verdict policy:", "; ".join(setup.problems))
        raise SystemExit(2)
    return loaded, setup


def write_section(name: str, title: str, body: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    block = f"<!-- bench:{name} -->\n## {title}\n\n{stamp()}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = BENCHMARKS.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, BENCHMARKS)

"""Serve the dashboard: ``streamlit run dashboard/app.py`` after a warm start.

    python -m dashboard.serve [streamlit run options, e.g. --server.port 8501]

Streamlit runs the app's script only when a browser connects, so without this the first visitor waits
for everything the pages import (pandas, plotly and its first figures, the dashboard's modules, TensorFlow
and Keras for the Check and Explain pages) on top of the page itself. :func:`warm_start` imports
them once, before the server opens its port (about 10 s on 2 cores, 6 s of it TensorFlow; the server
then holds about 0.7 GB before the first visit instead of 0.1 GB). Measured in BENCHMARKS.md ("Eighth
pass"). ``DEEPFAKE_LENS_WARM_UP=0`` starts at once and imports on first use, like the background
model warm-up of ``dashboard.common`` that the same variable turns off.

Options after the module name go to ``streamlit run`` unchanged; ``.streamlit/config.toml`` of the
current folder applies as with ``streamlit run`` (run it from the repository root).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"

# Not imported ahead: scripts (the pages, the app itself) and this module.
_NOT_MODULES = {"app", "serve"}


def streamlit_argv(options: list[str]) -> list[str]:
    """The ``sys.argv`` that makes Streamlit's CLI run the dashboard with ``options`` (a list of str)."""
    return ["streamlit", "run", str(APP), *options]


def warm_start(tensorflow: bool = True) -> dict[str, float]:
    """Import what the pages need and build one plotly trace of each kind the figures draw.

    Returns the seconds each step took (``{"pandas": ..., "plotly": ..., "dashboard": ..., "tensorflow": ...}``).
    A step that fails is logged and skipped: the page that needs it reports the problem when visited.
    ``tensorflow=False`` leaves out TensorFlow and Keras (about 6 s and 0.6 GB here).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    steps = {"pandas": _pandas, "plotly": _plotly, "dashboard": _dashboard_modules}
    if tensorflow:
        steps["tensorflow"] = _tensorflow
    took = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a warm start must never stop the server from starting
            logging.getLogger(__name__).warning("warm start: %s failed: %s", name, exc)
        took[name] = time.perf_counter() - t0
    return took


def _pandas() -> None:
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401 - st.dataframe sends Arrow


def _plotly() -> None:
    import plotly.graph_objects as go
    import plotly.io

    # the first figure of each trace type and its JSON encoding cost more than later ones
    fig = go.Figure([go.Bar(x=[0], y=[0]), go.Scatter(x=[0], y=[0]), go.Heatmap(z=[[0]]),
                     go.Scatter3d(x=[0], y=[0], z=[0]), go.Histogram(x=[0]), go.Image(z=[[[0, 0, 0]]])])
    fig.update_layout(title="warm start", legend={"orientation": "h"})
    plotly.io.to_json(fig)


def _dashboard_modules() -> None:
    import streamlit.runtime.caching.cache_data_api  # noqa: F401 - its logger exists (and has its level) from here

    import dashboard

    # Their st.cache_data decorators check their settings against the runtime, which does not exist yet:
    # Streamlit logs "No runtime found" once per decorator. The caches themselves are looked up per call.
    quiet = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for info in pkgutil.iter_modules(dashboard.__path__):
            if info.name not in _NOT_MODULES and not info.ispkg:
                importlib.import_module(f"dashboard.{info.name}")
    finally:
        quiet.setLevel(level)
    for name in page_imports():
        importlib.import_module(name)
    import scipy.stats  # noqa: F401 - what dashboard.common's preload imports after the first page
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401


def page_imports(pages: Path = ROOT / "dashboard" / "app_pages") -> list[str]:
    """The ``pipeline`` modules the page scripts import at their top level (sorted, dotted names), read from
    their source with :mod:`ast` (the pages are scripts: importing them would run them)."""
    names = set()
    for path in sorted(pages.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipeline":
                names.update(f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                             for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.split(".")[0] == "pipeline")
    return sorted(names)


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:  # the parent is a module, not a package: ``dotted`` names something in it
        return False


def _tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401


def main(options: list[str] | None = None) -> None:
    """Warm start (unless ``DEEPFAKE_LENS_WARM_UP=0``), then Streamlit's own CLI with ``options``."""
    options = sys.argv[1:] if options is None else options
    if os.environ.get("DEEPFAKE_LENS_WARM_UP", "1") != "0":
        took = warm_start()
        print("Warm start: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
    from streamlit.web import cli

    sys.argv = streamlit_argv(options)
    cli.main()


if __name__ == "__main__":
    main()

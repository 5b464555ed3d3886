"""What reproduces a run, for the run report: its resolved config, the command, the training machine, the code
version (git commit) and the installed versions of the libraries that matter (read from package metadata:
nothing is imported)."""
from __future__ import annotations

import json
import platform
from typing import Any

import pandas as pd

from pipeline.report import render
from pipeline.results import Run

# packages whose versions reproduce a run (the runtime pins of requirements.txt, plus the report's own)
PACKAGES = ["tensorflow-cpu", "keras", "numpy", "pandas", "pyarrow", "pillow", "scikit-learn", "scikit-image",
            "plotly", "umap-learn", "lime", "tf-keras-vis", "keras-tuner", "streamlit", "mtcnn", "jinja2"]


def _git_commit() -> str | None:
    import subprocess

    from pipeline.results import REPO_ROOT

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> pd.DataFrame:
    """package, installed version (from package metadata: nothing is imported), for :data:`PACKAGES`."""
    from importlib import metadata

    rows = []
    for name in PACKAGES:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def reproduce_section(run: Run) -> dict[str, Any]:
    """The run's resolved config (JSON), the command, the training machine, the code version and the
    library versions of the environment that built this report."""
    from pipeline.results import REPO_ROOT

    name = run.info.config_name
    known = (REPO_ROOT / "configs" / f"{name}.toml").is_file()
    return {"config": json.dumps(run.config, indent=2, sort_keys=False, default=str),
            "command": f"python -m pipeline train --config {name}" if known else None, "config_name": name,
            "machine": run.run_json.get("machine"), "commit": _git_commit(),
            "python": platform.python_version(), "versions": render.table(library_versions(), "versions")}

"""The dashboard's launcher (``python -m dashboard.serve``): what it imports before the server opens, and
that it hands its options to ``streamlit run dashboard/app.py``. The browser tests start every server
through it (tests/server.py), so the served app is covered there."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from dashboard import serve


def test_options_go_to_streamlit_run_of_the_app():
    argv = serve.streamlit_argv(["--server.port", "8600", "--server.address", "0.0.0.0"])
    assert argv[:2] == ["streamlit", "run"]
    assert Path(argv[2]) == REPO / "dashboard" / "app.py" and Path(argv[2]).is_file()
    assert argv[3:] == ["--server.port", "8600", "--server.address", "0.0.0.0"]


def _in_fresh_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warm_start_imports_what_the_pages_need_before_the_first_visit():
    got = _in_fresh_python(
        "import json, sys\n"
        "from dashboard import serve\n"
        "took = serve.warm_start(tensorflow=False)\n"
        "print(json.dumps({'took': took, 'modules': [m for m in ('pandas', 'pyarrow', 'plotly.graph_objects',"
        " 'plotly.io', 'dashboard.common', 'dashboard.audit_panel', 'pipeline.figures',"
        " 'sklearn.metrics', 'tensorflow') if m in sys.modules]}))")
    assert set(got["took"]) == {"pandas", "plotly", "dashboard"}
    assert all(seconds >= 0 for seconds in got["took"].values())
    assert got["modules"] == ["pandas", "pyarrow", "plotly.graph_objects", "plotly.io",
                              "dashboard.common", "dashboard.audit_panel", "pipeline.figures", "sklearn.metrics"]


def test_a_failing_step_is_logged_and_the_others_still_run(monkeypatch, caplog):
    def broken():
        raise ImportError("no plotly here")

    monkeypatch.setattr(serve, "_plotly", broken)
    for step in ("_pandas", "_dashboard_modules", "_tensorflow"):  # the real imports are tested in a fresh python
        monkeypatch.setattr(serve, step, lambda: None)
    took = serve.warm_start()
    assert set(took) == {"pandas", "plotly", "dashboard", "tensorflow"}
    assert "warm start: plotly failed: no plotly here" in caplog.text


def test_warm_up_off_starts_streamlit_without_importing_ahead(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")
    got = _in_fresh_python(
        "import json, sys\n"
        "from streamlit.web import cli\n"
        "seen = {}\n"
        "cli.main = lambda: seen.update(argv=list(sys.argv), tf='tensorflow' in sys.modules,"
        " dash='dashboard.common' in sys.modules)\n"
        "from dashboard import serve\n"
        "serve.main(['--server.port', '8601'])\n"
        "print(json.dumps(seen))")
    assert got["argv"][1:] == ["run", str(REPO / "dashboard" / "app.py"), "--server.port", "8601"]
    assert not got["tf"] and not got["dash"]


def test_page_imports_are_the_pipeline_modules_a_page_script_imports_at_its_top(tmp_path):
    (tmp_path / "a.py").write_text(
        "import numpy as np\nimport pipeline.svm\nfrom pipeline import figures, results\n"
        "from pipeline.results import LABELS\nfrom dashboard import common\n"
        "def later():\n    from pipeline import explain_lime\n")
    (tmp_path / "b.py").write_text("from pipeline.video import scoring\n")
    assert serve.page_imports(tmp_path) == ["pipeline.figures", "pipeline.results", "pipeline.svm",
                                            "pipeline.video.scoring"]

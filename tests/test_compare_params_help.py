"""Compare's Parameters and File columns say what they count: a CLIP model's number is its fitted head (an SVM
head's support vectors: millions), never its frozen encoder (review6)."""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pipeline import results
from synthetic_run import write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def test_the_parameters_column_says_a_clip_count_is_its_head_not_its_encoder(monkeypatch, tmp_path):
    write_synthetic_run(tmp_path, seed=1)
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    columns = json.loads(at.dataframe[0].proto.columns)
    params, size = columns["params"]["help"], columns["file_size_mb"]["help"]
    assert "CLIP" in params and "support vectors" in params and "not the frozen" in params
    assert "head.skops" in size

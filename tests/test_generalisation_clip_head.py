"""The Generalisation page names a CLIP model's head as it is (logistic regression or RBF SVM), not always
"a linear head" (review6: default v9's CLIP heads are SVMs)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pipeline import experiments, results, store
from synthetic_run import write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def clip_matrix_run(tmp_path_factory) -> Path:
    run = write_synthetic_run(tmp_path_factory.mktemp("artifacts_gen"), seed=7)
    cells = pd.DataFrame([{"model": m, "train_on": a, "test_on": b, "in_domain": a == b, "n": 40, "roc_auc": 0.8,
                           "accuracy": 0.7, "balanced_accuracy": 0.7, "threshold": 0.5, "n_train": 100,
                           "train_seconds": 1.0}
                          for m in ("baseline_cnn", "clip") for a in ("faces140k", "lfw_faceswap")
                          for b in ("faces140k", "lfw_faceswap")])
    folder = run / experiments.EXPERIMENTS_DIR / "crossdataset" / "k0"
    folder.mkdir(parents=True)
    cells.to_csv(folder / experiments.TABLES["crossdataset"], index=False)
    (folder / "settings.json").write_text(json.dumps({"model": "baseline_cnn", "spec": {"image_size": 64, "epochs": 1},
                                                      "models": ["baseline_cnn", "clip"]}))
    experiments.mark_done(folder)
    return run


def _clip_caption(monkeypatch, run: Path) -> str:
    """The Generalisation page's caption of the `clip` matrix."""
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(run.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/generalisation.py").run()
    at.selectbox(key="generalisation_model").set_value("clip").run()
    assert not at.exception, [e.value for e in at.exception]
    return next(c.value for c in at.caption if c.value.startswith("`clip`"))


def _caption(monkeypatch, run: Path, head: str | None) -> str:
    metrics = store.model_dir(run, "clip") / store.METRICS
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"model": "clip", "kind": "clip_linear", "scopes": {}, **({"head": head} if head else {})}))
    (metrics.parent / store.DONE).write_text(json.dumps({"model": "clip"}))
    return _clip_caption(monkeypatch, run)


def test_an_svm_head_is_not_called_linear(monkeypatch, clip_matrix_run):
    caption = _caption(monkeypatch, clip_matrix_run, "svm")
    assert "RBF-kernel SVM head" in caption and "linear" not in caption


def test_a_logistic_head_and_a_run_from_before_heads_had_kinds_are_linear(monkeypatch, clip_matrix_run):
    assert "linear head (logistic regression)" in _caption(monkeypatch, clip_matrix_run, "logistic")
    assert "linear head (logistic regression)" in _caption(monkeypatch, clip_matrix_run, None)


def test_a_clip_model_whose_files_are_gone_still_shows_its_matrix(monkeypatch, clip_matrix_run):
    import shutil

    shutil.rmtree(store.model_dir(clip_matrix_run, "clip"), ignore_errors=True)
    assert "CLIP encoder with a head fitted" in _clip_caption(monkeypatch, clip_matrix_run)

"""Pages whose result is missing: one line why, and a button that computes it (pipeline.on_demand), or
the command when the result needs training. AppTest on copies of the tiny trained run and on
synthetic runs (tests/synthetic_run.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline import embeddings, on_demand, results, store
from pipeline.experiments import EXPERIMENTS_DIR

EMBEDDING_FILES = (embeddings.EMBEDDINGS_FILE, embeddings.PCA_FILE, embeddings.PROJECTIONS_FILE,
                   embeddings.SEPARABILITY_FILE, embeddings.META_FILE)


def _app(monkeypatch, root: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(root))
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")
    at = AppTest.from_file(str(results.REPO_ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    return at


def _copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "artifacts" / tiny_run.name
    shutil.copytree(tiny_run, target)
    return target


def _drop_embeddings(run_dir: Path, model: str) -> None:
    for name in EMBEDDING_FILES:
        (store.model_dir(run_dir, model) / name).unlink(missing_ok=True)
    shutil.rmtree(store.model_dir(run_dir, f"{model}+pca_svm"), ignore_errors=True)
    summary = pd.read_csv(run_dir / store.SUMMARY)
    summary[summary["model"] != f"{model}+pca_svm"].to_csv(run_dir / store.SUMMARY, index=False)


def _texts(at) -> str:
    return " ".join(str(e.value) for e in [*at.info, *at.caption, *at.markdown, *at.warning])


def test_a_model_without_embeddings_gets_them_from_the_button(monkeypatch, tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path)
    _drop_embeddings(run_dir, "custom_cnn")
    assert on_demand.missing_embeddings(run_dir) == ["custom_cnn"]
    at = _app(monkeypatch, run_dir.parent)
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="emb_model").options == ["baseline_cnn"]
    assert "No embeddings yet for custom_cnn" in at.expander[0].label
    at.button(key="emb_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="emb_model").options == ["baseline_cnn", "custom_cnn"]
    assert not any("No embeddings yet" in e.label for e in at.expander)
    assert on_demand.missing_embeddings(run_dir) == []
    # the PCA-SVM row is back in the comparison, as train writes it
    assert "custom_cnn+pca_svm" in set(pd.read_csv(run_dir / store.SUMMARY)["model"])
    assert store.is_model_done(run_dir, "custom_cnn+pca_svm")


def test_a_run_without_any_embeddings_offers_them_on_the_svm_lab(monkeypatch, tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path)
    for m in ("baseline_cnn", "custom_cnn"):
        _drop_embeddings(run_dir, m)
    at = _app(monkeypatch, run_dir.parent)
    at.switch_page("app_pages/svm_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "no embeddings yet" in at.info[0].value and "python -m pipeline" not in at.info[0].value
    assert at.button(key="svm_compute").label == "Compute embeddings of 2 models"
    assert not at.dataframe  # the page stopped after the offer
    at.button(key="svm_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "SVM lab"
    assert at.selectbox(key="svm_model").options == ["baseline_cnn", "custom_cnn"]
    assert at.dataframe  # the live SVM's table is drawn


def test_robustness_button_runs_the_sweep(monkeypatch, tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path)
    shutil.rmtree(run_dir / EXPERIMENTS_DIR / "robustness", ignore_errors=True)
    at = _app(monkeypatch, run_dir.parent)
    at.switch_page("app_pages/robustness.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "no robustness sweep yet" in at.info[0].value
    assert not at.get("plotly_chart")
    at.button(key="robustness_compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("plotly_chart")
    table = results.load_run(results.info_at(run_dir)).experiment("robustness")
    assert {"baseline_cnn", "custom_cnn"} <= set(table["model"])
    assert not any(b.key == "robustness_compute" for b in at.button)


def test_results_that_need_training_keep_their_command(monkeypatch, tmp_path):
    from synthetic_run import write_synthetic_run

    run_dir = write_synthetic_run(tmp_path, seed=4)
    at = _app(monkeypatch, tmp_path)
    at.switch_page("app_pages/generalisation.py").run()
    assert not at.exception, [e.value for e in at.exception]
    line = at.info[0].value
    assert "trains one model per data set" in line
    assert f"python -m pipeline experiment crossdataset --run {run_dir.name}" in line
    assert not at.button  # no compute button: training is not done in the dashboard
    at.switch_page("app_pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "python -m pipeline experiment search" in _texts(at)
    assert not at.button


def test_on_demand_refuses_a_model_it_cannot_embed(tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path)
    assert on_demand.keras_models(run_dir) == ["baseline_cnn", "custom_cnn"]
    assert on_demand.run_config(run_dir).artifacts_dir == str(run_dir.parent)
    with pytest.raises(ValueError, match="not a finished Keras model"):
        on_demand.compute_embeddings(run_dir, ["baseline_cnn+pca_svm"])

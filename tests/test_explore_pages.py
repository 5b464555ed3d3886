"""The exploration controls through AppTest on a synthetic run (no TensorFlow): opening a face on the
Embeddings page (its scores and nearest neighbours), the Agreement page, the Leakage check page and the
presentation mode switch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pipeline import correlation, leakage, results
from synthetic_run import write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
MODEL = "baseline_cnn"


def _write_embeddings(run_dir: Path, model: str, seed: int = 0) -> None:
    """The files of pipeline.embeddings for ``model``: a 6-D "embedding" whose first axis is the label."""
    rng = np.random.default_rng(seed)
    m = pd.read_parquet(run_dir / "manifest.parquet")
    n = len(m)
    Z = rng.normal(0, 1, (n, 6)).astype(np.float32)
    Z[:, 0] += 3 * m["y"].to_numpy()
    d = run_dir / "models" / model
    np.savez(d / "embeddings.npz", embedding=Z, p_fake=rng.random(n).astype(np.float32),
             sha256=m["sha256"].to_numpy().astype(str))
    np.savez(d / "pca.npz", scores=Z, components=np.eye(6, dtype=np.float32))
    proj = m[["path", "relpath", "dataset", "label", "y", "split"]].copy()
    proj["p_fake"] = rng.random(n)
    for i in range(3):
        proj[f"pca_{i + 1}"] = Z[:, i]
        proj[f"umap_{i + 1}"] = np.nan
    for i in range(2):
        proj[f"pca2d_{i + 1}"] = Z[:, i]
        proj[f"umap2d_{i + 1}"] = np.nan
    proj.to_parquet(d / "projections.parquet", index=False)
    (d / "separability.json").write_text(json.dumps({"rows": [
        {"space": "PCA", "dims": 2, "classifier": "logistic regression", "accuracy": 0.9, "roc_auc": 0.95}]}))
    (d / "embeddings.json").write_text(json.dumps({"n": n, "dim": 6, "n_components": 6, "umap_fit_points": 0,
                                                   "explained_variance_ratio": [0.4, 0.2, 0.1, 0.1, 0.1, 0.1]}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    run = write_synthetic_run(root, seed=4, models=(MODEL, "mobilenet", "xception"))
    _write_embeddings(run, MODEL)
    return run


def _app(monkeypatch, run_dir: Path, page: str) -> AppTest:
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(run_dir.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "success", "title",
                                               "subheader") for e in getattr(at, kind))


def test_embeddings_open_a_face_shows_scores_and_neighbours(monkeypatch, run_dir):
    at = _app(monkeypatch, run_dir, "app_pages/embeddings.py")
    m = pd.read_parquet(run_dir / "manifest.parquet")
    row = int(np.flatnonzero(m["split"].to_numpy() == "test")[0])
    at.session_state["emb_pick"] = row  # what a click on the 2-D chart stores
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert f"`{m.loc[row, 'relpath']}`" in text
    assert "nearest neighbours share its label" in text
    # k neighbours, each with an Open button; opening one moves the selection
    nn_buttons = [b for b in at.button if b.key and b.key.startswith("emb_nn_")]
    assert len(nn_buttons) == at.slider(key="emb_k").value == 8
    target = int(nn_buttons[0].key.rsplit("_", 1)[1])
    nn_buttons[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["emb_pick"] == target
    at.slider(key="emb_k").set_value(3).run()
    assert len([b for b in at.button if b.key and b.key.startswith("emb_nn_")]) == 3


def test_embeddings_training_image_says_it_has_no_stored_scores(monkeypatch, run_dir):
    at = _app(monkeypatch, run_dir, "app_pages/embeddings.py")
    m = pd.read_parquet(run_dir / "manifest.parquet")
    at.session_state["emb_pick"] = int(np.flatnonzero(m["split"].to_numpy() == "train")[0])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("training image" in str(i.value) for i in at.info)


def test_agreement_page(monkeypatch, run_dir):
    at = _app(monkeypatch, run_dir, "app_pages/agreement.py")
    assert at.title[0].value == "Do the detectors agree?"
    run = results.load_run(results.info_at(run_dir))
    table = correlation.score_table({m: run.predictions(m) for m in run.models()})
    assert f"{len(table):,} test images scored by all 3 models" in _texts(at)
    rows = at.dataframe[-1].value
    assert len(rows) == 8 and rows["disagreement"].is_monotonic_decreasing
    at.selectbox(key="agree_scope").set_value("lfw_faceswap").run()
    at.slider(key="agree_top").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe[-1].value) == 4
    assert "(data set lfw_faceswap)" in _texts(at)


def test_leakage_page_button_then_counts(monkeypatch, run_dir):
    at = _app(monkeypatch, run_dir, "app_pages/leakage.py")
    assert at.title[0].value == "Leakage check"
    assert not at.metric  # nothing computed before the button
    at.button(key="leak_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    m = pd.read_parquet(run_dir / "manifest.parquet")
    hashes = leakage.perceptual_hashes(m["path"].tolist())
    pairs = leakage.cross_split_pairs(hashes, m["split"].tolist())
    counts = leakage.counts_per_dataset(pairs, m)
    n_test = int(counts["test images"].sum())
    assert at.metric[0].value == f"{int(counts['test with a training near-duplicate'].sum()):,} of {n_test:,}"
    assert at.metric[2].value == f"{len(pairs):,}"
    at.slider(key="leak_distance").set_value(0).run()  # stored hashes reused, stricter match
    assert not at.exception, [e.value for e in at.exception]
    strict = leakage.cross_split_pairs(hashes, m["split"].tolist(), 0)
    assert at.metric[2].value == f"{len(strict):,}"


def test_presentation_mode_from_the_url_and_the_sidebar(monkeypatch, run_dir):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(run_dir.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "1"
    at.run()
    at.switch_page("app_pages/check.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.toggle(key="present").value is True
    keys = {t.key for t in at.toggle}
    assert "check_crop" not in keys and "check_stability" not in keys  # fewer controls
    assert not [e for e in at.expander if "How is this computed" in str(e.label)]
    # switched off in the sidebar: the controls are back, the URL follows
    at.sidebar.toggle(key="present").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    assert {"check_crop", "check_stability", "check_cam"} <= {t.key for t in at.toggle}
    assert at.query_params.get("present") in (None, [], "")


def test_normal_mode_by_default(monkeypatch, run_dir):
    at = _app(monkeypatch, run_dir, "app_pages/check.py")
    assert at.sidebar.toggle(key="present").value is False
    assert {"check_crop", "check_stability", "check_cam"} <= {t.key for t in at.toggle}


def _write_experiment(run_dir: Path, name: str, table: pd.DataFrame, settings: dict) -> None:
    from pipeline import experiments

    folder = run_dir / experiments.EXPERIMENTS_DIR / name / "k0"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / experiments.TABLES[name], index=False)
    (folder / "settings.json").write_text(json.dumps(settings))
    experiments.mark_done(folder)


@pytest.fixture(scope="module")
def exp_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts_exp")
    run = write_synthetic_run(root, seed=5)
    rows = []
    for model, clean, drop in (("baseline_cnn", 0.90, 0.10), ("mobilenet", 0.80, 0.02)):
        for ds, n in (("all", 120), ("faces140k", 60), ("lfw_faceswap", 60)):
            for pert, level, d in (("none", 0, 0.0), ("blur", 1.0, drop), ("jpeg", 75, drop / 2)):
                rows.append({"model": model, "perturbation": pert, "level": level, "dataset": ds, "n": n,
                             "roc_auc": clean - d, "accuracy": clean - 0.1 - 2 * d, "balanced_accuracy": clean - 0.1 - d,
                             "auc_drop": d, "flip_rate": 0.0, "mean_abs_change": 0.0})
    _write_experiment(run, "robustness", pd.DataFrame(rows), {"n_test": 120, "models": ["baseline_cnn", "mobilenet"]})
    cells = []
    for a in ("faces140k", "lfw_faceswap"):
        for b, n in (("faces140k", 80), ("lfw_faceswap", 40)):
            cells.append({"train_on": a, "test_on": b, "in_domain": a == b, "n": n, "roc_auc": 0.9 if a == b else 0.6,
                          "accuracy": 0.85 if a == b else 0.55, "balanced_accuracy": 0.85 if a == b else 0.55,
                          "threshold": 0.5, "n_train": 100, "train_seconds": 1.0})
    _write_experiment(run, "crossdataset", pd.DataFrame(cells), {"model": "baseline_cnn", "spec": {}})
    return run


def test_robustness_metric_switch_reaches_headline_and_table(monkeypatch, exp_run):
    at = _app(monkeypatch, exp_run, "app_pages/robustness.py")
    assert "**120 test images**" in _texts(at)
    assert any(h.value == "Mean AUC drop per model" for h in at.subheader)
    at.selectbox(key="robustness_metric").set_value("accuracy").run()
    at.selectbox(key="robustness_dataset").set_value("faces140k").run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert "**60 test images**" in text and "**120 test images**" not in text  # one n: the scope's
    assert any(h.value == "Mean accuracy drop per model" for h in at.subheader)
    assert "Most robust here: **mobilenet** (clean accuracy 0.700" in text
    table = at.dataframe[0].value
    assert "clean accuracy" in table.columns and "clean AUC" not in table.columns and "n" not in table.columns
    row = table.set_index("model").loc["baseline_cnn"]
    assert row["blur"] == pytest.approx(0.2) and row["JPEG re-save"] == pytest.approx(0.1)  # accuracy drops


def test_generalisation_metric_switch_reaches_findings_and_table(monkeypatch, exp_run):
    at = _app(monkeypatch, exp_run, "app_pages/generalisation.py")
    assert "faces140k 80, lfw_faceswap 40" in _texts(at)
    at.selectbox(key="generalisation_metric").set_value("accuracy").run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert "Trained on **faces140k** (accuracy 0.850, AUC 0.900 on its own test split)" in text
    grid = at.dataframe[0].value
    assert list(grid.columns) == ["Accuracy: trained on ↓ / tested on →", "faces140k (n=80)", "lfw_faceswap (n=40)"]
    assert grid.iloc[0, 1] == pytest.approx(0.85)


def test_generalisation_offers_every_matrix_the_run_holds(monkeypatch, exp_run, tmp_path):
    """A matrix run later with another ``[experiments] model`` joins the config's, it does not hide it."""
    import os
    import shutil
    import time

    from pipeline import experiments

    run = tmp_path / "artifacts" / exp_run.name
    shutil.copytree(exp_run, run)
    older = run / experiments.EXPERIMENTS_DIR / "crossdataset" / "k0" / "done.json"
    os.utime(older, (time.time() - 60, time.time() - 60))
    cells = pd.DataFrame([{"model": "faces140k_mobilenet", "train_on": a, "test_on": b, "in_domain": a == b, "n": 80,
                           "roc_auc": 0.77, "accuracy": 0.7, "balanced_accuracy": 0.7, "threshold": 0.5,
                           "n_train": 600, "train_seconds": 40.0}
                          for a in ("faces140k", "lfw_faceswap") for b in ("faces140k", "lfw_faceswap")])
    folder = run / experiments.EXPERIMENTS_DIR / "crossdataset" / "k1"
    folder.mkdir(parents=True)
    cells.to_csv(folder / experiments.TABLES["crossdataset"], index=False)
    (folder / "settings.json").write_text(json.dumps({"model": "faces140k_mobilenet",
                                                      "spec": {"image_size": 144, "epochs": 1, "fine_tune_epochs": 2}}))
    experiments.mark_done(folder)
    at = _app(monkeypatch, run, "app_pages/generalisation.py")
    box = at.selectbox(key="generalisation_model")
    assert list(box.options) == ["faces140k_mobilenet", "baseline_cnn"]  # the newest first, the older one kept
    assert "`faces140k_mobilenet` at 144 px, 1 epoch(s) + 2 fine-tuning" in _texts(at)
    box.set_value("baseline_cnn").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value.iloc[0, 1] == pytest.approx(0.9)  # the config's matrix, its own numbers

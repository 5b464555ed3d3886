"""Embeddings, projections, separability and the PCA-SVM rows, on the tiny trained run.

``tiny_run`` (conftest) is built by ``runner.train_run``, which runs the embedding step: these
tests read what it wrote. UMAP's numba compile is paid once there (about 30-40 s per session).
"""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from pipeline import artifacts, embeddings, evaluation, results, run_embeddings, runner, svm
from pipeline.detectors import pca_svm
from pipeline.models import build_model, load_model
from pipeline.config import ModelSpec


@pytest.fixture(scope="module")
def manifest(tiny_run) -> pd.DataFrame:
    return pd.read_parquet(tiny_run / "manifest.parquet")


@pytest.mark.parametrize("model", ["baseline_cnn", "custom_cnn"])
def test_embedding_files_and_shapes(tiny_run, manifest, model):
    folder = tiny_run / "models" / model
    keras_model = load_model(folder / "model.keras")
    dim = int(keras_model.get_layer("embedding").output.shape[-1])
    emb = embeddings.load_embeddings(tiny_run, model)
    n = len(manifest)
    assert emb["embedding"].shape == (n, dim) and emb["embedding"].dtype == np.float32
    assert emb["p_fake"].shape == (n,)
    assert emb["sha256"].tolist() == manifest["sha256"].tolist()  # row order = manifest order

    proj, scores = embeddings.load_pca(tiny_run, model)
    n_train = int((manifest["split"] == "train").sum())
    k = min(50, dim, n_train - 1)
    assert scores.shape == (n, k) and proj.components.shape == (k, dim)
    evr = proj.explained_variance_ratio
    assert np.all(np.diff(evr) <= 1e-6) and 0 < evr.sum() <= 1 + 1e-5

    table = pd.read_parquet(folder / embeddings.PROJECTIONS_FILE)
    assert list(table.columns) == embeddings.PROJECTION_COLUMNS
    assert table["path"].tolist() == manifest["path"].tolist()
    for c in ("pca_1", "pca_3", "umap_1", "umap_3", "umap2d_1", "umap2d_2"):
        assert table[c].notna().all(), c
    np.testing.assert_allclose(table["pca_1"], scores[:, 0], rtol=1e-6)
    np.testing.assert_allclose(table["p_fake"], emb["p_fake"])

    sep = json.loads((folder / embeddings.SEPARABILITY_FILE).read_text())["rows"]
    assert {(r["dims"], r["classifier"]) for r in sep} == {(d, c) for d in (2, 3, k) for c in ("logistic", "knn15")}
    assert all(0 <= r["accuracy"] <= 1 for r in sep)
    meta = json.loads((folder / embeddings.META_FILE).read_text())
    assert meta["dim"] == dim and meta["n_components"] == k


def test_head_p_fake_of_the_pass_matches_stored_predictions(tiny_run, manifest):
    emb = embeddings.load_embeddings(tiny_run, "baseline_cnn")
    preds = pd.read_parquet(tiny_run / "models" / "baseline_cnn" / "predictions.parquet").set_index("path")
    test = (manifest["split"] == "test").to_numpy()
    np.testing.assert_allclose(emb["p_fake"][test], preds.loc[manifest["path"][test], "p_fake"], atol=1e-5)


def test_pca_is_fitted_on_train_rows_only(tiny_run, manifest):
    emb = embeddings.load_embeddings(tiny_run, "custom_cnn")["embedding"]
    _, scores = embeddings.load_pca(tiny_run, "custom_cnn")
    train = (manifest["split"] == "train").to_numpy()
    again = svm.fit_projection(emb[train], 50, random_state=7)
    np.testing.assert_allclose(np.abs(again.transform(emb)), np.abs(scores), atol=1e-3)


def test_pca_svm_rows_in_the_comparison(tiny_run, tiny_config, manifest):
    run_json = json.loads((tiny_run / "run.json").read_text())
    assert run_json["comparison_models"] == ["baseline_cnn", "baseline_cnn+pca_svm", "custom_cnn",
                                             "custom_cnn+pca_svm"]
    assert runner.comparison_models(tiny_config) == run_json["comparison_models"]
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert summary["model"].unique().tolist() == run_json["comparison_models"]
    folder = tiny_run / "models" / "baseline_cnn+pca_svm"
    for f in ("metrics.json", "predictions.parquet", "svm.json", "history.csv", "done.json"):
        assert (folder / f).exists(), f
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["scopes"]) == {"all", "alpha", "beta"} and metrics["model"] == "baseline_cnn+pca_svm"
    assert metrics["params"] > 0 and metrics["file_size_bytes"] > 0 and metrics["latency_ms"]["batch1_p50"] > 0
    assert metrics["svm"]["kernel"] == "poly"
    preds = pd.read_parquet(folder / "predictions.parquet")
    val = preds[preds["split"] == "val"]
    assert metrics["threshold"] == pytest.approx(evaluation.choose_threshold(val["y"], val["p_fake"], "youden"))
    assert metrics["scopes"]["all"]["roc_auc"] > 0.8  # the synthetic trace is easy
    # the dashboard reads the row like any model
    run = results.load_run(str(tiny_run))
    assert "baseline_cnn+pca_svm" in run.models()
    assert run.history("baseline_cnn+pca_svm").empty


def test_stored_svm_refits_to_the_same_predictions(tiny_run, manifest):
    est, spec = pca_svm.load_run_svm(tiny_run, "custom_cnn")
    assert spec["params"]["kernel"] == "poly" and est.n_components_ == spec["n_components"]
    emb = embeddings.load_embeddings(tiny_run, "custom_cnn")["embedding"]
    p = est.predict_proba(emb)[:, 1]
    stored = pd.read_parquet(tiny_run / "models" / "custom_cnn+pca_svm" / "predictions.parquet").set_index("path")
    test = (manifest["split"] == "test").to_numpy()
    np.testing.assert_allclose(p[test], stored.loc[manifest["path"][test], "p_fake"], atol=1e-4)


def test_results_accessors(tiny_run):
    run = results.load_run(str(tiny_run))
    assert run_embeddings.embedding_models(run) == ["baseline_cnn", "custom_cnn"]
    assert run_embeddings.projections(run, "custom_cnn").shape[0] == len(run.manifest())
    assert run_embeddings.embeddings(run, "custom_cnn")["embedding"].shape[1] == 128
    assert (len(run_embeddings.explained_variance(run, "custom_cnn"))
            == run_embeddings.pca(run, "custom_cnn")["scores"].shape[1])
    assert list(run_embeddings.separability(run, "custom_cnn").columns) == [
        "space", "dims", "classifier", "accuracy", "roc_auc"]
    with pytest.raises(results.ArtifactError, match="embeddings"):
        run_embeddings.projections(run, "custom_cnn+pca_svm")


def test_rerun_is_a_cache_hit(tiny_run, tiny_config, manifest):
    files = [p for p in (tiny_run / "models").rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    logs = []
    embeddings.build_for_run(tiny_run, tiny_config, manifest, None, logs.append)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert logs == [f"{m}: embeddings, projections and PCA-SVM up to date" for m in tiny_config.model_names]


def test_a_copied_run_folder_is_still_a_cache_hit(tiny_run, tiny_config, manifest, tmp_path):
    """Copying a run (new file times) must not invalidate its embeddings: the key is the model's training."""
    import shutil

    copy = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, copy, copy_function=shutil.copyfile)  # no metadata: fresh mtimes
    logs = []
    embeddings.build_for_run(copy, tiny_config, manifest, None, logs.append)
    assert logs == [f"{m}: embeddings, projections and PCA-SVM up to date" for m in tiny_config.model_names]


def test_umap_and_subsample_are_deterministic():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 5)).astype(np.float32)
    strata = pd.DataFrame({"dataset": ["a"] * 30 + ["b"] * 30, "label": (["real", "fake"] * 30)})
    from pipeline.splits import stratified_subsample

    idx = stratified_subsample(np.arange(60), strata, 40, seed=3)
    assert len(idx) == 40 and np.array_equal(idx, stratified_subsample(np.arange(60), strata, 40, seed=3))
    every = np.arange(60)  # fit on all rows: UMAP.transform's numba compile would cost ~10 s more
    a = embeddings.umap_project(Z, 2, every, seed=3, n_neighbors=5, n_epochs=20)
    b = embeddings.umap_project(Z, 2, every, seed=3, n_neighbors=5, n_epochs=20)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_spectrum_layer_sees_a_high_frequency_trace(tmp_path):
    from pipeline.models.layers import AzimuthalSpectrum

    size = 32
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(60, 200, size)[None, :, None], size, axis=0).repeat(3, axis=2)
    smooth = smooth + rng.normal(0, 2, smooth.shape)
    stripes = np.cos(2 * np.pi * np.arange(size) / 4)[None, :, None] * 15.0  # period 4 px: radius size / 4
    x = np.stack([smooth, smooth + stripes]).astype("float32")
    spec = keras.ops.convert_to_numpy(AzimuthalSpectrum()(x))
    assert spec.shape == (2, size // 2)
    diff = spec[1] - spec[0]
    assert int(np.argmax(diff)) == size // 4 and diff[size // 4] > 0.01  # the trace's ring stands out
    model = build_model(ModelSpec(name="spectrum", image_size=size))
    assert model.get_layer("embedding").output.shape == (None, 64)
    model.save(tmp_path / "s.keras")
    again = load_model(tmp_path / "s.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5)


# --------------------------------------------------------------------------- figures and pages

def test_embedding_figures(tiny_run):
    import plotly.graph_objects as go

    from pipeline import figures_embeddings

    table = pd.read_parquet(tiny_run / "models" / "custom_cnn" / embeddings.PROJECTIONS_FILE)
    fig = figures_embeddings.embedding_scatter_figure(table, ("umap_1", "umap_2", "umap_3"), "label", uirevision="keep")
    assert all(isinstance(t, go.Scatter3d) for t in fig.data) and len(fig.data) == 2
    assert sum(len(t.x) for t in fig.data) == len(table)
    assert fig.layout.uirevision == "keep" and fig.layout.scene.uirevision == "keep"
    assert "p(fake)" in fig.data[0].text[0]
    points = sorted(i for t in fig.data for i in t.customdata)
    assert points == list(range(len(table)))
    fig2 = figures_embeddings.embedding_scatter_figure(table, ("pca2d_1", "pca2d_2"), "dataset")
    assert all(isinstance(t, go.Scattergl) for t in fig2.data) and {t.name.split(" ")[0] for t in fig2.data} == {
        "alpha", "beta"}
    cats = figures_embeddings.embedding_categories(table, "correct", threshold=0.5)
    pred = np.where(table["p_fake"] >= 0.5, "fake", "real")
    assert (cats == "correct").sum() == (pred == table["label"]).sum()
    assert set(figures_embeddings.embedding_categories(table, "predicted")) <= {"real", "fake"}
    with pytest.raises(ValueError):
        figures_embeddings.embedding_categories(table, "size")
    ev = figures_embeddings.explained_variance_figure([0.5, 0.3, 0.1])
    assert list(ev.data[1].y) == pytest.approx([0.5, 0.8, 0.9])
    surf = svm.decision_surface(table[["pca_1", "pca_2"]].to_numpy(), table["y"].to_numpy(), resolution=20)
    ds = figures_embeddings.decision_surface_figure(surf, table["pca_1"], table["pca_2"], table["label"])
    assert isinstance(ds.data[0], go.Contour) and np.asarray(ds.data[0].z).shape == (20, 20)
    assert {t.name for t in ds.data[2:]} == {"real", "fake"}


def _app(monkeypatch, root):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(root))
    at = AppTest.from_file(str(results.REPO_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    return at


def test_embeddings_page(monkeypatch, tiny_run):
    at = _app(monkeypatch, tiny_run.parent)
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Embeddings"
    assert at.selectbox(key="emb_model").options == ["baseline_cnn", "custom_cnn"]
    # lazy tabs: the 2-D map is open first and the 3-D view (WebGL) is not computed until it is opened
    assert [t.label for t in at.tabs] == ["2-D map: click a face to explore it", "3-D view"]
    assert at.selectbox(key="emb_color_2d") is not None
    assert not [w for w in at.selectbox if w.key == "emb_color"]
    at.selectbox(key="emb_model").set_value("custom_cnn").run()
    at.session_state["emb_view"] = "3-D view"
    at.run()
    assert not [w for w in at.selectbox if w.key == "emb_color_2d"]
    at.selectbox(key="emb_color").set_value("correct").run()
    at.multiselect(key="emb_splits").set_value(["train", "test"]).run()
    at.radio(key="emb_projection").set_value("PCA").run()
    assert not at.exception, [e.value for e in at.exception]
    sep = at.dataframe[0].value
    assert set(sep["dims"]) == {2, 3, 50}


def test_svm_lab_page(monkeypatch, tiny_run):
    at = _app(monkeypatch, tiny_run.parent)
    at.switch_page("app_pages/svm_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "SVM lab"
    table = at.dataframe[0].value
    assert table["classifier"].tolist()[1:] == ["baseline_cnn sigmoid head", "baseline_cnn+pca_svm"]
    for kernel in ("rbf", "linear"):
        at.selectbox(key="svm_kernel").set_value(kernel).run()
        assert not at.exception, [e.value for e in at.exception]
    at.slider(key="svm_k").set_value(3).run()
    at.slider(key="svm_log_c").set_value(1.0).run()
    at.selectbox(key="svm_class_weight").set_value("balanced").run()
    assert not at.exception, [e.value for e in at.exception]
    assert float(at.metric[0].value) > 0.7


def test_pages_on_a_run_without_embeddings(monkeypatch, tmp_path):
    from synthetic_run import write_synthetic_run

    write_synthetic_run(tmp_path, seed=3)
    at = _app(monkeypatch, tmp_path)
    for page, key in (("app_pages/embeddings.py", "emb_compute"), ("app_pages/svm_lab.py", "svm_compute")):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        # its models have a model.keras: the page offers to compute the embeddings (tests/test_compute_buttons.py)
        assert "no embeddings" in at.info[0].value and at.button(key=key).label.startswith("Compute embeddings")


def test_embeddings_only_for_the_models_the_config_names(tiny_run, tiny_config, manifest):
    import dataclasses

    from pipeline import config, config_load, runner

    only = dataclasses.replace(tiny_config, embeddings=dataclasses.replace(tiny_config.embeddings,
                                                                           models=("custom_cnn",)))
    assert only.embedding_model_names == ["custom_cnn"]
    assert runner.comparison_models(only) == ["baseline_cnn", "custom_cnn", "custom_cnn+pca_svm"]
    done = embeddings.build_for_run(tiny_run, only, manifest, log=lambda _: None)
    assert list(done) == ["custom_cnn"]
    with pytest.raises(config.ConfigError, match="no_such_model"):
        config_load.from_dict({"models": [{"name": "baseline_cnn"}], "embeddings": {"models": ["no_such_model"]}})
    with pytest.raises(config.ConfigError, match="unknown \\[embeddings\\]"):
        config_load.from_dict({"models": [{"name": "baseline_cnn"}], "embeddings": {"typo": 1}})


def test_svm_lab_fits_on_a_stated_stratified_sample(monkeypatch, tiny_run):
    from pipeline import svm

    monkeypatch.setattr(svm, "LIVE_MAX_TRAIN", 40)
    at = _app(monkeypatch, tiny_run.parent)
    at.switch_page("app_pages/svm_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    n_train = int((results.load_run(results.info_at(tiny_run)).manifest()["split"] == "train").sum())
    caption = next(c.value for c in at.caption if c.value.startswith("Fitted on"))
    assert caption.startswith("Fitted on 40 training images") and f"sample of the {n_train:,}" in caption
    at.slider(key="svm_log_c").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]

"""The robustness sweep also scores the run's combined model (the verdict uploads get).

A synthetic run (``tests/synthetic_run.py``) gets two real, untrained, tiny Keras models (seeded)
at two input sizes, a PCA-SVM on one of them, and ensembles fitted on the run's stored
predictions; the sweep then runs on 16 test images x 6 levels. The ensembles' coefficients do
not need to be good: the tests compare the sweep with upload scoring on the same images.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline import config, config_load, embeddings, images, results
from pipeline.detectors import combined as ensemble
from pipeline.experiments import robustness as rb
from synthetic_run import write_synthetic_run

SIZES = {"baseline_cnn": 32, "custom_cnn": 24}
MEMBERS = ("baseline_cnn", "custom_cnn", "baseline_cnn+pca_svm")
EXPERIMENTS = dict(robustness_max_images=16, jpeg_qualities=(50,), scales=(0.5,),
                   blur_sigmas=(1.0,), noise_sigmas=(5.0,), normalise_qualities=(90,), normalise_size=40)


def _keras_run(root, seed: int = 0):
    """(cfg, run_dir): a synthetic run whose two models are real Keras models with embeddings."""
    import keras

    from pipeline.models import build_model

    run_dir = write_synthetic_run(root, models=tuple(SIZES), seed=seed)
    raw = json.loads((run_dir / "run.json").read_text())["config"]
    cfg = config_load.from_json_dict(raw)
    cfg = dataclasses.replace(
        cfg, models=tuple(dataclasses.replace(s, image_size=SIZES.get(s.name, s.image_size)) for s in cfg.models),
        embeddings=config.EmbeddingConfig(models=("baseline_cnn",), umap=False, pca_components=8),
        experiments=config.ExperimentConfig(**EXPERIMENTS), verdict=config.VerdictConfig(members=MEMBERS))
    keras.utils.set_random_seed(seed)
    for name, size in SIZES.items():
        folder = run_dir / "models" / name
        build_model(cfg.model(name)).save(folder / "model.keras")
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, "image_size": size}))
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    embeddings.build_for_run(run_dir, cfg, manifest, log=lambda _: None)  # models/baseline_cnn+pca_svm
    return cfg, run_dir


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    cfg, run_dir = _keras_run(tmp_path_factory.mktemp("robust_combined"))
    ensemble.run_ensemble(cfg, run_dir, log=lambda _: None)
    assert ensemble.combiner_name(run_dir) == ensemble.ROUTED
    return cfg, run_dir


@pytest.fixture
def forward_passes(monkeypatch):
    """Counts Keras forward passes (``predict_on_batch`` of any model) by model name."""
    import keras

    calls: dict[str, int] = {}
    original = keras.Model.predict_on_batch

    def counting(self, x):
        calls[self.name] = calls.get(self.name, 0) + 1
        return original(self, x)

    monkeypatch.setattr(keras.Model, "predict_on_batch", counting)
    return calls


def _test_images(cfg, run_dir) -> pd.DataFrame:
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    idx = rb.subsample(np.flatnonzero(manifest["split"].to_numpy() == "test"), manifest,
                       cfg.experiments.robustness_max_images, cfg.seed)
    return manifest.iloc[idx].reset_index(drop=True)


def test_the_sweep_scores_the_combined_model_first_once_per_forward_pass(keras_run, forward_passes):
    cfg, run_dir = keras_run
    logs: list[str] = []
    out = rb.run_robustness(cfg, run_dir, log=logs.append)
    table = pd.read_csv(out / "robustness.csv")
    levels = rb.sweep_levels(cfg.experiments)
    assert list(dict.fromkeys(table["model"])) == [ensemble.ROUTED, *SIZES]  # the run's verdict first
    routed = table[table["model"] == ensemble.ROUTED]
    assert len(routed) == len(levels) * 3  # scopes: all + two datasets
    assert set(zip(routed["perturbation"], routed["level"])) == set(levels)
    pooled = routed[routed["dataset"] == "all"].set_index("perturbation")
    assert pooled.loc["none", "n"] == 16 and abs(pooled.loc["none", "auc_drop"]) < 1e-12
    assert pooled.loc["none", "flip_rate"] == 0 and pooled["roc_auc"].notna().all()
    assert routed["flip_rate"].between(0, 1).all() and (routed["mean_abs_change"] >= 0).all()
    assert pooled["mean_abs_change"].drop("none").gt(0).all()  # the perturbed images reach the members
    # one forward pass per Keras model, chunk and level: the ensemble reuses them (p_fake, embedding)
    assert forward_passes == {"baseline_cnn_embedding_and_p_fake": len(levels), "custom_cnn": len(levels)}
    settings = json.loads((out / "settings.json").read_text())
    assert settings["combined_model"] == ensemble.ROUTED and settings["models"][0] == ensemble.ROUTED
    assert rb.shortcut_table(table)["model"].tolist().count(ensemble.ROUTED) == 1


def test_clean_level_equals_upload_scoring_and_the_router_sees_the_perturbed_image(keras_run):
    cfg, run_dir = keras_run
    test = _test_images(cfg, run_dir)
    combiner = ensemble.load_combiner(run_dir)
    assert {m for m, d in combiner.detectors.items() if d.kind == "pca_svm"} == {"baseline_cnn+pca_svm"}
    levels = [("none", 0.0), ("scale", 0.5), ("normalise", 90.0)]
    frame = rb.predict_perturbed({}, test, levels, cfg.seed, normalise_size=40, combiner=combiner)[combiner.name]
    originals = [images.load_rgb(p) for p in test["path"]]
    for pert, level in levels:
        got = frame[frame["perturbation"] == pert]["p_fake"].to_numpy()
        perturbed = [rb.perturb(im, pert, level, None, 40) for im in originals]
        expected = [r["p_fake"] for r in ensemble.score_combined(combiner, perturbed)]
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=pert)
    # the router's input is the perturbed image: at one size it routes differently than on the originals
    assert not np.allclose(ensemble.route_images(combiner.spec["router"], originals),
                           ensemble.route_images(combiner.spec["router"], [rb.perturb(im, "scale", 0.5)
                                                                           for im in originals]))
    # and the stored pooled clean AUC is that of upload scoring on the same images
    from sklearn.metrics import roc_auc_score

    table = pd.read_csv(rb.run_robustness(cfg, run_dir, log=lambda _: None) / "robustness.csv")
    clean = table[(table["model"] == combiner.name) & (table["perturbation"] == "none") & (table["dataset"] == "all")]
    expected = [r["p_fake"] for r in ensemble.score_combined(combiner, originals)]
    assert clean["roc_auc"].iloc[0] == pytest.approx(roc_auc_score(test["y"], expected), abs=1e-9)


def test_a_refitted_combined_model_alone_is_recomputed(keras_run, tmp_path, forward_passes):
    cfg, src = keras_run
    run_dir = tmp_path / src.name
    shutil.copytree(src, run_dir)
    rb.run_robustness(cfg, run_dir, log=lambda _: None)
    logs: list[str] = []
    rb.run_robustness(cfg, run_dir, log=logs.append)
    assert "cached" in logs[0]
    forward_passes.clear()
    ensemble.run_ensemble(cfg, run_dir, force=True, log=lambda _: None)  # refitted: new combiner_stamp
    logs.clear()
    rb.run_robustness(cfg, run_dir, log=logs.append)
    assert any(line.startswith(f"robustness: {ensemble.ROUTED} on ") for line in logs), logs
    n_levels = len(rb.sweep_levels(cfg.experiments))
    assert forward_passes == {"baseline_cnn_embedding_and_p_fake": n_levels, "custom_cnn": n_levels}


def test_a_stale_combined_model_is_left_out(keras_run, tmp_path, monkeypatch):
    from pipeline import routing

    cfg, src = keras_run
    run_dir = tmp_path / src.name
    shutil.copytree(src, run_dir)
    monkeypatch.setattr(routing, "FEATURES_VERSION", routing.FEATURES_VERSION + 1)  # fitted on older features
    logs: list[str] = []
    out = rb.run_robustness(cfg, run_dir, log=logs.append)
    assert set(pd.read_csv(out / "robustness.csv")["model"]) == set(SIZES)
    assert any("ensemble_routed left out" in line and "stale" in line for line in logs), logs


def test_a_run_without_a_combined_model_sweeps_its_keras_models(tmp_path, forward_passes):
    cfg, run_dir = _keras_run(tmp_path, seed=1)
    assert ensemble.combiner_name(run_dir) is None
    forward_passes.clear()  # the embeddings step above ran the models
    out = rb.run_robustness(cfg, run_dir, log=lambda _: None)
    table = pd.read_csv(out / "robustness.csv")
    n_levels = len(rb.sweep_levels(cfg.experiments))
    assert list(dict.fromkeys(table["model"])) == list(SIZES) and len(table) == 2 * n_levels * 3
    assert forward_passes == {"baseline_cnn": n_levels, "custom_cnn": n_levels}  # no embedding wanted
    assert json.loads((out / "settings.json").read_text())["combined_model"] is None


def test_verdict_summary_and_highlighted_line():
    from pipeline import figures_experiments

    rows = [{"model": m, "perturbation": p, "level": lv, "dataset": "all", "n": 200, "roc_auc": auc,
             "auc_drop": 0.9 - auc, "flip_rate": flip} for m in ("ensemble_routed", "a")
            for p, lv, auc, flip in [("none", 0, 0.9, 0.0), ("jpeg", 75, 0.85, 0.1), ("jpeg", 50, 0.7, 0.2),
                                     ("normalise", 90, 0.8, 0.125)]]
    table = pd.DataFrame(rows)
    text = rb.verdict_summary(table, "ensemble_routed")
    assert text == ("Here (all datasets pooled): clean AUC 0.900; mean AUC drop +0.117; worst: JPEG quality 50 "
                    "(AUC 0.700); shortcut check (JPEG 90): 12% of verdicts changed.")
    assert rb.verdict_summary(table, "ensemble_routed", "other") == ""
    fig = figures_experiments.robustness_figure(table, highlight="ensemble_routed")
    legend = {t.name: t.line.width for t in fig.data if t.showlegend}
    assert legend == {"ensemble_routed (run's verdict)": 4, "a": 2}


def test_robustness_page_names_the_runs_verdict(keras_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import REPO

    cfg, run_dir = keras_run
    rb.run_robustness(cfg, run_dir, log=lambda _: None)
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(run_dir.parent))
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/robustness.py").run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(m.value for m in at.markdown)
    assert "**ensemble_routed** is the run's verdict" in text and "Here (all datasets pooled): clean AUC" in text
    assert "Most robust here" in text
    drop, shortcut = at.dataframe[0].value, at.dataframe[1].value  # mean AUC drop, shortcut check
    assert "ensemble_routed (run's verdict)" in set(drop["model"]) and "clean AUC" in drop.columns
    assert "ensemble_routed (run's verdict)" in set(shortcut["model"]) and "verdicts changed" in shortcut.columns


def test_an_inverted_verdict_is_named():
    """A model that works clean but ranks the wrong way round under a perturbation (as `default`'s
    routed ensemble did under blur, EXPERIMENTS.md R8) is called inverted; a model at chance is not."""
    rows = [{"model": m, "perturbation": p, "level": lv, "dataset": ds, "n": n, "roc_auc": auc,
             "auc_drop": clean - auc, "flip_rate": 0.0}
            for m, ds, n, clean, blurred in [("ensemble_routed", "lfw", 200, 0.96, 0.41),
                                             ("ensemble_routed", "all", 400, 0.9, 0.8),
                                             ("chance_cnn", "lfw", 200, 0.52, 0.40),
                                             ("ensemble_routed", "few", 31, 0.61, 0.42)]  # noise on 31 images
            for p, lv, auc in [("none", 0, clean), ("blur", 1.0, blurred), ("jpeg", 75, clean - 0.01)]]
    table = pd.DataFrame(rows)
    assert rb.inversions(table) == {("ensemble_routed", "lfw"): ["blur 1"]}
    assert "**inverted** (AUC below 0.45) under blur 1" in rb.verdict_summary(table, "ensemble_routed", "lfw")
    assert "inverted" not in rb.verdict_summary(table, "ensemble_routed")


def _sweep(model: str, clean: float, drop: float, n: int = 200) -> list[dict]:
    return [{"model": model, "perturbation": p, "level": lv, "dataset": "all", "n": n, "roc_auc": clean - d,
             "auc_drop": d} for p, lv, d in [("none", 0, 0.0), ("blur", 1.0, drop), ("jpeg", 75, drop / 2)]]


def test_a_model_at_chance_is_never_called_the_most_robust():
    """A chance model has no ranking to lose: its tiny drop must not make it the headline."""
    table = pd.DataFrame(_sweep("detector", 0.90, 0.10) + _sweep("coin", 0.52, 0.001))
    drops = rb.drop_table(table, "all")
    assert list(drops.index) == ["detector", "coin"]
    assert drops.loc["detector", "mean drop"] == pytest.approx(0.075)
    assert drops.loc["detector", "above chance"] and not drops.loc["coin", "above chance"]
    assert rb.most_robust(drops) == "detector"
    assert rb.most_robust(rb.drop_table(pd.DataFrame(_sweep("coin", 0.52, 0.001)), "all")) is None

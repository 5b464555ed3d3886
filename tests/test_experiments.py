"""pipeline.experiments with tiny budgets: search, ablation, ensemble, robustness, cross-dataset,
the mirrored strategy, the CLI and the three dashboard pages.

The experiments run on a COPY of the session's tiny run (``tiny_run`` must stay as other tests
expect it), at 16 px with one epoch per training.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, face_like
from pipeline import config, config_load, experiments, results
from pipeline.experiments import steps
from pipeline.experiments import crossdataset
from pipeline.experiments import robustness as rb

TINY_EXPERIMENTS = dict(
    model="baseline_cnn", image_size=16, max_train_images=60, optimizers=("sgd", "adam"),
    learning_rates=(1e-2, 1e-3), ablation_epochs=1, search_max_trials=2, search_epochs=1, search_image_size=16,
    search_max_train_images=60, search_final_epochs=1, robustness_max_images=16,
    crossdataset_epochs=1)


@pytest.fixture(scope="module")
def exp_setup(tiny_run, tiny_config, tmp_path_factory):
    """(cfg, run_dir): a copy of the tiny run in its own artifacts folder, every experiment run once."""
    root = tmp_path_factory.mktemp("exp_artifacts")
    run_dir = root / tiny_run.name
    shutil.copytree(tiny_run, run_dir)
    from pipeline.detectors import combined

    cfg = dataclasses.replace(tiny_config, experiments=config.ExperimentConfig(**TINY_EXPERIMENTS),
                              verdict=config.VerdictConfig(members=("all",)))
    logs: list[str] = []
    steps.run("search", cfg, run_dir, log=logs.append)
    combined.run_ensemble(cfg, run_dir, log=logs.append)  # part of the run (train fits it), over searched_cnn too
    for name in ("ablation", "robustness", "crossdataset"):
        steps.run(name, cfg, run_dir, log=logs.append)
    return cfg, run_dir, logs


# --------------------------------------------------------------------------- perturbations (pure)


def _image(seed: int = 0, size: int = 96) -> np.ndarray:
    return face_like("fake", np.random.default_rng(seed), size)


def test_perturb_noise_is_deterministic_and_unknown_perturbations_are_refused():
    img = np.full((64, 64, 3), 128, np.uint8)
    a = rb.perturb(img, "noise", 5.0, np.random.default_rng(3))
    b = rb.perturb(img, "noise", 5.0, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert rb.perturb(img, "none", 0, None) is img
    with pytest.raises(ValueError):
        rb.perturb(img, "rotate", 1)


# --------------------------------------------------------------------------- ensemble (pure, toy set)


def test_ensemble_beats_or_equals_its_worst_member_on_a_toy_set():
    from sklearn.metrics import roc_auc_score

    from pipeline.detectors import combined as ensemble

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    members = np.column_stack([sig(1.5 * (2 * y - 1) + rng.normal(0, 1.5, len(y))),  # good
                               sig(0.5 * (2 * y - 1) + rng.normal(0, 1.5, len(y))),  # weak
                               sig(rng.normal(0, 1, len(y)))])  # noise
    val = rng.permutation(len(y))[:200]
    test = np.setdiff1d(np.arange(len(y)), val)
    aucs = [roc_auc_score(y[test], members[test, k]) for k in range(3)]
    mean_auc = roc_auc_score(y[test], ensemble.mean_probability(members[test]))
    stacker = ensemble.fit_stacker(members[val], y[val], ["a", "b", "c"])
    stacked_auc = roc_auc_score(y[test], ensemble.apply_stacker(stacker, members[test]))
    assert mean_auc >= min(aucs) and stacked_auc >= min(aucs)
    assert stacked_auc >= max(aucs) - 0.02  # stacking learns to lean on the good member
    assert stacker["coef"][0] > stacker["coef"][2]
    json.dumps(stacker)  # JSON, no pickle
    oof = ensemble.out_of_fold(members[val], y[val], ["a", "b", "c"])
    assert oof.shape == (200,) and ((0 < oof) & (oof < 1)).all()


# --------------------------------------------------------------------------- on the tiny run


def test_search_runs_two_trials_and_yields_a_loadable_model(exp_setup):
    from pipeline.models import load_model

    cfg, run_dir, _ = exp_setup
    out = experiments.latest_dir(run_dir, "search")
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    assert trials["val_auc"].notna().all()
    assert {"blocks", "filters", "kernel_size", "dense_units", "dropout", "pooling", "learning_rate"} <= set(trials)
    best = json.loads((out / "best.json").read_text())
    assert best["params"]["pooling"] in ("gap", "flatten") and 'name = "searched_cnn"' in best["config_entry"]
    model = load_model(run_dir / "models" / "searched_cnn" / "model.keras")  # safe mode
    assert model.name == "searched_cnn" and model.get_layer("embedding") is not None
    assert model.predict_on_batch(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 1)
    summary = pd.read_csv(run_dir / "summary.csv")
    assert "searched_cnn" in set(summary["model"])
    # the best parameters build the registry model from a config entry
    spec = config.ModelSpec(name="searched_cnn", image_size=16, params=best["params"])
    from pipeline.models import build_model

    assert build_model(spec).count_params() == model.count_params()


def test_ablation_grid_shape(exp_setup):
    _, run_dir, _ = exp_setup
    run = results.load_run(str(run_dir))
    grid = run.experiment("ablation")
    assert len(grid) == 4
    assert set(zip(grid["optimizer"], grid["learning_rate"])) == {("sgd", 1e-2), ("sgd", 1e-3), ("adam", 1e-2),
                                                                   ("adam", 1e-3)}
    assert (grid["epochs_run"] == 1).all() and grid["best_val_auc"].between(0, 1).all()


def test_ensemble_models_join_the_comparison(exp_setup):
    _, run_dir, logs = exp_setup
    for name in ("ensemble_mean", "ensemble_stacked"):
        folder = run_dir / "models" / name
        for f in ("metrics.json", "predictions.parquet", "done.json", "history.csv"):
            assert (folder / f).exists(), (name, f)
    stacking = json.loads((run_dir / "models" / "ensemble_stacked" / "stacking.json").read_text())
    assert stacking["members"] == ["baseline_cnn", "custom_cnn", "searched_cnn"] and len(stacking["coef"]) == 3
    summary = pd.read_csv(run_dir / "summary.csv")
    pooled = summary[summary["scope"] == "all"].set_index("model")
    assert {"baseline_cnn", "custom_cnn", "searched_cnn", "ensemble_mean", "ensemble_stacked"} <= set(pooled.index)
    run = results.load_run(str(run_dir))
    assert "ensemble_mean" in run.models() and len(run.comparison()) >= 5
    # cached: a second call recomputes nothing
    before = (run_dir / "models" / "ensemble_mean" / "metrics.json").stat().st_mtime_ns
    cfg = exp_setup[0]
    from pipeline.detectors import combined as ensemble

    again: list[str] = []
    ensemble.run_ensemble(cfg, run_dir, log=again.append)
    assert "cached" in again[0]
    assert (run_dir / "models" / "ensemble_mean" / "metrics.json").stat().st_mtime_ns == before


def test_robustness_table(exp_setup):
    cfg, run_dir, _ = exp_setup
    table = results.load_run(str(run_dir)).experiment("robustness")
    levels = rb.sweep_levels(cfg.experiments)
    assert len(levels) == 12
    # the run's combined model (its verdict on uploads) first, then the Keras models
    models = {"ensemble_routed", "baseline_cnn", "custom_cnn", "searched_cnn"}
    assert set(table["model"]) == models and table["model"].iloc[0] == "ensemble_routed"
    assert len(table) == len(models) * len(levels) * 3  # scopes: all, alpha, beta
    clean = table[(table["perturbation"] == "none") & (table["dataset"] == "all")]
    assert (clean["auc_drop"].abs() < 1e-9).all() and (clean["n"] == 16).all()
    assert set(table["perturbation"]) == set(rb.PERTURBATIONS)
    assert (table.loc[table["perturbation"] == "none", "flip_rate"] == 0).all()
    assert table["flip_rate"].between(0, 1).all() and (table["mean_abs_change"] >= 0).all()
    shortcut = rb.shortcut_table(table)
    assert set(shortcut["model"]) == models and (shortcut["JPEG quality"] == 90).all()


def test_normalise_resizes_and_recompresses():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
    out = rb.perturb(img, "normalise", 90, normalise_size=256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[:250, :250], img)  # re-encoded, not just padded


def test_score_rows_counts_changed_verdicts():
    base = pd.DataFrame({"path": ["a", "b", "c", "d"], "dataset": ["x"] * 4, "y": [0, 0, 1, 1]})
    clean = base.assign(perturbation="none", level=0.0, p_fake=[0.1, 0.2, 0.8, 0.9])
    moved = base.assign(perturbation="normalise", level=90.0, p_fake=[0.1, 0.7, 0.8, 0.3])  # b and d flip
    rows = pd.DataFrame(rb.score_rows("m", pd.concat([clean, moved], ignore_index=True), threshold=0.5))
    got = rows[(rows["perturbation"] == "normalise") & (rows["dataset"] == "all")].iloc[0]
    assert got["flip_rate"] == 0.5 and abs(got["mean_abs_change"] - 0.275) < 1e-9


def test_generalisation_matrix_has_one_cell_per_pair(exp_setup):
    _, run_dir, _ = exp_setup
    matrix = results.load_run(str(run_dir)).experiment("crossdataset")
    pairs = set(zip(matrix["train_on"], matrix["test_on"]))
    assert pairs == {(a, b) for a in ("alpha", "beta") for b in ("alpha", "beta")} and len(matrix) == 4
    assert (matrix["in_domain"] == (matrix["train_on"] == matrix["test_on"])).all()


def test_experiments_are_cached(exp_setup):
    cfg, run_dir, _ = exp_setup
    logs: list[str] = []
    for name in ("ablation", "crossdataset", "robustness", "search"):
        steps.run(name, cfg, run_dir, log=logs.append)
    assert len(logs) == 4 and all("cached" in line for line in logs), logs


def test_missing_experiment_names_the_command(tiny_run):
    run = results.load_run(str(tiny_run))
    with pytest.raises(results.ExperimentNotRun) as err:
        run.experiment("robustness")
    assert "python -m pipeline experiment robustness" in str(err.value)


def test_config_section_and_run_id(tiny_config):
    raw = {"name": "x", "data": ["/tmp"], "models": [{"name": "baseline_cnn"}],
           "experiments": {"model": "tuned_cnn", "learning_rates": [0.1, 0.01]}}
    cfg = config_load.from_dict(raw)
    assert cfg.experiments.learning_rates == (0.1, 0.01) and cfg.experiments.model == "tuned_cnn"
    assert config_load.from_json_dict(config.to_dict(cfg)) == cfg
    # experiment settings and the strategy never change the run id (no retraining)
    plain = config_load.from_dict({k: v for k, v in raw.items() if k != "experiments"})
    assert config.config_fingerprint(plain) == config.config_fingerprint(
        dataclasses.replace(cfg, strategy="mirrored"))
    with pytest.raises(config.ConfigError, match="unknown \\[experiments\\]"):
        config_load.from_dict({**raw, "experiments": {"modle": "x"}})
    with pytest.raises(config.ConfigError, match="members = ... under \\[verdict\\]"):  # moved in format 2
        config_load.from_dict({**raw, "experiments": {"ensemble_members": ["all"]}})
    old_run_json = {**config.to_dict(cfg), "experiments": {**config.to_dict(cfg)["experiments"],
                                                           "ensemble_members": ["all"]}}
    for key in ("members", "routing"):  # a run.json from before the combined model joined [verdict]
        old_run_json["verdict"].pop(key)
    assert config_load.from_json_dict(old_run_json).verdict.members == ("all",)  # run.json of older runs still reads
    with pytest.raises(config.ConfigError, match="strategy"):
        config_load.from_dict({**raw, "strategy": "tpu"})


@pytest.mark.parametrize("path", sorted(config.CONFIG_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_name_real_members(path):
    from pipeline.svm import svm_model_name

    cfg = config_load.load(path)
    rows = set(cfg.model_names) | {svm_model_name(m) for m in cfg.embedding_model_names}
    members = cfg.verdict.members
    assert members == ("all",) or set(members) <= rows, f"{path.name}: ensemble members not in the run"
    assert set(cfg.embeddings.models) <= set(cfg.model_names)


def test_cli_experiment(exp_setup, tmp_path):
    from pipeline.__main__ import main

    _, run_dir, _ = exp_setup
    assert main(["experiment", "robustness", "--run", str(tmp_path / "nope")]) == 2


# --------------------------------------------------------------------------- scale-out


def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, json
        sys.path.insert(0, {str(REPO)!r})
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import numpy as np
        from pipeline.config import Augmentation, ModelSpec
        from pipeline.strategy import make_strategy
        from pipeline.training import train_model
        strategy = make_strategy("mirrored")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (64, 16, 16, 3)).astype(np.uint8)
        y = np.repeat([0, 1], 32)
        spec = ModelSpec(name="baseline_cnn", image_size=16, epochs=1, batch_size=16, early_stopping_patience=0)
        result = train_model(spec, x, y, x[:16], y[:16], augmentation=Augmentation(flip=False, shift=0, zoom=0,
                             brightness=0), strategy="mirrored")
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                          "devices": list(strategy.extended.worker_devices),
                          "epochs": len(result.history), "loss": float(result.history["loss"].iloc[-1]),
                          "predict": list(result.model.predict_on_batch(x[:3].astype("float32")).shape)}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["replicas"] == 2 and len(info["devices"]) == 2
    assert info["epochs"] == 1 and np.isfinite(info["loss"]) and info["predict"] == [3, 1]


def test_unknown_strategy_is_an_error():
    from pipeline.strategy import make_strategy

    with pytest.raises(ValueError, match="mirrored"):
        make_strategy("tpu")
    assert make_strategy("default").num_replicas_in_sync == 1


# --------------------------------------------------------------------------- dashboard pages


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _app(monkeypatch, root: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(root))
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    return at


PAGES = [("app_pages/training.py", "Training", "search"), ("app_pages/robustness.py", "Robustness", "robustness"),
         ("app_pages/generalisation.py", "Generalisation", "crossdataset")]


def test_pages_render_with_experiments(monkeypatch, exp_setup):
    _, run_dir, _ = exp_setup
    at = _app(monkeypatch, run_dir.parent)
    for page, title, _ in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title[0].value == title
        assert at.dataframe, f"{page}: expected the experiment's table"
        assert "python -m pipeline experiment" not in "\n".join(i.value for i in at.info), page
    at.switch_page("app_pages/robustness.py").run()
    at.selectbox(key="robustness_dataset").set_value("alpha").run()
    at.selectbox(key="robustness_metric").set_value("accuracy").run()
    assert not at.exception, [e.value for e in at.exception]
    table = results.load_run(str(run_dir)).experiment("robustness")
    steadiest = rb.most_robust(rb.drop_table(table, "alpha"))  # the headline follows the chance rule
    assert ("Most robust here" if steadiest else "No model here beats chance") in _texts(at)
    assert any("Shortcut check" in h.value for h in at.subheader)  # the one-size, one-quality check


def test_pages_without_experiments_say_what_to_run(monkeypatch, tiny_run):
    at = _app(monkeypatch, tiny_run.parent)
    for page, title, name in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if name == "robustness":  # inference only: a button computes it (tests/test_compute_buttons.py)
            assert "no robustness sweep yet" in _texts(at) and at.button(key="robustness_compute")
        else:  # needs training: the command
            assert f"python -m pipeline experiment {name}" in _texts(at), page


def test_experiment_figures():
    from pipeline import figures_experiments

    trials = pd.DataFrame({"trial_id": ["0", "1"], "status": ["COMPLETED"] * 2, "val_auc": [0.7, 0.8],
                           "blocks": [2, 3], "filters": [8, 16], "kernel_size": [3, 5], "dense_units": [32, 64],
                           "dropout": [0.1, 0.2], "pooling": ["gap", "flatten"], "learning_rate": [1e-3, 1e-4]})
    fig = figures_experiments.search_parallel_figure(trials)
    assert len(fig.data) == 1 and len(fig.data[0].dimensions) == 8
    assert list(fig.data[0].dimensions[5].ticktext) == ["flatten", "gap"]
    grid = pd.DataFrame({"optimizer": ["sgd", "sgd", "adam", "adam"], "learning_rate": [1e-2, 1e-3] * 2,
                         "best_val_auc": [0.6, 0.7, 0.8, 0.9]})
    heat = figures_experiments.ablation_heatmap_figure(grid)
    assert list(heat.data[0].y) == ["sgd", "adam"] and heat.data[0].z[1][1] == 0.9 and len(heat.layout.annotations) == 4
    rows = [{"model": m, "perturbation": p, "level": lv, "dataset": "all", "roc_auc": 0.9 - lv / 200}
            for m in ("a", "b") for p, lv in [("none", 0), ("jpeg", 50), ("jpeg", 30), ("blur", 1), ("blur", 2)]]
    rob = figures_experiments.robustness_figure(pd.DataFrame(rows))
    assert len(rob.data) == 4 and list(rob.data[0].x) == [30.0, 50.0, 100.0]  # clean point at quality 100
    matrix = pd.DataFrame({"train_on": ["x", "x", "y", "y"], "test_on": ["x", "y", "x", "y"],
                           "roc_auc": [0.9, 0.6, 0.55, 0.95]})
    gen = figures_experiments.generalisation_figure(matrix)
    assert gen.data[0].z[0][1] == 0.6 and len(gen.layout.annotations) == 4
    assert figures_experiments.generalisation_figure(matrix.iloc[:0]).layout.annotations  # empty note, no error


def test_crossdataset_epochs_replace_the_fine_tuning_of_pretrained_models():
    from pipeline.experiments import crossdataset

    def spec(model: dict):
        cfg = config_load.from_dict({"models": [model], "experiments": {"model": model["name"], "image_size": 64,
                                                                        "crossdataset_epochs": 2}})
        return crossdataset.spec_for(cfg)

    tuned = spec({"name": "patch_mobilenet", "weights": "imagenet", "epochs": 0, "fine_tune_epochs": 12})
    assert (tuned.epochs, tuned.fine_tune_epochs, tuned.image_size) == (0, 2, 64)
    scratch = spec({"name": "baseline_cnn", "epochs": 9})
    assert (scratch.epochs, scratch.fine_tune_epochs) == (2, 0)


def test_experiment_trainings_use_the_models_own_augmentation_and_balancing(monkeypatch):
    """The ablation and the cross-dataset matrix train a model the way the run does: with its own
    augmentation changes and balance_datasets weights; and their cache keys change with them."""
    from pipeline import training
    from pipeline.experiments import _train

    plain = {"name": "baseline_cnn", "image_size": 16}
    cfg = config_load.from_dict({"models": [plain, {"name": "tuned_cnn", "image_size": 16, "balance_datasets": True,
                                                    "augmentation": {"blur_sigma": 1.0}}]})
    manifest = pd.DataFrame({"dataset": ["a"] * 6 + ["b"] * 2, "y": [0, 1, 0, 1, 0, 1, 0, 1],
                             "split": ["train"] * 8})
    seen = {}

    def fake_train(spec, x_train, y_train, x_val, y_val, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(training, "train_model", fake_train)
    x = np.zeros((8, 16, 16, 3), dtype="uint8")
    mask = np.ones(8, dtype=bool)
    for name, blur, balanced in [("baseline_cnn", 0.0, False), ("tuned_cnn", 1.0, True)]:
        seen.clear()
        with pytest.raises(RuntimeError, match="stop after recording"):
            _train.train_and_score(cfg, cfg.model(name), manifest, x, mask, mask)
        assert seen["augmentation"].blur_sigma == blur
        weights = seen["sample_weight"]
        assert (weights is not None) == balanced
        if balanced:  # each (dataset, label) group weighs the same: b's images count 3 times a's
            assert weights[6] == pytest.approx(3 * weights[0])
    plain_key = _train.training_key(cfg, cfg.model("baseline_cnn"))
    assert plain_key["augmentation"] == config.augmentation_fingerprint(cfg.augmentation)  # old keys kept
    assert "weights" not in plain_key
    balanced_key = _train.training_key(cfg, cfg.model("tuned_cnn"))
    assert balanced_key["augmentation"] != plain_key["augmentation"] and "weights" in balanced_key


def _matrix(aucs: dict[tuple[str, str], float], n: int = 300) -> pd.DataFrame:
    return pd.DataFrame([{"train_on": a, "test_on": b, "in_domain": a == b, "n": n, "roc_auc": auc}
                         for (a, b), auc in aucs.items()])


def test_transfer_findings_ignore_rows_at_chance_on_their_own_data():
    """A model at chance on its own data set says nothing about transfer, however its other cells look."""
    findings = crossdataset.transfer_findings(_matrix({
        ("gan", "gan"): 0.95, ("gan", "swap"): 0.80, ("gan", "paste"): 0.52,
        ("swap", "swap"): 0.51, ("swap", "gan"): 0.58, ("swap", "paste"): 0.50,
        ("paste", "paste"): 0.75, ("paste", "gan"): 0.53, ("paste", "swap"): 0.49}))
    gan, paste, swap = findings
    assert "carries over to **swap** (AUC 0.800)" in gan and "paste" not in gan
    assert "carries over to none of the others" in paste and "gan (AUC 0.530)" in paste
    assert "at chance even on swap's own test split" in swap and "say nothing about transfer" in swap
    nothing = crossdataset.transfer_findings(_matrix({("a", "a"): 0.52, ("a", "b"): 0.70, ("b", "b"): 0.49,
                                                      ("b", "a"): 0.50}))
    assert nothing[0].startswith("The model learned none of the data sets") and len(nothing) == 3

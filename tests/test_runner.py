"""End to end on a tiny synthetic run: artifacts, threshold on validation, caching, resuming, evaluate."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_labelled_folder
from pipeline import artifacts, config, config_load, evaluation, runner


def test_run_writes_the_documented_layout(tiny_run, tiny_config):
    assert (tiny_run / "run.json").exists() and (tiny_run / "manifest.parquet").exists()
    run_json = json.loads((tiny_run / "run.json").read_text())
    assert run_json["status"] == "complete" and run_json["models"] == ["baseline_cnn", "custom_cnn"]
    assert run_json["run_id"] == tiny_run.name and tiny_run.name.startswith("tiny-")
    for name in tiny_config.model_names:
        folder = tiny_run / "models" / name
        for f in ("model.keras", "history.csv", "predictions.parquet", "metrics.json", "done.json"):
            assert (folder / f).exists(), f
        metrics = json.loads((folder / "metrics.json").read_text())
        assert set(metrics["scopes"]) == {"all", "alpha", "beta"}
        assert metrics["params"] > 0 and metrics["file_size_bytes"] > 0 and metrics["train_seconds"] > 0
        assert metrics["latency_ms"]["batch1_p50"] > 0
        history = pd.read_csv(folder / "history.csv")
        assert list(history["epoch"]) == [1, 2, 3, 4] and history["val_auc"].notna().all()
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert list(summary.columns) == evaluation.SUMMARY_COLUMNS
    assert len(summary) == 2 * 2 * 3  # two models and their "+pca_svm" rows (pipeline.embeddings), 3 scopes
    assert not list(tiny_run.rglob(".*.tmp")), "temporary files left behind"


def test_threshold_comes_from_validation_not_test(tiny_run, tiny_config):
    folder = tiny_run / "models" / "baseline_cnn"
    preds = pd.read_parquet(folder / "predictions.parquet")
    metrics = json.loads((folder / "metrics.json").read_text())
    val = preds[preds["split"] == "val"]
    assert metrics["threshold"] == pytest.approx(evaluation.choose_threshold(val["y"], val["p_fake"], "youden"))
    test = preds[preds["split"] == "test"]
    assert metrics["scopes"]["all"]["n"] == len(test)
    assert metrics["scopes"]["all"]["at_threshold"] == evaluation.binary_metrics(test["y"], test["p_fake"],
                                                                                metrics["threshold"])


def test_the_detector_learns_the_synthetic_fake_trace(tiny_run):
    metrics = json.loads((tiny_run / "models" / "baseline_cnn" / "metrics.json").read_text())
    assert metrics["scopes"]["all"]["roc_auc"] > 0.85


def test_saved_model_loads_in_safe_mode_and_reproduces_predictions(tiny_run, tiny_config):
    from pipeline import data
    from pipeline.detectors import keras_model
    from pipeline.models import load_model

    manifest = pd.read_parquet(tiny_run / "manifest.parquet")
    test = manifest[manifest["split"] == "test"]
    model = load_model(tiny_run / "models" / "baseline_cnn" / "model.keras")
    p = keras_model.predict_arrays(model, data.load_arrays(test, 32, None))
    stored = pd.read_parquet(tiny_run / "models" / "baseline_cnn" / "predictions.parquet")
    stored = stored[stored["split"] == "test"].set_index("path").loc[test["path"], "p_fake"].to_numpy()
    np.testing.assert_allclose(p, stored, atol=1e-5)


def test_unchanged_rerun_is_a_cache_hit(tiny_run, tiny_config):
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("model.keras")}
    logs = []
    again = runner.train_run(tiny_config, log=logs.append)
    assert again == tiny_run
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("model.keras")} == before
    assert sum(line.endswith("cached (pass --force to retrain)") for line in logs) == 2  # the two models
    assert any(line.startswith("verdict (") and line.endswith("cached") for line in logs)


def test_changed_config_gets_a_new_run_id(tiny_config):
    _, run_dir, manifest, _ = runner.prepare(tiny_config)
    changed = dataclasses.replace(tiny_config, seed=8)
    _, other_dir, _, _ = runner.prepare(changed)
    assert run_dir != other_dir


def test_changing_a_verdict_setting_keeps_every_trained_model_and_refits_only_the_verdict(tmp_path):
    """The three-way verdict's settings train nothing: a rerun with another band, false-accusation rate,
    calibration, stability switch or flip margin keeps the run (its id and models) and refits verdict.json alone."""
    root = make_labelled_folder(tmp_path / "d", n_per_class=12)
    base = {"name": "policy", "data": [str(root)], "artifacts_dir": str(tmp_path / "art"),
            "training": {"epochs": 1, "batch_size": 8, "early_stopping_patience": 0},
            "models": [{"name": "baseline_cnn", "image_size": 16}]}
    run_dir = runner.train_run(config_load.from_dict(base), log=lambda _: None)
    model_file = run_dir / "models" / "baseline_cnn" / "model.keras"
    keep = model_file.stat().st_mtime_ns
    [policy_file] = run_dir.glob("models/*/verdict.json")
    assert json.loads(policy_file.read_text())["unsure_share"] != 0.2
    from pipeline import verdict

    before = {k: v for k, v in json.loads(policy_file.read_text()).items()
              if k not in ("flip_margin", "stability_copies")}
    policy_file.write_text(json.dumps(before))  # a verdict.json from before these options existed stays current
    old = verdict.load_policy(run_dir)
    assert old.flip_margin == 1.0 and old.stability_copies == list(verdict.PERTURBATIONS)
    for copies in (["sepia"], []):  # a copy this version cannot make; no copy at all (by hand)
        policy_file.write_text(json.dumps({**before, "stability_copies": copies}))
        with pytest.raises(verdict.PolicyError, match="cannot be read"):
            verdict.load_policy(run_dir)
    policy_file.write_text(json.dumps(before))
    changed = {**base, "verdict": {"unsure_share": 0.2, "max_false_positive_rate": 0.01, "calibration": "isotonic",
                                   "stability": False, "per_kind": False, "flip_margin": 3,
                                   "stability_copies": ["half size", "JPEG quality 75"]}}
    logs = []
    assert runner.train_run(config_load.from_dict(changed), log=logs.append) == run_dir
    assert model_file.stat().st_mtime_ns == keep
    assert "baseline_cnn: cached (pass --force to retrain)" in logs
    assert not any(line.startswith("verdict (") and line.endswith("cached") for line in logs)
    policy = json.loads(policy_file.read_text())
    assert (policy["unsure_share"], policy["max_false_positive_rate"], policy["stability"]) == (0.2, 0.01, False)
    assert policy["flip_margin"] == 3.0 and policy["stability_copies"] == ["JPEG quality 75", "half size"]
    assert policy["calibrator"]["method"] == "isotonic"


def test_the_verdict_is_there_before_the_experiments_start(tmp_path, monkeypatch):
    """The experiments never read the verdict, so it is fitted first: on a cold run the Check page has its
    verdict while the robustness sweep and cross-dataset matrices still run (minutes on `default`)."""
    root = make_labelled_folder(tmp_path / "d", n_per_class=12)
    cfg = config_load.from_dict({"name": "order", "data": [str(root)], "artifacts_dir": str(tmp_path / "art"),
                                 "training": {"epochs": 1, "batch_size": 8, "early_stopping_patience": 0},
                                 "models": [{"name": "baseline_cnn", "image_size": 16}]})
    seen = []
    monkeypatch.setattr(runner.steps, "after_train", lambda cfg, run_dir, **_: seen.append(
        sorted(p.name for p in run_dir.glob("models/*/verdict.json"))))
    runner.train_run(cfg, log=lambda _: None)
    assert seen == [["verdict.json"]]


def test_incomplete_model_is_retrained_alone(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=12)
    cfg = config_load.from_dict({"name": "resume", "data": [str(root)], "artifacts_dir": str(tmp_path / "art"),
                                 "training": {"epochs": 1, "batch_size": 8, "early_stopping_patience": 0},
                                 "models": [{"name": "baseline_cnn", "image_size": 16},
                                            {"name": "tuned_cnn", "image_size": 16}]})
    run_dir = runner.train_run(cfg, log=lambda _: None)
    keep = (run_dir / "models" / "baseline_cnn" / "model.keras").stat().st_mtime_ns
    (run_dir / "models" / "tuned_cnn" / "done.json").unlink()  # as if killed before it finished
    logs = []
    runner.train_run(cfg, log=logs.append)
    assert (run_dir / "models" / "baseline_cnn" / "model.keras").stat().st_mtime_ns == keep
    assert (run_dir / "models" / "tuned_cnn" / "done.json").exists()
    assert any(line.startswith("tuned_cnn: test accuracy") for line in logs)


def test_evaluate_on_another_folder(tiny_run, tmp_path):
    other = make_labelled_folder(tmp_path / "unseen", n_per_class=15, seed=99)
    out, summary = runner.evaluate_folders(tiny_run, [config.DataSource(str(other))], models=["baseline_cnn"],
                                           artifacts_root=str(tmp_path / "art"))
    assert set(summary["scope"]) == {"all", "unseen"}
    assert summary.loc[(summary["scope"] == "unseen") & (summary["model"] == "baseline_cnn"), "n"].item() == 30
    assert (out / "baseline_cnn.metrics.json").exists() and (out / "predictions.parquet").exists()
    # evaluate reports what its own predictions say (the tiny CNN's skill on unseen blobs varies with TF's
    # thread scheduling: 0.65-0.9, so the number itself is not asserted beyond "learned something")
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    preds = pd.read_parquet(out / "predictions.parquet")
    preds = preds[preds["model"] == "baseline_cnn"]
    auc = summary.loc[(summary["scope"] == "all") & (summary["model"] == "baseline_cnn"), "roc_auc"].item()
    assert auc == pytest.approx(roc_auc_score(preds["y"], preds["p_fake"])) and auc > 0.5


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    target = tmp_path / "x.json"
    artifacts.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_group_weights_give_every_group_the_same_total():
    from pipeline.training import group_weights

    groups = np.array(["a|0"] * 6 + ["a|1"] * 2 + ["b|0"] * 1 + ["b|1"] * 1)
    w = group_weights(groups)
    totals = {g: w[groups == g].sum() for g in set(groups)}
    assert np.allclose(list(totals.values()), 2.5) and np.isclose(w.mean(), 1.0)


def test_balanced_training_uses_the_weights(tmp_path):
    """A run with balance_datasets trains (the weighted tf.data path) and records the setting."""
    root = tmp_path / "data"
    make_labelled_folder(root / "big", n_per_class=24, seed=3)
    make_labelled_folder(root / "small", n_per_class=8, seed=4)
    cfg = config_load.from_dict({
        "name": "balanced", "data": [str(root)], "seed": 1, "artifacts_dir": str(tmp_path / "artifacts"),
        "training": {"batch_size": 16, "epochs": 1, "early_stopping_patience": 0, "balance_datasets": True},
        "models": [{"name": "baseline_cnn", "image_size": 32}],
        "embeddings": {"enabled": False},
    })
    run_dir = runner.train_run(cfg, log=lambda _: None)
    metrics = json.loads((run_dir / "models" / "baseline_cnn" / "metrics.json").read_text())
    assert metrics["spec"]["balance_datasets"] is True and metrics["epochs_run"] == 1


def test_a_model_shared_with_an_earlier_run_is_reused_not_retrained(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=12)
    base = {"data": [str(root)], "artifacts_dir": str(tmp_path / "art"), "embeddings": {"enabled": False},
            "training": {"epochs": 1, "batch_size": 8, "early_stopping_patience": 0}}
    first = config_load.from_dict({**base, "name": "first", "models": [{"name": "baseline_cnn", "image_size": 16}]})
    first_dir = runner.train_run(first, log=lambda _: None)
    second = config_load.from_dict({**base, "name": "second", "models": [
        {"name": "baseline_cnn", "image_size": 16}, {"name": "tuned_cnn", "image_size": 16}]})
    logs: list[str] = []
    second_dir = runner.train_run(second, log=logs.append)
    assert second_dir != first_dir
    assert any(line.startswith(f"baseline_cnn: reused from run {first_dir.name}") for line in logs)
    assert any(line.startswith("tuned_cnn: test accuracy") for line in logs)  # the new one is trained
    same = [(run / "models" / "baseline_cnn" / "model.keras").read_bytes() for run in (first_dir, second_dir)]
    assert same[0] == same[1]
    # two runs hold it: the most recently finished copy is the one reused (it was trained by the newest code)
    newest = max(first_dir, second_dir, key=lambda run: run.name)  # name order alone would pick the other
    done = newest / "models" / "baseline_cnn" / "done.json"
    done.write_text(json.dumps({"finished": "2999-01-01T00:00:00+00:00"}))
    fourth = config_load.from_dict({**base, "name": "fourth", "models": [
        {"name": "baseline_cnn", "image_size": 16}, {"name": "custom_cnn", "image_size": 16}]})
    logs = []
    runner.train_run(fourth, log=logs.append)
    assert any(line.startswith(f"baseline_cnn: reused from run {newest.name}") for line in logs), logs
    # copies of one training tie on time: the copy that also holds derived results (embeddings) wins
    fourth_dir = next(p for p in (tmp_path / "art").iterdir() if p.name.startswith("fourth-"))
    assert newest.name > fourth_dir.name  # name order alone would pick `newest`
    (fourth_dir / "models" / "baseline_cnn" / "embeddings.npz").write_bytes(b"derived")
    fifth = config_load.from_dict({**base, "name": "fifth", "models": [
        {"name": "baseline_cnn", "image_size": 16}, {"name": "custom_cnn", "image_size": 16, "epochs": 2}]})
    logs = []
    fifth_dir = runner.train_run(fifth, log=logs.append)
    assert any(line.startswith(f"baseline_cnn: reused from run {fourth_dir.name}") for line in logs), logs
    assert (fifth_dir / "models" / "baseline_cnn" / "embeddings.npz").read_bytes() == b"derived"
    # anything that changes the model (here the seed, hence the split and the training) trains anew
    third = config_load.from_dict({**base, "name": "third", "seed": 5, "models": [{"name": "baseline_cnn", "image_size": 16}]})
    logs = []
    runner.train_run(third, log=logs.append)
    assert not any("reused" in line for line in logs)


def test_a_run_warns_when_fine_tuning_is_worse_than_the_head_phase(tmp_path):
    """Fine-tuning that diverges (a NaN rate) leaves the model on its head-phase weights; the run says
    so in its log and in the model's metrics, naming the model and what to change."""
    from pipeline.models import build_model

    params = {"blocks": 2, "patch_size": 0}
    backbone = tmp_path / "backbone.weights.h5"  # a "pretrained" file, so the model trains a head phase first
    build_model(config.ModelSpec(name="patch_mobilenet", image_size=32, params=params)).save_weights(backbone)
    root = make_labelled_folder(tmp_path / "d", n_per_class=24, seed=5)
    cfg = config_load.from_dict({
        "name": "fallback", "data": [str(root)], "seed": 3, "artifacts_dir": str(tmp_path / "art"),
        "training": {"batch_size": 16, "early_stopping_patience": 3},
        "models": [{"name": "patch_mobilenet", "image_size": 32, "weights": str(backbone), "params": params,
                    "epochs": 2, "learning_rate": 0.05, "fine_tune_epochs": 1,
                    "fine_tune_learning_rate": float("nan")}],
        "embeddings": {"enabled": False},
    })
    logs: list[str] = []
    run_dir = runner.train_run(cfg, log=logs.append)
    metrics = json.loads((run_dir / "models" / "patch_mobilenet" / "metrics.json").read_text())
    assert metrics["kept_phase"] == "head"
    warnings = [line for line in logs if line.startswith("WARNING patch_mobilenet:")]
    assert len(warnings) == 1 and "fine_tune_learning_rate" in warnings[0]

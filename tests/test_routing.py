"""Specialists (a model trained on some datasets only) and the routed ensemble (pipeline.routing)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_labelled_folder
from pipeline import config, config_load, routing, runner
from pipeline.detectors import combined as ensemble

# --------------------------------------------------------------------------- router and routed stackers (pure)


def _kinds_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two kinds of 64 px image a glance tells apart: dark with a bright top, and bright with a dark left."""
    rng = np.random.default_rng(seed)
    x = np.empty((2 * n, routing.ROUTER_SIZE, routing.ROUTER_SIZE, 3), dtype=np.uint8)
    for i in range(2 * n):
        img = rng.normal(70 if i < n else 170, 20, (routing.ROUTER_SIZE, routing.ROUTER_SIZE, 3))
        if i < n:
            img[:16] += 80
        else:
            img[:, :16] -= 80
        x[i] = np.clip(img, 0, 255)
    return x, np.array(["dark"] * n + ["bright"] * n)


def test_router_tells_kinds_apart_and_gives_probabilities():
    x, kinds = _kinds_images(40)
    router = routing.fit_router(routing.router_features(x), kinds)
    x_new, kinds_new = _kinds_images(20, seed=1)
    p = routing.route(router, routing.router_features(x_new))
    assert p.shape == (40, 2) and np.allclose(p.sum(axis=1), 1.0)
    assert (np.asarray(router["classes"])[p.argmax(axis=1)] == kinds_new).mean() == 1.0
    json.dumps(router)  # stored as JSON, never pickled


def test_a_router_records_its_input_and_older_routers_read_pixels():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0.3, 0.1, (30, 8)), rng.normal(-0.3, 0.1, (30, 8))])
    router = routing.fit_router(emb, np.array(["a"] * 30 + ["b"] * 30), input=routing.CLIP)
    assert routing.router_input(router) == "clip" and router["C"] == routing.ROUTER_C["clip"] and "size" not in router
    assert (np.asarray(router["classes"])[routing.route(router, emb).argmax(axis=1)] == ["a"] * 30 + ["b"] * 30).all()
    old = {k: v for k, v in router.items() if k != "input"}  # a routing.json written before the choice existed
    assert routing.router_input(old) == "pixels"
    with pytest.raises(ValueError, match="unknown router input"):
        routing.fit_router(emb, np.array(["a"] * 30 + ["b"] * 30), input="hog")


def test_router_features_refuse_the_wrong_size():
    with pytest.raises(ValueError, match="router features need"):
        routing.router_features(np.zeros((2, 32, 32, 3), dtype=np.uint8))


def _two_specialists(n: int = 200, seed: int = 0):
    """Member A knows kind a (chance on b), member B knows kind b (chance on a)."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["a"] * n + ["b"] * n)
    y = rng.integers(0, 2, 2 * n)
    signal = np.where(y == 1, 1.5, -1.5) + rng.normal(0, 1, 2 * n)
    noise = rng.normal(0, 1.5, (2 * n, 2))
    za = np.where(kinds == "a", signal, noise[:, 0])
    zb = np.where(kinds == "b", signal, noise[:, 1])
    p = 1 / (1 + np.exp(-np.column_stack([za, zb])))
    return p, y, kinds


def test_routed_stackers_listen_to_the_specialist_of_each_kind():
    from sklearn.metrics import roc_auc_score

    p, y, kinds = _two_specialists()
    classes = ["a", "b"]
    truth = np.eye(2)[(kinds == "b").astype(int)]
    routed = routing.fit_routed(p, y, kinds, ["A", "B"])
    assert abs(routed["stackers"]["a"]["coef"][0]) > 3 * abs(routed["stackers"]["a"]["coef"][1])
    assert abs(routed["stackers"]["b"]["coef"][1]) > 3 * abs(routed["stackers"]["b"]["coef"][0])
    p_routed = routing.out_of_fold_routed(p, y, kinds, truth, classes, ["A", "B"])
    p_stacked = ensemble.out_of_fold(p, y, ["A", "B"])
    for kind in classes:  # per kind, routing beats one stacker for all, which must mix in the noise
        rows = kinds == kind
        assert roc_auc_score(y[rows], p_routed[rows]) > roc_auc_score(y[rows], p_stacked[rows])
    # a one-hot route gives exactly that kind's stacker
    one = routing.apply_routed(routed, p[:5], np.tile([1.0, 0.0], (5, 1)), classes)
    assert np.allclose(one, ensemble.apply_stacker(routed["stackers"]["a"], p[:5]))


def test_a_kind_with_one_class_falls_back_to_the_pooled_stacker():
    p, y, kinds = _two_specialists(60)
    y = np.where(kinds == "b", 1, y)  # kind b: fakes only in validation
    routed = routing.fit_routed(p, y, kinds, ["A", "B"])
    assert routed["stackers"]["b"] == routed["pooled"]


def _routed_predictions() -> pd.DataFrame:
    """Nine test images (a: 6, b: 3) and one validation image, with the router's picks. Dataset a:
    rows 4 and 5 misrouted to b; dataset b: row 7 misrouted to c (a kind no test image is from);
    the validation row is misrouted too but is not test."""
    return pd.DataFrame({
        "path": [f"/img/{i}.png" for i in range(10)],
        "dataset": ["a"] * 6 + ["b"] * 4,
        "split": ["test"] * 9 + ["val"],
        "y": [0, 1, 0, 1, 0, 1, 0, 1, 1, 0],
        "p_fake": [0.2, 0.8, 0.3, 0.7, 0.9, 0.1, 0.4, 0.3, 0.6, 0.5],
        routing.ROUTED_TO: ["a", "a", "a", "a", "b", "b", "b", "c", "b", "a"],
        routing.ROUTE_CONFIDENCE: [0.9, 0.9, 0.8, 0.9, 0.55, 0.7, 0.9, 0.95, 0.8, 0.6],
    }).assign(label=lambda d: np.where(d["y"] == 1, "fake", "real"))


def test_routing_report_confusion_accuracy_and_misrouted_rows():
    from pipeline.routing import routing_report

    report = routing_report(_routed_predictions(), threshold=0.5)
    assert report.n == 9 and report.accuracy == pytest.approx(6 / 9)
    assert report.confusion.index.tolist() == ["a", "b", "c"] == report.confusion.columns.tolist()
    assert report.confusion.to_numpy().tolist() == [[4, 2, 0], [0, 2, 1], [0, 0, 0]]
    per = report.per_dataset.set_index("dataset")
    assert per["n"].tolist() == [6, 3] and per["routed_correctly"].tolist() == [4, 2]
    assert per["router_accuracy"].tolist() == pytest.approx([4 / 6, 2 / 3])
    groups = report.by_routing.set_index(["dataset", "routing"])
    assert groups.index.tolist() == [("a", "correct"), ("a", "misrouted"), ("b", "correct"), ("b", "misrouted")]
    assert groups["n"].tolist() == [4, 2, 2, 1]
    assert groups["accuracy"].tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0])
    assert groups.loc[("a", "correct"), "roc_auc"] == 1.0 and groups.loc[("a", "misrouted"), "roc_auc"] == 0.0
    assert pd.isna(groups.loc[("b", "misrouted"), "roc_auc"])  # one class only: no AUC
    # the misrouted test images, surest first; the misrouted validation row is not among them
    wrong = report.misrouted
    assert wrong["path"].tolist() == ["/img/7.png", "/img/5.png", "/img/4.png"]
    assert wrong[routing.ROUTED_TO].tolist() == ["c", "b", "b"] and wrong["dataset"].tolist() == ["b", "a", "a"]
    assert wrong["label"].tolist() == ["fake", "fake", "real"]
    assert wrong["p_fake"].tolist() == pytest.approx([0.3, 0.1, 0.9])
    assert list(wrong.columns) == ["path", "dataset", routing.ROUTED_TO, routing.ROUTE_CONFIDENCE, "label", "p_fake"]


def test_routing_report_of_a_run_without_the_router_columns_is_none():
    from pipeline.routing import routing_report

    old = _routed_predictions().drop(columns=[routing.ROUTED_TO, routing.ROUTE_CONFIDENCE])
    assert routing_report(old, 0.5) is None


def test_routing_report_without_misroutes():
    from pipeline.routing import routing_report

    preds = _routed_predictions().assign(**{routing.ROUTED_TO: lambda d: d["dataset"]})
    report = routing_report(preds, 0.5)
    assert report.accuracy == 1.0 and report.misrouted.empty and report.by_routing.empty
    assert report.confusion.to_numpy().tolist() == [[6, 0], [0, 3]]


# --------------------------------------------------------------------------- specialists in a run


@pytest.fixture(scope="module")
def two_kinds(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    make_labelled_folder(root / "big", n_per_class=24, seed=3)
    make_labelled_folder(root / "small", n_per_class=12, seed=4)
    return root


def _cfg(root, tmp_path, models, **extra):
    return config_load.from_dict({
        "name": "specialists", "data": [str(root)], "seed": 1, "artifacts_dir": str(tmp_path / "artifacts"),
        "training": {"batch_size": 16, "epochs": 1, "early_stopping_patience": 0},
        "models": models, "embeddings": {"enabled": False}, **extra,
    })


def test_a_specialist_trains_on_its_datasets_and_scores_every_image(two_kinds, tmp_path):
    cfg = _cfg(two_kinds, tmp_path, [
        {"name": "baseline_cnn", "image_size": 16},
        {"name": "small_only", "architecture": "baseline_cnn", "image_size": 16, "datasets": ["small"]},
    ], verdict={"members": ["baseline_cnn", "small_only"]})
    run_dir = runner.train_run(cfg, log=lambda _: None)
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    n_small_train = int(((manifest["split"] == "train") & (manifest["dataset"] == "small")).sum())
    metrics = json.loads((run_dir / "models" / "small_only" / "metrics.json").read_text())
    assert metrics["n_train"] == n_small_train and metrics["datasets"] == ["small"]
    preds = pd.read_parquet(run_dir / "models" / "small_only" / "predictions.parquet")
    assert set(preds["dataset"]) == {"big", "small"}  # scored everywhere, like any model
    from pipeline.models import load_model

    assert load_model(run_dir / "models" / "small_only" / "model.keras").name == "small_only"
    # the routed ensemble: one stacker per dataset, a router fitted on the training images
    routing_json = json.loads((run_dir / "models" / "ensemble_routed" / "routing.json").read_text())
    assert set(routing_json["stackers"]) == {"big", "small"}
    assert routing_json["router"]["classes"] == ["big", "small"]
    assert 0.0 <= routing_json["router_test_accuracy"] <= 1.0
    # every val and test row records the router's pick and its probability; test accuracy agrees
    routed = pd.read_parquet(run_dir / "models" / "ensemble_routed" / "predictions.parquet")
    assert set(routed["split"]) == {"val", "test"} and routed[routing.ROUTED_TO].isin(["big", "small"]).all()
    assert routed[routing.ROUTE_CONFIDENCE].between(0.5, 1.0).all()  # the most probable of two kinds
    test = routed[routed["split"] == "test"]
    assert routing_json["router_test_accuracy"] == pytest.approx((test[routing.ROUTED_TO] == test["dataset"]).mean())
    summary = pd.read_csv(run_dir / "summary.csv")
    assert {"ensemble_routed", "small_only"} <= set(summary["model"])


def test_a_specialist_of_a_missing_dataset_is_skipped_and_one_of_a_partly_missing_is_a_clear_error(two_kinds, tmp_path):
    """``default`` holds specialists of the shared sets: trained with ``--data`` on your own folder it trains
    the rest, and the run is the one of the config without them."""
    plain = {"name": "baseline_cnn", "image_size": 16}
    absent = {"name": "x", "architecture": "baseline_cnn", "image_size": 16, "datasets": ["nowhere"]}
    cfg = _cfg(two_kinds, tmp_path, [plain, absent], verdict={"members": ["baseline_cnn", "x"]})
    logs: list[str] = []
    run_dir = runner.train_run(cfg, log=logs.append)
    assert "x: skipped, a specialist of nowhere (not in this data)" in logs
    assert not (run_dir / "models" / "x").exists() and (run_dir / "models" / "baseline_cnn" / "done.json").exists()
    without = _cfg(two_kinds, tmp_path, [plain], verdict={"members": ["baseline_cnn"]})
    assert runner.prepare(without)[0] == run_dir.name
    partly = _cfg(two_kinds, tmp_path, [{**absent, "datasets": ["small", "nowhere"]}])
    with pytest.raises(ValueError, match=r"x: datasets \['nowhere'\] have no images in this run; its datasets are big, small"):
        runner.train_run(partly, log=lambda _: None)


def test_config_checks_architectures_and_names(two_kinds, tmp_path):
    with pytest.raises(config.ConfigError, match="unknown architecture 'nope' of model 'x'"):
        _cfg(two_kinds, tmp_path, [{"name": "x", "architecture": "nope"}])
    with pytest.raises(config.ConfigError, match="'custom_cnn' is a registry model"):
        _cfg(two_kinds, tmp_path, [{"name": "custom_cnn", "architecture": "baseline_cnn"}])


def test_specialist_settings_change_the_run_id_and_absent_ones_do_not(two_kinds, tmp_path):
    plain = _cfg(two_kinds, tmp_path, [{"name": "baseline_cnn", "image_size": 16}])
    fingerprint = config.config_fingerprint(plain)
    assert "datasets" not in fingerprint["models"][0]  # runs made before the option keep their ids
    special = dataclasses.replace(plain, models=(dataclasses.replace(plain.models[0], datasets=("small",)),))
    assert config.config_fingerprint(special) != fingerprint
    # run.json round trip keeps the specialist
    back = config_load.from_json_dict(config.to_dict(special))
    assert back.models[0].datasets == ("small",)


def test_the_cross_dataset_matrix_can_train_a_specialists_recipe_on_each_data_set(two_kinds, tmp_path):
    from pipeline.experiments import crossdataset

    models = [{"name": "small_only", "architecture": "baseline_cnn", "image_size": 16, "datasets": ["small"]}]
    cfg = _cfg(two_kinds, tmp_path, models, experiments={"model": "small_only", "image_size": 16})
    spec = crossdataset.spec_for(cfg)
    assert spec.name == "small_only" and spec.architecture == "baseline_cnn" and spec.datasets == ()
    with pytest.raises(config.ConfigError, match="neither a registered model nor a Keras model of this config"):
        _cfg(two_kinds, tmp_path, models, experiments={"model": "nowhere"})

"""A detector of a new kind is one small module plus a registry line: this test registers one (a logistic
regression on each image's mean colour, persisted as JSON) and runs it through train, evaluate and predict,
then checks the protocol, the store's one writer and the refusal of old run folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_images
from pipeline import artifacts, config, config_load, detectors, results, runner, store
from pipeline.detectors import TrainContext, register_kind

KIND = "mean_colour_test"


class MeanColour:
    """p(fake) = sigmoid(w . mean RGB / 255 + b)."""

    kind = KIND
    image_size = None

    def __init__(self, name: str, coef: list[float], intercept: float, threshold: float):
        self.name, self.coef, self.intercept, self.threshold = name, np.asarray(coef), intercept, threshold

    def predict_proba(self, rgb_images):
        x = np.array([im.reshape(-1, 3).mean(axis=0) / 255.0 for im in rgb_images]).reshape(-1, 3)
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))


def _train(ctx: TrainContext) -> dict:
    from sklearn.linear_model import LogisticRegression

    from pipeline import evaluation, images

    m = ctx.manifest
    split, y = m["split"].to_numpy(), m["y"].to_numpy()
    rgb = [images.load_rgb(p) for p in m["path"]]
    x = np.array([im.reshape(-1, 3).mean(axis=0) / 255.0 for im in rgb])
    lr = LogisticRegression().fit(x[split == "train"], y[split == "train"])
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    p = lr.predict_proba(x)[:, 1]
    threshold = evaluation.choose_threshold(y[val], p[val], ctx.cfg.threshold_rule)
    preds = store.prediction_rows(m, val, p[val], test, p[test])
    weights = {"coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}
    return store.write_model(ctx.run_dir, ctx.spec.name, predictions=preds, metrics={
        "kind": KIND, "image_size": 0, "params": 4, "file_size_bytes": 0, "train_seconds": 0.0,
        "threshold": threshold, "threshold_rule": ctx.cfg.threshold_rule, "latency_ms": {},
        "scopes": evaluation.evaluate_predictions(preds[preds["split"] == "test"], threshold),
        "validation": evaluation.scope_metrics(y[val], p[val], threshold)},
        files={"weights.json": lambda path: artifacts.write_json(path, weights)})


def _load(run_dir: Path, name: str) -> MeanColour:
    w = artifacts.read_json(store.model_file(run_dir, name, "weights.json"))
    return MeanColour(name, w["coef"], w["intercept"], float(store.read_metrics(run_dir, name)["threshold"]))


register_kind(KIND, load=_load, train=_train, description="test: mean colour + logistic regression")


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour_data")
    write_images(root / "set" / "real", "real", 24, 1)
    write_images(root / "set" / "fake", "fake", 24, 2)
    cfg = config_load.from_dict({"name": "kinds", "data": [str(root)], "seed": 3,
                                 "artifacts_dir": str(tmp_path_factory.mktemp("artifacts")),
                                 "models": [{"name": "colour", "kind": KIND}], "embeddings": {"enabled": False}})
    return root, runner.train_run(cfg, log=lambda _: None)


def test_a_new_kind_trains_into_the_run_folder_through_the_store(colour_run):
    _, run_dir = colour_run
    assert store.is_model_done(run_dir, "colour")
    assert store.read_metrics(run_dir, "colour")["kind"] == KIND
    assert store.model_file(run_dir, "colour", "weights.json").is_file()
    assert "colour" in set(results.load_run(run_dir).summary()["model"])
    det = detectors.load(run_dir, "colour")
    assert isinstance(det, detectors.Detector) and det.kind == KIND
    p = det.predict_proba([np.zeros((20, 30, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))


def test_a_new_kind_is_evaluated_and_predicted_like_any_detector(colour_run, tmp_path, capsys):
    from pipeline.__main__ import main

    root, run_dir = colour_run
    out, summary = runner.evaluate_folders(run_dir, [config.DataSource(path=str(root / "set"), name="again")])
    row = summary[(summary["model"] == "colour") & (summary["scope"] == "all")].iloc[0]
    assert row["n"] == 48 and row["roc_auc"] > 0.5
    stored = store.read_predictions(run_dir, "colour")
    test_file = stored[stored["split"] == "test"]["path"].iloc[0]
    assert main(["predict", test_file, "--run", str(run_dir), "--whole-image"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    colour = [r for r in records if r.get("model") == "colour"]
    assert colour and colour[0]["p_fake"] == pytest.approx(
        float(stored[stored["path"] == test_file]["p_fake"].iloc[0]), abs=1e-5)  # same pixels as training


def test_a_model_folder_is_complete_only_when_done_json_is_written(tmp_path):
    import pandas as pd

    def explode(path):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.write_model(tmp_path, "m", metrics={"threshold": 0.5}, predictions=pd.DataFrame(),
                          files={"weights.json": explode})
    assert not store.is_model_done(tmp_path, "m")
    store.write_model(tmp_path, "m", metrics={"threshold": 0.5}, predictions=pd.DataFrame())
    assert store.is_model_done(tmp_path, "m") and store.read_metrics(tmp_path, "m")["kind"] == "keras"


def test_an_unknown_kind_is_a_config_error():
    with pytest.raises(config.ConfigError, match="unknown detector kind 'nope'"):
        config_load.from_dict({"name": "x", "data": ["/tmp"], "models": [{"name": "a", "kind": "nope"}]})


def test_an_old_run_folder_gives_a_clear_message(colour_run, tmp_path, capsys):
    import shutil

    _, run_dir = colour_run
    old = tmp_path / run_dir.name
    shutil.copytree(run_dir, old)
    run_json = store.read_run_json(old)
    run_json.pop("format")
    artifacts.write_json(store.run_file(old, store.RUN_JSON), run_json)
    with pytest.raises(results.ArtifactError, match="older version.*--force"):
        results.load_run(old)
    with pytest.raises(results.RunNotFound, match="older version"):
        results.latest_run(tmp_path)
    from pipeline.__main__ import main

    image = store.read_predictions(run_dir, "colour")["path"].iloc[0]
    for argv in (["predict", image, "--run", str(old)], ["evaluate", "--data", str(Path(image).parent), "--run", str(old)],
                 ["experiment", "robustness", "--run", str(old)], ["report", "--run", str(old)]):
        assert main(argv) == 2, argv  # a message, not a traceback
        assert "older version" in capsys.readouterr().err, argv


def test_loading_detectors_imports_no_training_code(tiny_run):
    import subprocess
    import sys

    from conftest import REPO

    run_dir = tiny_run
    code = ("import sys; from pipeline import detectors, checking; from pipeline.detectors import combined; "
            f"detectors.load_many({str(run_dir)!r}); checking.load_check_setup(__import__('pathlib').Path({str(run_dir)!r})); "
            "bad = [m for m in ('pipeline.training', 'pipeline.inputs', 'pipeline.runner') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_spec_without_image_size_takes_the_registry_default():
    from pipeline.models import REGISTRY

    cfg = config_load.from_dict({"name": "x", "data": ["/tmp"], "models": [{"name": "baseline_cnn", "image_size": 32}]})
    named = config_load.apply_overrides(cfg, models=["mobilenet"])  # `train --models mobilenet`
    assert named.models[0].image_size == REGISTRY["mobilenet"].default_image_size
    entry = config_load.from_dict({"name": "x", "data": ["/tmp"], "models": [{"name": "densenet121"}]})
    assert entry.models[0].image_size == REGISTRY["densenet121"].default_image_size


def test_occlusion_explains_a_detector_without_gradients(colour_run, tmp_path, capsys):
    from pipeline.__main__ import main

    _, run_dir = colour_run
    test_file = store.read_predictions(run_dir, "colour").query("split == 'test'")["path"].iloc[0]
    out = tmp_path / "maps"
    assert main(["predict", test_file, "--run", str(run_dir), "--whole-image", "--explain", "occlusion",
                 "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    png = next(r["explanation"] for r in records if r.get("model") == "colour")
    from PIL import Image

    assert Image.open(png).size[0] > 32


def test_the_check_path_scores_a_combined_models_members_once_per_image():
    """A member the caller did not load (e.g. CLIP on the Check page) is scored once for the combined record and
    the verdict together, not once for each (each CLIP embedding costs 0.2-0.5 s)."""
    import pandas as pd

    from pipeline import checking, verdict_fit
    from pipeline.detectors.combined import Combiner

    calls = []

    class Counting(MeanColour):
        def predict_proba(self, rgb_images):
            calls.append(len(rgb_images))
            return super().predict_proba(rgb_images)

    member = Counting("colour", [3.0, 0.0, 0.0], -1.5, 0.5)
    combiner = Combiner(name="ensemble_stacked", members=["colour"], threshold=0.5,
                        spec={"members": ["colour"], "coef": [1.0], "intercept": 0.0}, detectors={"colour": member})
    rng = np.random.default_rng(0)
    val = pd.DataFrame({"dataset": "d", "y": np.repeat([0, 1], 50), "p_fake": np.r_[rng.uniform(0, 0.6, 50),
                                                                                    rng.uniform(0.4, 1, 50)]})
    policy = verdict_fit.fit_policy(val, "ensemble_stacked", stability=False)
    rgb = np.full((32, 32, 3), 200, np.uint8)
    check = checking.check_image("x.png", rgb, {}, crop_faces=False, combiner=combiner, policy=policy)
    assert check.faces[0].combined is not None and check.faces[0].verdict is not None
    assert calls == [1]

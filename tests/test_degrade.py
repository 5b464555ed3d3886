"""pipeline.degrade: the photo degradations of the robustness sweep, the verdict's stability check and
the frozen-encoder heads' augmented copies."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import degrade
from pipeline.config import Augmentation
from conftest import face_like


def _image(seed: int = 0, size: int = 96) -> np.ndarray:
    return face_like("fake", np.random.default_rng(seed), size)


def _high_freq_energy(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float((lap ** 2).mean())


def test_jpeg_quality_lowers_encoded_size_and_changes_pixels():
    img = _image()
    sizes = [len(degrade.jpeg_bytes(img, q)) for q in (95, 75, 50, 30)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] * 0.7
    errs = [np.abs(degrade.jpeg(img, q).astype(int) - img).mean() for q in (95, 30)]
    assert 0 < errs[0] < errs[1]
    assert degrade.jpeg(img, 50).shape == img.shape and degrade.jpeg(img, 50).dtype == np.uint8


def test_blur_lowers_high_frequency_energy():
    img = _image(1)
    e = [_high_freq_energy(x) for x in (img, degrade.blur(img, 1.0), degrade.blur(img, 2.0))]
    assert e[0] > e[1] > e[2] and e[2] < 0.2 * e[0]
    assert abs(degrade.blur(img, 2.0).astype(float).mean() - img.mean()) < 2  # brightness kept


def test_scaling_loses_detail():
    img = _image(2)
    half, quarter = degrade.rescale(img, 0.5), degrade.rescale(img, 0.25)
    assert half.shape == img.shape == quarter.shape
    assert _high_freq_energy(img) > _high_freq_energy(half) > _high_freq_energy(quarter)
    assert np.abs(quarter.astype(int) - img).mean() > np.abs(half.astype(int) - img).mean() > 0


def test_noise_adds_variance_deterministically():
    img = np.full((64, 64, 3), 128, np.uint8)
    for sigma in (5.0, 10.0):
        out = degrade.noise(img, sigma, np.random.default_rng(0))
        assert (out.astype(float) - 128).std() == pytest.approx(sigma, rel=0.05)
    assert np.array_equal(degrade.noise(img, 5.0, np.random.default_rng(3)), degrade.noise(img, 5.0, np.random.default_rng(3)))


def test_resize_changes_the_size_and_keeps_a_floor():
    img = _image(3, 100)
    assert degrade.resize(img, 0.5).shape == (50, 50, 3)
    assert degrade.resize(img, 2.0).shape == (200, 200, 3)
    assert degrade.resize(img[:10, :10], 0.1).shape == (8, 8, 3)


def test_crop_takes_fractions_from_each_side_and_never_returns_a_sliver():
    img = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    out = degrade.crop(img, 0.1, 0.0, 0.05, 0.0)
    assert out.shape == (90, 76, 3)
    assert np.array_equal(out, img[10:, 4:])
    assert degrade.crop(img, 0.01, 0.01, 0.01, 0.01).shape == (98, 78, 3)  # a small fraction still cuts a pixel
    tiny = img[:9, :9]
    assert np.array_equal(degrade.crop(tiny, 0.3, 0.3, 0.3, 0.3), tiny)  # would be under 8 px: left whole


def test_augmented_copy_is_deterministic_per_rng_and_varies_between_draws():
    img = _image(4, 128)
    aug = Augmentation(flip=True, shift=0.0, zoom=0.1, brightness=0.0, jpeg_quality=(70, 100), downscale=0.5,
                       blur_sigma=1.0, degrade_probability=0.5)
    a = degrade.augmented_copy(img, aug, np.random.default_rng([42, 7]))
    b = degrade.augmented_copy(img, aug, np.random.default_rng([42, 7]))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.ndim == 3
    copies = [degrade.augmented_copy(img, aug, np.random.default_rng([42, i])) for i in range(8)]
    assert len({c.shape for c in copies}) > 1  # random crops
    assert all(c.shape[0] >= 128 * 0.8 - 1 and c.shape[1] >= 128 * 0.8 - 1 for c in copies)  # at most zoom per side
    assert all(not np.array_equal(c, img) for c in copies)  # JPEG always applies
    img_before = img.copy()
    degrade.augmented_copy(img, aug, np.random.default_rng(0))
    assert np.array_equal(img, img_before)


def test_augmented_copy_without_changes_is_the_image():
    img = _image(5, 64)
    none = Augmentation(flip=False, shift=0.0, zoom=0.0, brightness=0.0)
    assert np.array_equal(degrade.augmented_copy(img, none, np.random.default_rng(0)), img)


def test_augmented_batches_are_copy_major_and_the_same_copy_for_every_caller(tmp_path):
    """Copy c of an image is the same pixels whoever asks (a CLIP head, the router, the stackers), whatever the
    batch size, so a content-keyed cache embeds it once."""
    from PIL import Image

    from pipeline import data, images

    paths = []
    for i in range(3):
        path = tmp_path / f"face{i}.png"
        Image.fromarray(_image(i, 48)).save(path)
        paths.append(str(path))
    aug = Augmentation(flip=True, zoom=0.1, downscale=0.5, blur_sigma=1.0, degrade_probability=1.0,
                       jpeg_quality=(70, 90))
    got = {at: batch for at, batch in data.augmented_batches(paths, aug, copies=2, seed=7, max_pixels=10**7, chunk=2)}
    assert sorted(got) == [0, 2, 3, 5]  # copy 0 of the 3 images (batches of 2 and 1), then copy 1
    flat = [img for at in sorted(got) for img in got[at]]
    for k, img in enumerate(flat):
        copy, i = divmod(k, 3)
        expected = degrade.augmented_copy(images.load_rgb(paths[i]), aug, degrade.copy_rng(7, paths[i], copy))
        np.testing.assert_array_equal(img, expected)
    assert not np.array_equal(flat[0], flat[3])  # two copies of one image differ
    one_batch = [img for _, batch in data.augmented_batches(paths, aug, 2, 7, 10**7, chunk=64) for img in batch]
    assert all(np.array_equal(a, b) for a, b in zip(one_batch, flat))

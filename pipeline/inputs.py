"""The tf.data input pipeline: decoded uint8 arrays in, shuffled, augmented, batched, prefetched.

Images are decoded and resized once by ``pipeline.data.load_arrays`` (Pillow, the same decoder the
CLI and dashboard use for uploads, so training and serving see identical pixels) and cached on
disk; this module only feeds them to Keras. Augmentation runs in the input pipeline during
training only, never at evaluation.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import keras

from pipeline.config import Augmentation

AUTOTUNE = tf.data.AUTOTUNE


def augmentation_layers(aug: Augmentation, seed: int) -> list[keras.layers.Layer]:
    layers = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom((-aug.zoom, aug.zoom), fill_mode="reflect", seed=seed + 2))
    if aug.brightness:
        layers.append(keras.layers.RandomBrightness(aug.brightness, value_range=(0.0, 255.0), seed=seed + 3))
    return layers


def _draw(seed: tf.Tensor, stream: int, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    """One uniform number in [low, high) from an image's ``seed`` (int64) and a ``stream`` number
    that keeps the draws of different decisions apart: stateless, so a run repeats exactly."""
    return tf.random.stateless_uniform([], tf.stack([seed, tf.constant(stream, tf.int64)]), low, high)


def random_blur(image: tf.Tensor, largest_sigma: float, probability: float, seed: tf.Tensor) -> tf.Tensor:
    """With ``probability``, blur a uint8 (H, W, 3) image with a Gaussian of random sigma in
    (0.1, largest_sigma] px (separable, reflected edges); the draws come from ``seed`` (int64).
    Not ``keras.layers.RandomGaussianBlur``: it convolves every image of the batch with the full 2-D
    kernel, ~2 s per batch of 32 images at 256 px on 2 CPU cores, which doubled the training time of
    patch_mobilenet."""
    radius = max(1, math.ceil(3 * largest_sigma))

    def degrade() -> tf.Tensor:
        sigma = _draw(seed, 1, 0.1, largest_sigma)
        taps = tf.range(-radius, radius + 1, dtype=tf.float32)
        kernel = tf.exp(-0.5 * (taps / sigma) ** 2)
        kernel /= tf.reduce_sum(kernel)
        x = tf.pad(tf.cast(image, tf.float32)[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
        x = tf.nn.depthwise_conv2d(x, tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1]), [1, 1, 1, 1], "VALID")
        x = tf.nn.depthwise_conv2d(x, tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1]), [1, 1, 1, 1], "VALID")
        return tf.cast(tf.clip_by_value(tf.round(x[0]), 0.0, 255.0), tf.uint8)

    return tf.cond(_draw(seed, 0) < probability, degrade, lambda: image)


def random_downscale(image: tf.Tensor, smallest: float, probability: float, seed: tf.Tensor) -> tf.Tensor:
    """With ``probability``, shrink a uint8 (H, W, 3) image by a random factor in [smallest, 1)
    (antialiased) and resize it back to (H, W): the detail a re-shared, downsized photo has lost.
    The draws come from ``seed`` (int64)."""
    def degrade() -> tf.Tensor:
        size = tf.shape(image)[:2]
        factor = _draw(seed, 3, smallest, 1.0)
        small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32), 1)
        x = tf.image.resize(tf.cast(image, tf.float32), small, antialias=True)
        x = tf.image.resize(x, size, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)

    return tf.cond(_draw(seed, 2) < probability, degrade, lambda: image)


def make_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int = 32, training: bool = False,
                 augmentation: Augmentation | None = None, seed: int = 0,
                 sample_weight: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of float32 images in 0..255 (models scale inside), with labels when ``y`` is given
    (and per-image loss weights when ``sample_weight`` is). Training batches are shuffled and
    augmented from ``seed`` alone: the same seed gives the same batches, epoch after epoch."""
    tensors = (x,) if y is None else (x, np.asarray(y, dtype=np.float32).reshape(-1, 1))
    if sample_weight is not None and y is not None:
        tensors = (*tensors, np.asarray(sample_weight, dtype=np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    aug = augmentation if (training and augmentation is not None and augmentation.enabled()) else None
    if aug is not None and (aug.blur_sigma or aug.downscale or aug.jpeg_quality):
        # one random number per image and epoch, from the seed: the stateless draws below derive from it
        image_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def degrade(elements, image_seed):
            image, *rest = elements
            if aug.blur_sigma:  # before JPEG: a shared photo is resized, then compressed
                image = random_blur(image, aug.blur_sigma, aug.degrade_probability, image_seed)
            if aug.downscale:
                image = random_downscale(image, aug.downscale, aug.degrade_probability, image_seed)
            if aug.jpeg_quality:
                lo, hi = aug.jpeg_quality
                jpeg_seed = tf.stack([image_seed, tf.constant(4, tf.int64)])
                image = tf.image.stateless_random_jpeg_quality(image, lo, hi, jpeg_seed)
            return (image, *rest)

        ds = tf.data.Dataset.zip(ds, image_seeds).map(degrade, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    layers = augmentation_layers(aug, seed) if aug is not None else []

    def to_float(image, *rest):
        image = tf.cast(image, tf.float32)
        for layer in layers:
            image = layer(image, training=True)
        return (tf.clip_by_value(image, 0.0, 255.0), *rest)

    ds = ds.map(to_float, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)

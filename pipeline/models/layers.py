"""Custom, serializable layers shared by the model zoo.

Every custom layer is registered with ``keras.saving.register_keras_serializable`` under the
``deepfake_lens`` package and implements ``get_config``, so ``.keras`` files load with
``safe_mode=True`` (no Lambda layers anywhere in the zoo).
"""
from __future__ import annotations

import keras
from keras import ops

# ImageNet statistics used by keras.applications' own ``preprocess_input``.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # "torch" mode, on 0..1 values
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # "caffe" mode, on 0..255 values, BGR order

PREPROCESS_MODES = ("tf", "torch", "caffe")


@keras.saving.register_keras_serializable(package="deepfake_lens")
class ImagenetPreprocess(keras.layers.Layer):
    """ImageNet input preprocessing of a ``keras.applications`` backbone, as a layer.

    Input: float RGB images in 0..255 (channels last). ``mode``:

    - ``"tf"``: ``x / 127.5 - 1`` (MobileNet, Xception, ...).
    - ``"torch"``: ``x / 255``, then ``(x - mean) / std`` with ImageNet RGB mean/std (DenseNet).
    - ``"caffe"``: RGB -> BGR, then subtract the ImageNet BGR means, no scaling (ResNet50, VGG16).

    Same arithmetic as ``keras.applications.<app>.preprocess_input``; weightless.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"ImagenetPreprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        # caffe
        mean = ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=self.compute_dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


CUSTOM_OBJECTS = {"ImagenetPreprocess": ImagenetPreprocess}


@keras.saving.register_keras_serializable(package="deepfake_lens")
class AzimuthalSpectrum(keras.layers.Layer):
    """Azimuthally averaged log power spectrum of the grayscale image, as a layer.

    Input: float RGB images in 0..255, ``(batch, S, S, 3)``. The image is converted to grayscale
    (ITU-R 601 weights) and its mean removed; ``fft2`` gives the power ``|F|^2``; the log power
    ``log(|F|^2 + eps)`` is averaged over rings of equal spatial frequency (radius rounded to an
    integer, frequencies folded so no shift is needed). Output: ``(batch, bins)`` with
    ``bins = S // 2`` by default (radius 0 .. bins - 1; the corners beyond are dropped). GAN
    upsampling leaves peaks and a raised tail at high frequencies, which this curve shows.
    Weightless; the ring-averaging matrix is a constant built from the input size.
    """

    def __init__(self, bins: int | None = None, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.bins = None if bins is None else int(bins)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        import numpy as np

        h, w = int(input_shape[1]), int(input_shape[2])
        if h != w:
            raise ValueError(f"AzimuthalSpectrum needs square images, got {h}x{w}")
        bins = self.bins or h // 2
        f = np.minimum(np.arange(h), h - np.arange(h))
        radius = np.rint(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)).astype(int).ravel()
        matrix = np.zeros((h * w, bins), dtype="float32")
        keep = radius < bins
        matrix[np.flatnonzero(keep), radius[keep]] = 1.0
        matrix /= np.maximum(matrix.sum(axis=0, keepdims=True), 1.0)
        self._size = h
        self._bins = bins
        self._ring = ops.convert_to_tensor(matrix)
        super().build(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        gray = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
        gray = gray - ops.mean(gray, axis=(1, 2), keepdims=True)
        real, imag = ops.fft2((gray, ops.zeros_like(gray)))
        log_power = ops.log(real * real + imag * imag + self.epsilon)
        flat = ops.reshape(log_power, (-1, self._size * self._size))
        return ops.cast(ops.matmul(flat, self._ring), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bins or int(input_shape[1]) // 2)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "epsilon": self.epsilon}


CUSTOM_OBJECTS["AzimuthalSpectrum"] = AzimuthalSpectrum


@keras.saving.register_keras_serializable(package="deepfake_lens")
class RandomPatch(keras.layers.Layer):
    """Patch-level training: a random ``size`` x ``size`` crop per image while training, the whole
    image at inference.

    Generator and blending traces are local and live at the pixel scale, so the crop is taken at
    native resolution (no resizing). A fully convolutional model with global pooling after this
    layer learns from patches (``(size / S)^2`` of the compute per training image) and at inference
    averages the evidence of every location of the full image. Each image gets its own offset;
    the crop is an exact pixel window (``crop_and_resize`` on integer-aligned boxes). Weightless.
    """

    def __init__(self, size: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed) if seed is not None else keras.random.SeedGenerator()

    def call(self, inputs, training=None):
        if not training:
            return inputs
        import tensorflow as tf

        x = tf.convert_to_tensor(inputs)
        shape = tf.shape(x)
        batch, h, w, c = shape[0], shape[1], shape[2], self.size
        c_f = tf.cast(c, tf.float32)
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
        u = keras.random.uniform((batch, 2), seed=self._generator)
        top = tf.floor(u[:, 0] * (hf - c_f + 1.0))
        left = tf.floor(u[:, 1] * (wf - c_f + 1.0))
        boxes = tf.stack([top / (hf - 1.0), left / (wf - 1.0),
                          (top + c_f - 1.0) / (hf - 1.0), (left + c_f - 1.0) / (wf - 1.0)], axis=1)
        crops = tf.image.crop_and_resize(x, boxes, tf.range(batch), (self.size, self.size), method="nearest")
        return tf.cast(crops, x.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


CUSTOM_OBJECTS["RandomPatch"] = RandomPatch

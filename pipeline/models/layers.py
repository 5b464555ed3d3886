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

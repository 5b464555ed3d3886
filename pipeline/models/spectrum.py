"""``spectrum``: a frequency-domain detector, cheap and strong on CPU.

Input -> :class:`~pipeline.models.layers.AzimuthalSpectrum` (azimuthally averaged log power
spectrum of the grayscale image, ``image_size // 2`` values) -> BatchNormalization ->
Dense(64, relu, name="embedding") -> Dropout -> Dense(1, sigmoid, name="p_fake").

GAN upsampling and face-swap blending leave traces in the high frequencies (Durall et al. 2020,
"Watch your up-convolution"). There is no convolution: Grad-CAM does not apply
(:func:`pipeline.models.last_conv_layer_name` raises ValueError). Default 256 px: the traces
live at the highest frequencies and downscaling removes them. Measured on ``lfw_faceswap``
(4,000 images of 250 px), this layer's spectrum + StandardScaler + RBF SVM, 5-fold CV ROC-AUC:
0.51 at 64 px, 0.56 at 128 px, 0.90 at 256 px.

``spec.params`` keys: ``bins`` (int, default ``image_size // 2``), ``dense_units`` (64),
``dropout`` (0.3).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, register
from pipeline.models.layers import AzimuthalSpectrum


@register("spectrum", default_image_size=256, family="cnn",
          description="Frequency model: azimuthally averaged log power spectrum (FFT) -> BN -> dense 64 -> sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    p = spec.params
    s = spec.image_size
    inputs = keras.Input((s, s, 3), name="image")
    bins = p.get("bins")
    x = AzimuthalSpectrum(bins=None if bins is None else int(bins), name="spectrum")(inputs)
    x = keras.layers.BatchNormalization(name="spectrum_bn")(x)
    x = keras.layers.Dense(int(p.get("dense_units", 64)), activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(float(p.get("dropout", 0.3)), name="dropout")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=spec.name)

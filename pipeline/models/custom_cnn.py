"""``custom_cnn``: the searched architecture of the StyleGAN study (64 px).

Rescaling(1/255), then 3 blocks of Conv-BN-ReLU-Conv-BN-ReLU-MaxPool(2) (3x3 same convs, filters
32, 64, 128); pooling (global average by default; the study flattened, which is large at
64 px); Dense(128, relu, name="embedding"); Dropout(0.4); Dense(1, sigmoid, name="p_fake").

``spec.params`` keys:

- ``filters`` (list of int, default ``[32, 64, 128]``): one double-conv block per entry; the
  image side must be at least ``2 ** len(filters)`` px.
- ``pooling`` (``"gap"`` default, or ``"flatten"`` as in the study).
- ``dense_units`` (int, default 128): width of the embedding.
- ``dropout`` (float, default 0.4).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, register

POOLINGS = ("gap", "flatten")


@register("custom_cnn", default_image_size=64, family="cnn",
          description="Searched CNN of the StyleGAN study: 3 double conv-BN-ReLU blocks (32, 64, 128), "
                      "global average pooling, dense 128, dropout 0.4.")
def build(spec: ModelSpec) -> keras.Model:
    p = spec.params
    filters = list(p.get("filters", [32, 64, 128]))
    pooling = str(p.get("pooling", "gap")).lower()
    if pooling not in POOLINGS:
        raise ValueError(f"{spec.name}: params.pooling must be one of {POOLINGS}, got {pooling!r}")
    s = spec.image_size
    if s < 2 ** len(filters):
        raise ValueError(f"{spec.name}: {len(filters)} pooling blocks need images of at least "
                         f"{2 ** len(filters)} px, got {s}")
    inputs = keras.Input((s, s, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    if pooling == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(int(p.get("dense_units", 128)), activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(float(p.get("dropout", 0.4)), name="dropout")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=spec.name)

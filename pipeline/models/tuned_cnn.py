"""``tuned_cnn``: the hyper-parameter-tuned CNN of the original study (64 px).

Rescaling(1/255), then 4 blocks of Conv2D(3x3, same) - BatchNorm - ReLU - MaxPool(2) with
filters 128, 64, 32, 16; Flatten; Dense(64, relu); Dropout(0.3); Dense(32, relu,
name="embedding"); Dense(1, sigmoid, name="p_fake").

``spec.params`` keys:

- ``filters`` (list of int, default ``[128, 64, 32, 16]``): one block per entry; the image side
  must be at least ``2 ** len(filters)`` px.
- ``dense_units`` (int, default 64).
- ``dropout`` (float, default 0.3).
- ``embedding_units`` (int, default 32).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, register


@register("tuned_cnn", default_image_size=64, family="cnn",
          description="Tuned CNN of the original study: 4 conv-BN-ReLU-pool blocks (128, 64, 32, 16), "
                      "dense 64, dropout 0.3, dense 32.")
def build(spec: ModelSpec) -> keras.Model:
    p = spec.params
    filters = list(p.get("filters", [128, 64, 32, 16]))
    s = spec.image_size
    if s < 2 ** len(filters):
        raise ValueError(f"{spec.name}: {len(filters)} pooling blocks need images of at least "
                         f"{2 ** len(filters)} px, got {s}")
    inputs = keras.Input((s, s, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(int(p.get("dense_units", 64)), activation="relu", name="dense")(x)
    x = keras.layers.Dropout(float(p.get("dropout", 0.3)), name="dropout")(x)
    x = keras.layers.Dense(int(p.get("embedding_units", 32)), activation="relu", name=EMBEDDING_LAYER)(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=spec.name)

"""``baseline_cnn``: the 64 px baseline CNN of the original study.

Rescaling(1/255) -> Conv2D(32, 3x3, relu) -> Conv2D(16, 3x3, relu) -> MaxPool(2)
-> Flatten(name="embedding") -> Dense(1, sigmoid, name="p_fake").

``spec.params`` keys:

- ``filters`` (list of int, default ``[32, 16]``): one valid-padded 3x3 ReLU conv per entry.
- ``kernel_size`` (int, default 3).
- ``pool_size`` (int, default 2).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, register


@register("baseline_cnn", default_image_size=64, family="cnn",
          description="Baseline of the original study: two 3x3 convs (32, 16), max-pool, flatten, sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    p = spec.params
    filters = list(p.get("filters", [32, 16]))
    kernel = int(p.get("kernel_size", 3))
    pool = int(p.get("pool_size", 2))
    s = spec.image_size
    inputs = keras.Input((s, s, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(f, kernel, activation="relu", name=f"conv{i}")(x)
    x = keras.layers.MaxPooling2D(pool, name="pool")(x)
    x = keras.layers.Flatten(name=EMBEDDING_LAYER)(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=spec.name)

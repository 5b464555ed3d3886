"""``searched_cnn``: the custom CNN family the hyper-parameter search explores; built from ``spec.params``.

``python -m pipeline experiment search`` writes its best trial's parameters to
``experiments/search/<key>/best.json`` (and trains ``models/searched_cnn`` with them); a config can
name the model with those parameters to train it like any other::

    [[models]]
    name = "searched_cnn"
    learning_rate = 3e-4
    params = {blocks = 3, filters = 16, kernel_size = 3, dense_units = 64, dropout = 0.3, pooling = "gap"}

Rescaling(1/255); ``blocks`` blocks of ``convs_per_block`` x (Conv(k x k, same) - BN - ReLU) then
MaxPool(2), filters ``filters * 2**i`` in block i (or the list given); global average pooling or
flatten; Dense(dense_units, relu, name="embedding"); Dropout; Dense(1, sigmoid, name="p_fake").

``spec.params`` keys (defaults in brackets): ``blocks`` [3], ``filters`` [16; an int doubles per
block, a list gives each block's], ``convs_per_block`` [2], ``kernel_size`` [3], ``pooling``
["gap" | "flatten"], ``dense_units`` [64], ``dropout`` [0.3].
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, register

DEFAULTS = {"blocks": 3, "filters": 16, "convs_per_block": 2, "kernel_size": 3, "pooling": "gap",
            "dense_units": 64, "dropout": 0.3}


def block_filters(params: dict) -> list[int]:
    p = {**DEFAULTS, **params}
    if isinstance(p["filters"], (list, tuple)):
        return [int(f) for f in p["filters"]]
    return [int(p["filters"]) * 2 ** i for i in range(int(p["blocks"]))]


@register("searched_cnn", default_image_size=64, family="cnn",
          description="The best CNN of the Keras Tuner search (blocks, filters, kernel, pooling, dense, dropout "
                      "from the search or the config's params).")
def build(spec: ModelSpec) -> keras.Model:
    p = {**DEFAULTS, **spec.params}
    filters = block_filters(p)
    pooling = str(p["pooling"]).lower()
    if pooling not in ("gap", "flatten"):
        raise ValueError(f"{spec.name}: params.pooling must be gap or flatten, got {pooling!r}")
    s = spec.image_size
    if s < 2 ** len(filters):
        raise ValueError(f"{spec.name}: {len(filters)} pooling blocks need images of at least "
                         f"{2 ** len(filters)} px, got {s}")
    k = int(p["kernel_size"])
    inputs = keras.Input((s, s, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        for j in range(1, int(p["convs_per_block"]) + 1):
            x = keras.layers.Conv2D(f, k, padding="same", use_bias=False, name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = (keras.layers.GlobalAveragePooling2D(name="gap") if pooling == "gap" else keras.layers.Flatten(name="flatten"))(x)
    x = keras.layers.Dense(int(p["dense_units"]), activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(float(p["dropout"]), name="dropout")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=spec.name)

"""``xception``: Xception (ImageNet backbone, "tf" preprocessing) + GAP / dropout / sigmoid head.

Default 299 px, minimum 71. See :mod:`pipeline.models.transfer` for the head, ``weights`` and
freezing. ``spec.params`` keys: ``dropout`` (head, default 0.2).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import register
from pipeline.models.transfer import build_transfer

MIN_SIZE = 71


@register("xception", default_image_size=299, min_image_size=MIN_SIZE, family="transfer",
          description="Xception ImageNet backbone, global average pooling, dropout 0.2, sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    return build_transfer(spec, keras.applications.Xception, "tf", MIN_SIZE)

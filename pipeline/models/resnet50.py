"""``resnet50``: ResNet50 (ImageNet backbone, "caffe" preprocessing) + GAP / dropout / sigmoid head.

Default 224 px, minimum 32. See :mod:`pipeline.models.transfer` for the head, ``weights`` and
freezing. ``spec.params`` keys: ``dropout`` (head, default 0.2).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import register
from pipeline.models.transfer import build_transfer

MIN_SIZE = 32


@register("resnet50", default_image_size=224, min_image_size=MIN_SIZE, family="transfer",
          description="ResNet50 ImageNet backbone, global average pooling, dropout 0.2, sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    return build_transfer(spec, keras.applications.ResNet50, "caffe", MIN_SIZE)

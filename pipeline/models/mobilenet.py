"""``mobilenet``: MobileNet v1 (ImageNet backbone, "tf" preprocessing) + GAP / dropout / sigmoid head.

Default 224 px, minimum 32. See :mod:`pipeline.models.transfer` for the head, ``weights`` and
freezing. ``spec.params`` keys: ``dropout`` (head, default 0.2), ``alpha`` (width multiplier,
default 1.0; ImageNet weights exist for 0.25, 0.5, 0.75, 1.0).

Offline: the ImageNet file ``mobilenet_1_0_224_tf_no_top.h5`` (alpha 1.0) ships in
``../shared/keras/models``. Keras loads that 224 file at every size except 128, 160 and 192,
where it asks for that size's own checkpoint (not available offline).
"""
from __future__ import annotations

import functools

import keras

from pipeline.config import ModelSpec
from pipeline.models import register
from pipeline.models.transfer import build_transfer

MIN_SIZE = 32
SIZE_SPECIFIC_CHECKPOINTS = (128, 160, 192)  # keras.applications.MobileNet picks these sizes' own files
OFFLINE_COPY = "mkdir -p ~/.keras/models && cp ../shared/keras/models/*.h5 ~/.keras/models/"


def offline_hint(image_size: int, alpha: float = 1.0) -> str:
    if alpha != 1.0:
        return (f"Only the alpha 1.0 MobileNet file is available offline here; use alpha 1.0 "
                f"(then: {OFFLINE_COPY}).")
    if image_size in SIZE_SPECIFIC_CHECKPOINTS:
        return (f"At {image_size} px Keras asks for the size-specific file "
                f"mobilenet_1_0_{image_size}_tf_no_top.h5, which is not available offline here; use another "
                f"image size such as 224 or 96/112/144 (Keras then loads the 224 file: {OFFLINE_COPY}).")
    return f"An offline copy of the MobileNet file (224, used at this size) is in ../shared: {OFFLINE_COPY}"


@register("mobilenet", default_image_size=224, min_image_size=MIN_SIZE, family="transfer",
          description="MobileNet v1 (alpha 1.0) ImageNet backbone, global average pooling, dropout 0.2, sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    alpha = float(spec.params.get("alpha", 1.0))
    app = functools.partial(keras.applications.MobileNet, alpha=alpha)
    return build_transfer(spec, app, "tf", MIN_SIZE, offline_hint=offline_hint(spec.image_size, alpha))

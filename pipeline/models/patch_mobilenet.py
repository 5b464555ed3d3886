"""``patch_mobilenet``: the first blocks of ImageNet MobileNet v1, fine-tuned on native-resolution patches.

Deepfake traces (GAN upsampling, blending seams, resampling) are low-level and local, and
downscaling erases them. This model keeps the images at their native 256 px, trains on random
``patch_size`` crops (:class:`~pipeline.models.layers.RandomPatch`: about a quarter of the compute
per image at 128 px) and at inference averages the evidence over the whole image (global average
pooling of the truncated backbone's feature map). Only the blocks up to ``conv_pw_<blocks>`` are
kept: lower-level features, and less than half of MobileNet's compute at ``blocks = 7``.

::

    image 256 px -> RandomPatch(training only) -> ImagenetPreprocess("tf")
        -> MobileNet conv1 .. conv_pw_<blocks>_relu -> GlobalAveragePooling2D(name="embedding")
        -> Dropout -> Dense(1, sigmoid, name="p_fake")

``spec.params`` keys: ``blocks`` (1-13, default 7), ``patch_size`` (default 128; 0 = whole image),
``dropout`` (head, default 0.2). ``weights``: as every transfer model (offline: the 224 MobileNet
file of ``../shared/keras``, which Keras loads at any input size but 128/160/192).
"""
from __future__ import annotations

import keras

from pipeline.config import ModelSpec
from pipeline.models import register
from pipeline.models.mobilenet import MIN_SIZE, offline_hint
from pipeline.models.transfer import build_transfer

DEFAULT_BLOCKS = 7
DEFAULT_PATCH = 128


@register("patch_mobilenet", default_image_size=256, min_image_size=MIN_SIZE, family="transfer",
          description="MobileNet v1 blocks 1-7 (ImageNet), trained on native-resolution 128 px patches, "
                      "whole image at inference (global average pooling), sigmoid.")
def build(spec: ModelSpec) -> keras.Model:
    blocks = int(spec.params.get("blocks", DEFAULT_BLOCKS))
    if not 1 <= blocks <= 13:
        raise ValueError(f"patch_mobilenet: blocks must be between 1 and 13, got {blocks}")
    patch = int(spec.params.get("patch_size", DEFAULT_PATCH))
    return build_transfer(spec, keras.applications.MobileNet, "tf", MIN_SIZE,
                          offline_hint=offline_hint(spec.image_size), feature_layer=f"conv_pw_{blocks}_relu",
                          patch_size=min(patch, spec.image_size))

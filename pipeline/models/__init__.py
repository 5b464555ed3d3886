"""Model registry: every detector of the zoo, built from a :class:`~pipeline.config.ModelSpec`.

Adding a model is adding one small module to this package::

    from pipeline.models import register

    @register("my_cnn", default_image_size=64, description="...")
    def build(spec):            # -> keras.Model (Functional API, never Sequential)
        ...

Every module of the package is imported when the package is (``pkgutil``), so the decorator
runs and the model appears in :data:`REGISTRY`.

Conventions every model follows (other parts of the project rely on them):

- input ``keras.Input((s, s, 3), name="image")``: float RGB in 0..255, not scaled; each model
  scales inside (``Rescaling(1/255)`` or :class:`~pipeline.models.layers.ImagenetPreprocess`);
- a layer named :data:`EMBEDDING_LAYER` with a 2-D ``(None, D)`` output, the penultimate vector;
- the output layer :data:`OUTPUT_LAYER`: ``Dense(1, activation="sigmoid")``, P(image is FAKE);
- ``keras.Model(name=<registry name>)``;
- transfer models are FLAT (every backbone layer is a layer of the model, so Grad-CAM can reach
  the convolutions); layers added on top of the backbone are named ``head_*`` (plus the
  embedding and output layers), every other non-input layer is backbone;
- no Lambda layers: ``load_model`` uses ``safe_mode=True``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from pipeline.config import ModelSpec
from pipeline.models.layers import CUSTOM_OBJECTS, ImagenetPreprocess  # noqa: F401  (registers layers)
from pipeline.models.transfer import WeightsUnavailableError, load_weights_file

__all__ = [
    "EMBEDDING_LAYER", "OUTPUT_LAYER", "HEAD_PREFIX", "ModelEntry", "REGISTRY", "register",
    "build_model", "load_model", "backbone_layers", "set_backbone_trainable",
    "last_conv_layer_name", "embedding_model", "WeightsUnavailableError", "ImagenetPreprocess",
]

EMBEDDING_LAYER = "embedding"
OUTPUT_LAYER = "p_fake"
HEAD_PREFIX = "head_"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[ModelSpec], keras.Model]
    default_image_size: int
    min_image_size: int
    description: str
    family: str  # "cnn" or "transfer"


REGISTRY: dict[str, ModelEntry] = {}

_FAMILIES = ("cnn", "transfer")


def register(name: str, *, default_image_size: int, description: str, family: str = "cnn",
             min_image_size: int = 16):
    """Decorator over ``build(spec) -> keras.Model`` that adds it to :data:`REGISTRY`."""
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {_FAMILIES}, got {family!r}")
    if default_image_size < min_image_size:
        raise ValueError(f"{name}: default_image_size {default_image_size} < min_image_size {min_image_size}")

    def decorator(build: Callable[[ModelSpec], keras.Model]):
        if name in REGISTRY and REGISTRY[name].build is not build:
            raise ValueError(f"model {name!r} is registered twice "
                             f"({REGISTRY[name].build.__module__} and {build.__module__})")
        REGISTRY[name] = ModelEntry(name=name, build=build, default_image_size=default_image_size,
                                    min_image_size=min_image_size, description=description, family=family)
        return build

    return decorator


def build_model(spec: ModelSpec) -> keras.Model:
    """Build the registry model ``spec.name`` for ``spec.image_size`` px with ``spec.params``.

    ``spec.weights``: transfer models handle "imagenet" / "none" / a path themselves (see
    :mod:`pipeline.models.transfer`). Custom CNNs accept "none" or a path to a weights file of
    the full model (``.weights.h5`` or ``.keras``); "imagenet" is an error for them.
    """
    try:
        entry = REGISTRY[spec.registry_name]
    except KeyError:
        raise ValueError(f"unknown model {spec.registry_name!r}; registered models: {', '.join(sorted(REGISTRY))}") from None
    if spec.image_size < entry.min_image_size:
        raise ValueError(f"{spec.name} needs images of at least {entry.min_image_size}x{entry.min_image_size} px, "
                         f"got image_size={spec.image_size} (its default is {entry.default_image_size})")
    weights = (spec.weights or "none").strip()
    if entry.family == "cnn" and weights.lower() == "imagenet":
        raise ValueError(f"{spec.name} is a custom CNN trained from scratch: there are no ImageNet weights for it; "
                         f'use weights = "none" or a path to a weights file')
    model = entry.build(spec)
    if entry.family == "cnn" and weights.lower() != "none":
        load_weights_file(model, weights, spec.name)
    return model


def load_model(path: str | Path) -> keras.Model:
    """Load a saved ``.keras`` model (safe mode, not compiled); the zoo's custom layers are known."""
    return keras.models.load_model(path, safe_mode=True, compile=False, custom_objects=CUSTOM_OBJECTS)


def _is_head(layer) -> bool:
    return layer.name.startswith(HEAD_PREFIX) or layer.name in (OUTPUT_LAYER, EMBEDDING_LAYER)


def _has_backbone(model: keras.Model) -> bool:
    entry = REGISTRY.get(model.name)
    if entry is not None:
        return entry.family == "transfer"
    return any(layer.name.startswith(HEAD_PREFIX) for layer in model.layers)


def backbone_layers(model: keras.Model) -> list:
    """The backbone's layers in model (topological) order: every layer that is neither an
    InputLayer nor a head layer (``head_*``, ``embedding``, ``p_fake``). Empty for plain CNNs
    (models whose registry family is "cnn", or, for unregistered names, with no ``head_*`` layer).
    Includes weightless layers (preprocessing, activations, padding, pooling)."""
    if not _has_backbone(model):
        return []
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer) and not _is_head(layer)]


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def tunable_backbone_layers(model: keras.Model) -> list:
    """Backbone layers that own weights, BatchNormalization excluded: the layers that
    ``top_layers`` counts in :func:`set_backbone_trainable`."""
    return [layer for layer in backbone_layers(model) if layer.weights and not _is_bn(layer)]


def set_backbone_trainable(model: keras.Model, trainable: bool, top_layers: int = 0) -> None:
    """Freeze or unfreeze the backbone of a transfer model (no-op for plain CNNs).

    - ``trainable=False``: every backbone layer is frozen.
    - ``trainable=True, top_layers=0``: every backbone layer except BatchNormalization is trainable.
    - ``trainable=True, top_layers=N``: let ``T`` be the N-th layer from the top among the backbone
      layers that own weights, BatchNormalization excluded (:func:`tunable_backbone_layers`).
      ``T`` and every backbone layer after it (in model order) become trainable, BN excepted;
      everything before ``T`` is frozen. So exactly the top N weight-owning non-BN layers train
      (weightless layers between them follow, which changes nothing). N larger than the number
      of such layers means all.

    BatchNormalization layers always stay frozen (``trainable=False`` also makes Keras 3 run them
    in inference mode, keeping the ImageNet statistics). Head layers are left as they are.
    Recompile the model after calling this for the change to take effect in ``fit``.
    """
    if top_layers < 0:
        raise ValueError(f"top_layers must be >= 0, got {top_layers}")
    layers = backbone_layers(model)
    start = 0
    if trainable and top_layers:
        tunable = tunable_backbone_layers(model)
        if top_layers < len(tunable):
            first = tunable[-top_layers]
            start = next(i for i, layer in enumerate(layers) if layer is first)
    for i, layer in enumerate(layers):
        layer.trainable = bool(trainable and i >= start and not _is_bn(layer))


_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
# Layers that keep a conv feature map's spatial layout element by element: an activation, a BN
# or a merge of such maps after a conv is still "the conv's output" for Grad-CAM.
_PASS_TYPES = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
               keras.layers.ELU, keras.layers.BatchNormalization, keras.layers.Add, keras.layers.Concatenate)


def _parents(layer) -> list:
    parents = []
    for node in getattr(layer, "_inbound_nodes", [])[:1]:
        parents.extend(p.operation for p in node.parent_nodes)
    return parents


def _rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _follows_conv(layer, memo: dict) -> bool:
    """True if ``layer`` is a conv, or a chain of activation/BN/merge layers fed by convs."""
    key = id(layer)
    if key not in memo:
        memo[key] = False  # guards cycles (there are none in a Functional model)
        if isinstance(layer, _CONV_TYPES):
            memo[key] = True
        elif isinstance(layer, _PASS_TYPES):
            memo[key] = any(_follows_conv(p, memo) for p in _parents(layer))
    return memo[key]


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer to use as Grad-CAM's ``penultimate_layer``.

    Searching backwards from the output (model order), the first layer with a 4-D output that is
    a Conv2D / DepthwiseConv2D / SeparableConv2D, or an activation / BatchNormalization (or an
    Add / Concatenate merge) fed by one: e.g. ``conv_pw_13_relu`` for MobileNet,
    ``conv5_block3_out`` for ResNet50, ``block5_conv3`` for VGG16 (pooling layers are skipped).
    """
    memo: dict = {}
    for layer in reversed(model.layers):
        if _rank(layer) == 4 and _follows_conv(layer, memo):
            return layer.name
    raise ValueError(f"model {model.name!r} has no convolutional layer with a 4-D output")


def embedding_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to the :data:`EMBEDDING_LAYER` output (shares weights).

    A single input is passed as a tensor, not a one-element list, so calling the result on an
    array does not trigger Keras' "structure of `inputs` doesn't match" warning."""
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, model.get_layer(EMBEDDING_LAYER).output,
                       name=f"{model.name}_{EMBEDDING_LAYER}")


def embedding_and_output_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to ``[embedding, p_fake]`` (shares weights): both from one
    forward pass."""
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [model.get_layer(EMBEDDING_LAYER).output, model.output],
                       name=f"{model.name}_{EMBEDDING_LAYER}_and_{OUTPUT_LAYER}")


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_all()

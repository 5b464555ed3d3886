"""Shared builder of the transfer-learning models (an ImageNet backbone + a small head).

The model is FLAT: ``keras.applications.<App>(include_top=False, input_tensor=...)`` is built on
top of our own input and preprocessing layer, and the head is applied to its output, so every
backbone layer is a layer of the returned model (Grad-CAM can reach the convolutions)::

    image (0..255 RGB) -> ImagenetPreprocess(mode, name="preprocess") -> backbone layers
        -> GlobalAveragePooling2D(name="embedding") -> Dropout(name="head_dropout")
        -> Dense(1, sigmoid, name="p_fake")

The backbone is frozen after build (``set_backbone_trainable`` unfreezes it for fine-tuning).

``spec.weights``:

- ``"imagenet"``: ``weights="imagenet"`` (Keras downloads the file into ``~/.keras/models`` or
  ``$KERAS_HOME/models``, or finds it there). Offline without the file:
  :class:`WeightsUnavailableError`.
- ``"none"``: random initialisation (train from scratch).
- anything else: a path to a weights file of the *full* model (``.keras`` or ``.weights.h5``
  saved from a model built with the same spec); the model is built with ``weights=None`` and
  then ``model.load_weights(path)``.

``spec.params`` keys read here: ``dropout`` (float, default 0.2) of the head.
"""
from __future__ import annotations

import os
import socket
import urllib.error
from pathlib import Path
from typing import Callable

import keras

from pipeline.config import ModelSpec
from pipeline.models.layers import ImagenetPreprocess, RandomPatch


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither in the Keras cache nor downloadable (offline machine)."""


def keras_cache_dir() -> str:
    """Where Keras looks for (and downloads) application weights: ``$KERAS_HOME/models``."""
    try:
        from keras.src.backend.config import keras_home  # read by Keras at import time
        home = keras_home()
    except Exception:  # pragma: no cover - private API moved
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(os.path.expanduser(home), "models")


def _is_download_failure(exc: BaseException) -> bool:
    """Keras' ``get_file`` wraps URLError/HTTPError in a bare ``Exception("URL fetch failure ...")``."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout)):
            return True
        if "URL fetch failure" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def weights_unavailable_message(model_name: str, offline_hint: str | None = None, cause: str = "") -> str:
    msg = (f"{model_name}: ImageNet weights could not be downloaded (no internet access?) and are not in the "
           f"Keras cache ~/.keras/models (or $KERAS_HOME/models; here {keras_cache_dir()}). Alternatives: "
           f'weights = "none" to train this model from scratch, or weights = "<path to a weights file>" '
           f"(.keras / .weights.h5 of this model).")
    if offline_hint:
        msg += " " + offline_hint
    if cause:
        msg += f" (download error: {cause})"
    return msg


def load_weights_file(model: keras.Model, path: str, model_name: str) -> None:
    """``model.load_weights(path)`` with a clear error when the file does not exist."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f'{model_name}: weights must be "imagenet", "none" or the path to a weights file '
                                f"(.keras / .weights.h5 of the full model); {str(p)!r} is not a file")
    model.load_weights(str(p))


def build_transfer(spec: ModelSpec, application: Callable[..., keras.Model], preprocess_mode: str,
                   min_size: int, *, offline_hint: str | None = None, feature_layer: str | None = None,
                   patch_size: int = 0) -> keras.Model:
    """Build ``application`` (a ``keras.applications`` constructor) flat under our input and head.

    ``offline_hint``: extra advice appended to :class:`WeightsUnavailableError`'s message
    (e.g. where an offline copy of the weights is).
    ``feature_layer``: name of the backbone layer the head reads (default: the backbone's output);
    the layers above it are dropped (a truncated backbone: lower-level features, less compute).
    ``patch_size``: when > 0, a :class:`~pipeline.models.layers.RandomPatch` layer after the input
    trains on random native-resolution crops of that size; inference sees the whole image.
    """
    from pipeline.models import EMBEDDING_LAYER, OUTPUT_LAYER, set_backbone_trainable  # late: circular

    size = int(spec.image_size)
    if size < min_size:
        raise ValueError(f"{spec.name} needs images of at least {min_size}x{min_size} px, got image_size={size}")
    weights = (spec.weights or "none").strip()
    mode = weights.lower() if weights.lower() in ("imagenet", "none") else "file"
    dropout = float(spec.params.get("dropout", 0.2))

    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if patch_size:
        if not min_size <= patch_size <= size:
            raise ValueError(f"{spec.name}: patch_size must be between {min_size} and image_size={size}, got {patch_size}")
        x = RandomPatch(patch_size, name="patch")(x)
    x = ImagenetPreprocess(mode=preprocess_mode, name="preprocess")(x)
    kwargs = dict(include_top=False, input_tensor=x, input_shape=(size, size, 3))
    if mode == "imagenet":
        try:
            base = application(weights="imagenet", **kwargs)
        except Exception as exc:
            if _is_download_failure(exc):
                raise WeightsUnavailableError(weights_unavailable_message(spec.name, offline_hint, str(exc))) from exc
            raise
    else:
        base = application(weights=None, **kwargs)

    features = base.get_layer(feature_layer).output if feature_layer else base.output
    emb = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(features)
    h = keras.layers.Dropout(dropout, name="head_dropout")(emb)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(h)
    model = keras.Model(inputs, out, name=spec.name)
    if mode == "file":
        load_weights_file(model, weights, spec.name)
    set_backbone_trainable(model, False)
    return model

"""Why did a model decide? Saliency maps, LIME and feature maps for any registry model.

Shared by the CLI (``python -m pipeline predict --explain ...``) and the dashboard pages
*Check an image* and *Explain*.

* :func:`heatmap` - Grad-CAM, Grad-CAM++ (tf-keras-vis) or a SmoothGrad saliency map for one RGB
  image, scoring the fake class (``target="fake"``, ``BinaryScore(1.0)``) or the real one
  (``target="real"``, ``BinaryScore(0.0)``). The map is computed at the model's input size and
  upsampled (bilinear) to the image's own (H, W). Models without a convolutional layer fall back to
  the saliency map and say so in :attr:`Explanation.note`.
* LIME lives in :mod:`pipeline.explain_lime`.
* :func:`conv_layers`, :func:`feature_maps`, :func:`feature_grid` - activations of a chosen
  convolutional layer as a grid image.
* :func:`overlay`, :func:`with_colorbar`, :func:`plotly_colorscale` - drawing.

The gradient passes (a linearised clone of the model, through tf-keras-vis' model modifiers, compiled
with ``tf.function``) are built once per Keras model and kept while the model lives
(:func:`visualizers`); the map formulas follow tf-keras-vis 0.8 (tested against it).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METHODS = ("gradcam", "gradcam++", "saliency")  # gradient methods of :func:`heatmap`
ALL_METHODS = METHODS + ("lime",)
METHOD_LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "saliency": "Saliency (SmoothGrad)",
                 "lime": "LIME"}
TARGETS = ("fake", "real")
DEFAULT_CMAP = "jet"  # heat maps: 0 (blue) .. 1 (red)
SIGNED_CMAP = "RdBu_r"  # LIME weights: toward real (blue) .. toward fake (red)


@dataclass
class Explanation:
    """One saliency map. ``heatmap``: (H, W) float32 in 0..1 at the explained image's size."""

    model: str
    method: str  # the method actually used (may differ from the one asked for: see ``note``)
    target: str
    heatmap: np.ndarray
    layer: str | None = None  # Grad-CAM's penultimate layer
    note: str | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method)


# --------------------------------------------------------------------------- helpers


def image_sha256(rgb: np.ndarray) -> str:
    """sha256 of the decoded pixels (and their shape): the same picture gives the same key."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def model_input_size(model) -> int:
    shape = model.inputs[0].shape
    if shape[1] is None:
        raise ValueError(f"model {model.name!r} has no fixed input size")
    return int(shape[1])


def _to_input(rgb: np.ndarray, size: int) -> np.ndarray:
    from pipeline.images import resize_square

    return resize_square(np.asarray(rgb, dtype=np.uint8), size).astype(np.float32)[None]


def _resize_map(m: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize a 2-D float map to (H, W)."""
    from PIL import Image

    m = np.asarray(m, dtype=np.float32)
    if m.shape == tuple(hw):
        return m.copy()
    im = Image.fromarray(m, mode="F").resize((int(hw[1]), int(hw[0])),
                                             Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.nan_to_num(np.asarray(m, dtype=np.float32))
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _score(target: str):
    from tf_keras_vis.utils.scores import BinaryScore

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return BinaryScore(1.0 if target == "fake" else 0.0)


# --------------------------------------------------------------------------- visualizer cache


class _Visualizers:
    """The compiled gradient passes of one model, on ONE linearised clone (tf-keras-vis' ``ReplaceToLinear``:
    the output sigmoid becomes the identity, so scores are logits, as tf-keras-vis computes them).

    ``cam_pass(x)`` -> (activations A (n, h, w, c), dlogit/dA (n, h, w, c), dlogit/dx (n, size, size, 3)) at
    Grad-CAM's layer (found by tf-keras-vis' ``ExtractIntermediateLayerForGradcam``: the convolution at or
    before :func:`pipeline.models.last_conv_layer_name`), None for a model without one; ``input_pass(x)`` ->
    dlogit/dx alone (traced only for such a model). One traced graph per model: Grad-CAM, Grad-CAM++ and
    SmoothGrad of an image come from ONE batch (the image and its noisy copies).
    ``x``: (n, size, size, 3) float32 pixels 0-255. Both are ``tf.function`` graphs with a free batch
    dimension, traced once per model: tf-keras-vis' own calls run eagerly and rebuild the layer model on
    every call, 5-7x slower on this machine (BENCHMARKS.md, "Third pass")."""

    def __init__(self, model):
        import tensorflow as tf
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayerForGradcam, ReplaceToLinear

        from pipeline.models import last_conv_layer_name

        self.name = model.name
        self.lock = threading.Lock()
        clone = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True).model
        size = model_input_size(model)
        spec = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        try:
            self.layer: str | None = last_conv_layer_name(model)
        except ValueError:
            self.layer = None

        def input_pass(x):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                logits = tf.reshape(clone(x, training=False), [-1])
            return tape.gradient(logits, x)  # rows are independent: d(sum of logits)/dx_i = dlogit_i/dx_i

        self.input_pass = tf.function(input_pass, input_signature=spec)
        self.cam_pass = None
        if self.layer is not None:
            cam_model = ExtractIntermediateLayerForGradcam(self.layer, True)(clone)

            def cam_pass(x):
                with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
                    tape.watch(x)
                    out = cam_model(x, training=False)
                    logits, acts = tf.reshape(out[0], [-1]), out[-1]
                return acts, tape.gradient(logits, acts), tape.gradient(logits, x)

            self.cam_pass = tf.function(cam_pass, input_signature=spec)

    def input_gradients(self, x: np.ndarray) -> np.ndarray:
        """dlogit/dx, (n, size, size, 3) float32, through the model's one traced pass."""
        if self.cam_pass is not None:
            return self.cam_pass(x)[2].numpy()
        return self.input_pass(x).numpy()


_VIS: "weakref.WeakKeyDictionary[Any, _Visualizers]" = weakref.WeakKeyDictionary()
_VIS_LOCK = threading.Lock()


def visualizers(model) -> _Visualizers:
    """The cached gradient passes of ``model`` (built on first use: clones the model once)."""
    with _VIS_LOCK:
        vis = _VIS.get(model)
        if vis is None:
            vis = _VIS[model] = _Visualizers(model)
        return vis


# --------------------------------------------------------------------------- gradient maps


def gradcam_maps(acts: np.ndarray, grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM and Grad-CAM++ class activation maps from one gradient pass.

    ``acts``: (n, h, w, c) activations A of the layer; ``grads``: (n, h, w, c) dS/dA of the score S
    (the logit for "fake", minus it for "real"). Returns two (n, h, w) float arrays >= 0, not normalised.
    Grad-CAM (Selvaraju et al., ICCV 2017): ReLU(sum_c mean_hw(dS/dA_c) A_c). Grad-CAM++ (Chattopadhay
    et al., WACV 2018) with the alphas of tf-keras-vis 0.8 (``GradcamPlusPlus``); its exp(S) factor
    multiplies every weight of an image by the same number, so it is left out (it does not change the
    normalised map and overflows float32 for confident logits)."""
    a = np.asarray(acts, dtype=np.float64)
    g = np.asarray(grads, dtype=np.float64)
    cam = np.maximum((a * g.mean(axis=(1, 2), keepdims=True)).sum(axis=-1), 0.0)
    g2 = g * g
    denom = 2.0 * g2 + g2 * g * a.sum(axis=(1, 2), keepdims=True)
    alphas = g2 / (denom + (g2 == 0.0))
    norm = alphas.sum(axis=(1, 2), keepdims=True)
    alphas /= norm + (norm == 0.0)
    weights = (np.maximum(g, 0.0) * alphas).sum(axis=(1, 2), keepdims=True)
    cam_pp = np.maximum((weights * a).sum(axis=-1), 0.0)
    return cam.astype(np.float32), cam_pp.astype(np.float32)


def _smoothgrad(vis: _Visualizers, x: np.ndarray, samples: int, noise: float) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017) as tf-keras-vis' ``Saliency(smooth_samples=...)`` computes it: mean
    over ``samples`` noisy copies (Gaussian, sigma = ``noise`` x the image's value range, fixed seed) of
    |dS/dx|, then the max over colour channels; all copies in ONE batch. (n, size, size) float32.
    The absolute value makes the map the same for both targets."""
    n = len(x)
    if samples <= 0:
        return np.abs(vis.input_gradients(x)).max(axis=-1)
    grads = np.abs(vis.input_gradients(_noisy_copies(x, samples, noise)))
    return grads.reshape(n, samples, *grads.shape[1:]).mean(axis=1).max(axis=-1)


def _noisy_copies(x: np.ndarray, samples: int, noise: float) -> np.ndarray:
    """``samples`` copies of each image of ``x`` (n, size, size, 3) with Gaussian noise of sigma ``noise`` x
    that image's value range (fixed seed 0): (n * samples, size, size, 3) float32, image by image."""
    n = len(x)
    span = x.reshape(n, -1).max(axis=1) - x.reshape(n, -1).min(axis=1)
    rng = np.random.default_rng(0)
    noisy = np.repeat(x, samples, axis=0)
    noisy += rng.normal(0.0, 1.0, noisy.shape).astype(np.float32) * np.repeat(noise * span, samples)[:, None, None, None]
    return noisy


def _maps(model, rgbs: list[np.ndarray], methods: tuple[str, ...], target: str, smooth_samples: int,
          smooth_noise: float, out_hw: tuple[int, int] | None) -> dict[str, list[Explanation]]:
    """Every asked gradient method for a batch of images, sharing the passes: Grad-CAM and Grad-CAM++
    come from one gradient pass, and a model without a convolutional layer computes its saliency map
    once for all methods."""
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if not rgbs:
        return {m: [] for m in methods}
    vis = visualizers(model)
    size = model_input_size(model)
    x = np.concatenate([_to_input(im, size) for im in rgbs])
    sign = 1.0 if target == "fake" else -1.0
    raw: dict[str, tuple[np.ndarray, float]] = {}  # method actually used -> (maps, seconds per image)
    want_cam = vis.cam_pass is not None and any(m != "saliency" for m in methods)
    want_sal = "saliency" in methods or vis.cam_pass is None
    n = len(x)
    with vis.lock:
        t0 = time.perf_counter()
        if want_cam:
            # the image(s) and, for SmoothGrad, their noisy copies go through the model as ONE batch
            noisy = _noisy_copies(x, smooth_samples, smooth_noise) if want_sal and smooth_samples > 0 else x[:0]
            acts, grads, dx = (t.numpy() for t in vis.cam_pass(np.concatenate([x, noisy])))
            cam, cam_pp = gradcam_maps(acts[:n], sign * grads[:n])
            raw["gradcam"], raw["gradcam++"] = (cam, 0.0), (cam_pp, 0.0)
            if want_sal:
                sal = np.abs(dx[n:] if smooth_samples > 0 else dx[:n])
                if smooth_samples > 0:
                    sal = sal.reshape(n, smooth_samples, *sal.shape[1:]).mean(axis=1)
                raw["saliency"] = (sal.max(axis=-1), 0.0)
        elif want_sal:
            raw["saliency"] = (_smoothgrad(vis, x, smooth_samples, smooth_noise), 0.0)
        seconds = (time.perf_counter() - t0) / n / len(raw)  # the shared pass, split over the maps it gave
    raw = {m: (maps, seconds) for m, (maps, _) in raw.items()}
    out: dict[str, list[Explanation]] = {}
    for method in methods:
        used = method if method in raw else "saliency"
        note = None if used == method else (
            f"{model.name} has no convolutional layer, so {METHOD_LABELS[method]} cannot be computed; "
            f"showing a gradient saliency map (SmoothGrad) instead.")
        maps, seconds = raw[used]
        out[method] = []
        for m, im in zip(maps, rgbs):
            heat = np.clip(_normalise(_resize_map(m, tuple(out_hw) if out_hw else np.shape(im)[:2])), 0.0, 1.0)
            why = note
            if why is None and not heat.any():
                why = (f"{METHOD_LABELS[used]} is empty: no region of layer {vis.layer if used != 'saliency' else 'input'} "
                       f"raises P({target}) for this image (the gradients point the other way everywhere). "
                       f"Try the other target or the saliency map.")
            out[method].append(Explanation(model=model.name, method=used, target=target, heatmap=heat,
                                           layer=vis.layer if used != "saliency" else None, note=why, seconds=seconds))
    return out


def heatmaps(model, rgbs: list[np.ndarray], method: str = "gradcam", target: str = "fake",
             smooth_samples: int = 10, smooth_noise: float = 0.2,
             out_hw: tuple[int, int] | None = None) -> list[Explanation]:
    """One :class:`Explanation` per (H, W, 3) uint8 image (batched through the model once). Each map
    is (H, W) float32 in 0..1 at its image's size, or ``out_hw`` (H, W) pixels when given (a display
    size: a map the size of a 12-megapixel upload is 48 MB of float32). Raises ``ValueError`` for an
    unknown method or target."""
    return _maps(model, rgbs, (method,), target, smooth_samples, smooth_noise, out_hw)[method]


def heatmap(model, rgb: np.ndarray, method: str = "gradcam", target: str = "fake", **kwargs) -> Explanation:
    """Grad-CAM / Grad-CAM++ / saliency of one (H, W, 3) uint8 image; the map is (H, W) in 0..1."""
    return heatmaps(model, [rgb], method, target, **kwargs)[0]


def warm_up(model) -> None:
    """Build ``model``'s gradient passes and trace them once, on a blank image, so that the first map a
    user asks for does not pay the trace (0.3-1 s per model on this machine). The trace has a free
    batch dimension: every later map of any method reuses it."""
    size = model_input_size(model)
    heatmaps(model, [np.zeros((size, size, 3), np.uint8)], "gradcam")


def display_size(hw: tuple[int, int], longest: int = 640) -> tuple[int, int]:
    """(H, W) scaled down (never up) so that the longer side is at most ``longest`` pixels."""
    h, w = int(hw[0]), int(hw[1])
    scale = min(1.0, longest / max(h, w, 1))
    return max(1, round(h * scale)), max(1, round(w * scale))


def display_image(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 resized (bilinear, Pillow) to ``hw`` = (H, W); itself when already that size."""
    from PIL import Image

    rgb = np.asarray(rgb, dtype=np.uint8)
    if tuple(rgb.shape[:2]) == tuple(hw):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((int(hw[1]), int(hw[0])), Image.BILINEAR))


def explain_all(models: dict[str, Any], rgb: np.ndarray, target: str = "fake", methods: tuple[str, ...] = METHODS,
                out_hw: tuple[int, int] | None = None) -> dict[str, dict[str, Explanation | Exception]]:
    """Every gradient map of every model for one (H, W, 3) uint8 image: ``{model name: {method:
    Explanation}}``, in the order given (``models``: name -> Keras model, loaded once by the
    caller). A method that fails for one model gives its exception in place of the Explanation,
    so one model cannot hide the others. Maps are (H, W) in 0..1, or ``out_hw`` (see :func:`heatmaps`).
    The image is resized to each model's input size once, each model's gradient passes are built
    once per model (:func:`visualizers`), and Grad-CAM and Grad-CAM++ share one pass."""
    out: dict[str, dict[str, Explanation | Exception]] = {}
    for name, model in models.items():
        try:
            out[name] = {m: e[0] for m, e in _maps(model, [rgb], methods, target, 10, 0.2, out_hw).items()}
        except Exception:  # noqa: BLE001 - retried method by method, so one failing method keeps the others
            out[name] = {}
            for method in methods:
                try:
                    out[name][method] = _maps(model, [rgb], (method,), target, 10, 0.2, out_hw)[method][0]
                except Exception as exc:  # noqa: BLE001 - reported per map by the caller
                    out[name][method] = exc
    return out


# --------------------------------------------------------------------------- drawing


def colormap(name: str = DEFAULT_CMAP):
    import matplotlib

    return matplotlib.colormaps[name]


def colorize(values: np.ndarray, cmap: str = DEFAULT_CMAP, signed: bool = False) -> np.ndarray:
    """A 2-D map -> (H, W, 3) uint8 colours. Unsigned maps are read as 0..1, signed ones as -1..1."""
    v = np.asarray(values, dtype=np.float32)
    v = (np.clip(v, -1, 1) + 1) / 2 if signed else np.clip(v, 0, 1)
    return (colormap(cmap)(v)[..., :3] * 255).round().astype(np.uint8)


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str | None = None,
            signed: bool = False) -> np.ndarray:
    """The image with ``heat`` (resized to it if needed) blended on top: (H, W, 3) uint8.

    ``alpha`` is the weight of the colours (0 = the image, 1 = the heat map alone). For a ``signed``
    map (LIME) the default colour map is diverging and the blend is weighted by ``|heat|``, so
    segments without influence stay as they are.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    rgb = np.asarray(rgb, dtype=np.uint8)
    heat = _resize_map(heat, rgb.shape[:2])
    colours = colorize(heat, cmap or (SIGNED_CMAP if signed else DEFAULT_CMAP), signed).astype(np.float32)
    a = alpha * (np.clip(np.abs(heat), 0, 1)[..., None] if signed else 1.0)
    return np.clip(rgb.astype(np.float32) * (1 - a) + colours * a, 0, 255).round().astype(np.uint8)


def colorbar_labels(signed: bool = False) -> tuple[str, str]:
    return ("toward real", "toward fake") if signed else ("low", "high influence")


def plotly_colorscale(cmap: str = DEFAULT_CMAP, n: int = 11) -> list[list]:
    """The colour map as a plotly colorscale (``[[position, "rgb(r,g,b)"], ...]``) for a colour bar."""
    cm = colormap(cmap)
    out = []
    for pos in np.linspace(0, 1, n):
        r, g, b = (np.array(cm(float(pos))[:3]) * 255).round().astype(int)
        out.append([float(pos), f"rgb({r},{g},{b})"])
    return out


def with_colorbar(image: np.ndarray, cmap: str | None = None, signed: bool = False,
                  title: str | None = None) -> np.ndarray:
    """``image`` with a vertical colour bar (and its end labels) on the right, an optional title on top."""
    from PIL import Image, ImageDraw, ImageFont

    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    cmap = cmap or (SIGNED_CMAP if signed else DEFAULT_CMAP)
    font = ImageFont.load_default()
    lo, hi = colorbar_labels(signed)
    label_w = int(max(font.getlength(lo), font.getlength(hi))) + 8
    bar_w, gap = max(10, w // 24), 6
    top = 16 if title else 0
    bar_h = max(h, 64)
    canvas = Image.new("RGB", (w + gap + bar_w + 4 + label_w, top + max(h, bar_h)), "white")
    canvas.paste(Image.fromarray(image), (0, top))
    ramp = np.linspace(1, -1, bar_h) if signed else np.linspace(1, 0, bar_h)
    bar = colorize(np.repeat(ramp[:, None], bar_w, axis=1), cmap, signed)
    canvas.paste(Image.fromarray(bar), (w + gap, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([w + gap - 1, top - 1 if top else 0, w + gap + bar_w, top + bar_h - 1], outline="#444")
    draw.text((w + gap + bar_w + 4, top), hi, fill="black", font=font)
    draw.text((w + gap + bar_w + 4, top + bar_h - 12), lo, fill="black", font=font)
    if title:
        draw.text((2, 2), title, fill="black", font=font)
    return np.asarray(canvas)


# --------------------------------------------------------------------------- feature maps


def conv_layers(model) -> list[str]:
    """Names of the layers whose output is a convolutional feature map (4-D), in model order:
    Conv2D / DepthwiseConv2D / SeparableConv2D and the activations / BN / merges fed by them."""
    from pipeline.models import _follows_conv, _rank

    memo: dict = {}
    return [layer.name for layer in model.layers if _rank(layer) == 4 and _follows_conv(layer, memo)]


_FEATURE_MODELS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def feature_maps(model, rgb: np.ndarray, layer: str, max_channels: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Activations of ``layer`` for one image: ``(maps (C, h, w) float32, channel indices)``.

    At most ``max_channels`` channels, the most active first (highest mean activation)."""
    import keras

    with _VIS_LOCK:
        per_model = _FEATURE_MODELS.setdefault(model, {})
        sub = per_model.get(layer)
        if sub is None:
            inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
            sub = per_model[layer] = keras.Model(inputs, model.get_layer(layer).output)
    act = np.asarray(sub.predict_on_batch(_to_input(rgb, model_input_size(model))))[0]
    if act.ndim != 3:
        raise ValueError(f"layer {layer!r} of {model.name} has no spatial feature map (output shape {act.shape})")
    act = np.moveaxis(act, -1, 0).astype(np.float32)
    order = np.argsort(-act.reshape(len(act), -1).mean(axis=1), kind="stable")[:max_channels]
    return act[order], order


def feature_grid(maps: np.ndarray, cols: int = 8, pad: int = 1, cell: int | None = None,
                 cmap: str = "viridis") -> np.ndarray:
    """(C, h, w) maps -> one RGB uint8 grid image, each channel scaled to its own 0..1 range.

    ``cell``: resize every channel to cell x cell px (nearest) so small maps stay visible."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or len(maps) == 0:
        raise ValueError(f"expected (C, h, w) maps, got shape {maps.shape}")
    c = len(maps)
    cols = max(1, min(cols, c))
    rows = -(-c // cols)
    tiles = [_normalise(m) for m in maps]
    if cell:
        tiles = [_resize_map(t, (cell, cell), nearest=True) for t in tiles]
    h, w = tiles[0].shape
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8) * 255
    for i, t in enumerate(tiles):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y:y + h, x:x + w] = colorize(t, cmap)
    return grid

"""What happens to a photo on its way round the internet, as functions of (H, W, 3) uint8 RGB arrays
(0-255): JPEG re-encoding, resizing, cropping, blur, noise (Pillow and SciPy do the work).

Three users: the robustness sweep (:mod:`pipeline.experiments.robustness`: one change at a set
level), the verdict's stability check (:func:`pipeline.verdict.perturbations`: up to five fixed copies of
a checked face) and the augmented copies a frozen-encoder head trains on (:func:`augmented_copy`: random
changes drawn from the model's ``[augmentation]``, the same settings the Keras models train with).
Every function returns a new C-contiguous uint8 array and leaves its input alone.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pipeline.config import Augmentation


def _pil(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """The image encoded as a baseline JPEG at ``quality`` (1-100; Pillow's default 4:2:0 subsampling)."""
    buf = io.BytesIO()
    _pil(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` and decode again (same size)."""
    with Image.open(io.BytesIO(jpeg_bytes(rgb, quality))) as im:
        return np.array(im.convert("RGB"), dtype=np.uint8)


def resize(rgb: np.ndarray, factor: float, smallest: int = 8) -> np.ndarray:
    """The image at ``factor`` times its size (bicubic, antialiased when shrinking), each side at least
    ``smallest`` pixels: a photo saved at another size."""
    h, w = rgb.shape[:2]
    size = (max(smallest, round(w * factor)), max(smallest, round(h * factor)))
    return np.array(_pil(rgb).resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)


def rescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Down to ``factor`` of the size (antialiased bilinear), then back up to the original size: the
    detail a downsized and re-enlarged photo has lost."""
    h, w = rgb.shape[:2]
    small = _pil(rgb).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BILINEAR)
    return np.array(small.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def crop(rgb: np.ndarray, top: float, bottom: float, left: float, right: float, min_side: int = 8) -> np.ndarray:
    """The image without the given fractions (0-0.5) of its height (``top``, ``bottom``) and width
    (``left``, ``right``); at least one pixel goes from a side with a fraction above 0. An image that would
    end up under ``min_side`` pixels comes back uncropped."""
    h, w = rgb.shape[:2]

    def cut(frac: float, side: int) -> int:
        return max(1, round(side * frac)) if frac > 0 else 0

    t, b, l, r = cut(top, h), cut(bottom, h), cut(left, w), cut(right, w)
    if h - t - b < min_side or w - l - r < min_side:
        return np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    return np.ascontiguousarray(rgb[t:h - b, l:w - r], dtype=np.uint8)


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (each channel separately, reflected edges)."""
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(rgb.astype(np.float32), sigma=(float(sigma), float(sigma), 0), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, standard deviation ``sigma`` on 0..255, clipped and rounded."""
    out = rgb.astype(np.float32) + rng.normal(0.0, float(sigma), rgb.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def copy_rng(seed: int, path: str, copy: int) -> np.random.Generator:
    """The random draws of augmented copy number ``copy`` of the image file ``path``: from (``seed``, a CRC-32 of the
    path, ``copy``) alone, so that every model of a run sees the same copy and a cache keyed by content embeds it
    once."""
    import zlib

    return np.random.default_rng([seed, zlib.crc32(str(path).encode()), copy])


def augmented_copy(rgb: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """One random training copy of an image for a head on a frozen encoder (e.g. CLIP's), drawn from the
    model's :class:`~pipeline.config.Augmentation` as the Keras input pipeline reads it
    (:func:`pipeline.inputs.make_dataset`): a horizontal flip half the time (``flip``); a crop of a random
    fraction up to ``zoom`` from each side (zoom in only: the encoder centre-crops anyway); with
    ``degrade_probability`` each, a Gaussian blur of sigma in (0.1, ``blur_sigma``] px and a downscale by a
    factor in [``downscale``, 1) and back; a JPEG re-encoding at a quality drawn from ``jpeg_quality``.
    ``shift`` and ``brightness`` are not applied. Deterministic for a given ``rng`` state."""
    out = np.ascontiguousarray(rgb, dtype=np.uint8)
    if aug.flip and rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if aug.zoom:
        out = crop(out, *rng.uniform(0.0, aug.zoom, size=4))
    if aug.blur_sigma and rng.random() < aug.degrade_probability:
        out = blur(out, rng.uniform(0.1, aug.blur_sigma))
    if aug.downscale and rng.random() < aug.degrade_probability:
        out = rescale(out, rng.uniform(aug.downscale, 1.0))
    if aug.jpeg_quality:
        lo, hi = aug.jpeg_quality
        out = jpeg(out, int(rng.integers(lo, hi + 1)))
    return np.ascontiguousarray(out, dtype=np.uint8)

"""Pillow colour modes to 8-bit RGB: the pixel normalisation of :func:`pipeline.images.load_rgb`.

Grey, 16-bit, 32-bit and float, CMYK, palette and YCbCr images become RGB (16-bit is scaled,
65535 -> 255, never clipped); alpha and transparency keys are composited onto white. Colour
profiles (ICC) are not applied: pixel values are used as stored, as in most ML pipelines.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded mode -> RGB: 16-bit/float scaled to 8-bit, alpha (and transparency keys) onto white."""
    mode = im.mode
    transparency = im.info.get("transparency")
    if mode in _HIGH_DEPTH_MODES:
        gray = _high_depth_to_uint8(im)
        if isinstance(transparency, int) and mode != "F":
            gray[np.asarray(im) == transparency] = 255  # the transparent key colour -> white
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), mode="RGB")
    if mode in _ALPHA_MODES or transparency is not None:
        if mode == "La":  # premultiplied; Pillow has no direct La -> RGBA conversion
            im = im.convert("LA")
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return im
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX


def _high_depth_to_uint8(im: Image.Image) -> np.ndarray:
    """16-bit, 32-bit int or float greyscale -> uint8, scaled (not clipped)."""
    arr = np.asarray(im)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # I;16 family: 0..65535
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0  # float images in 0..1
    elif lo >= 0.0 and hi <= 255.0:
        scaled = values  # already 8-bit range
    elif lo >= 0.0 and hi <= 65535.0:
        scaled = values * (255.0 / 65535.0)  # 16-bit data in a 32-bit container
    else:
        scaled = (values - lo) * (255.0 / (hi - lo))  # anything else: stretch to the full range
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

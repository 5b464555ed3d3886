"""Pixel views of one image: error level analysis, noise residual, Fourier spectrum.

Every function takes an ``(H, W, 3)`` ``uint8`` RGB array (0-255, as :func:`pipeline.images.load_rgb`
returns) and gives a small dataclass holding the measured arrays and a ``view``: an ``(H', W', 3)``
``uint8`` RGB picture scaled for looking at. They are magnifying glasses, not detectors: none of them
says "fake" by itself.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.images import check_rgb

DEFAULT_ELA_QUALITY = 90
VIEW_PERCENTILE = 99.5  # the brightest 0.5% of a view saturates: one outlier pixel must not turn the rest black


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (the Y of JPEG's YCbCr) as (H, W) float32 in 0-255."""
    arr = check_rgb(rgb).astype(np.float32)
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def scale_for_view(values: np.ndarray, percentile: float = VIEW_PERCENTILE) -> np.ndarray:
    """Non-negative (H, W) or (H, W, 3) values -> uint8 0-255, the given percentile mapped to 255.

    A constant (all-zero) input gives a black picture, never a division by zero.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.percentile(v, percentile)) if v.size else 0.0
    if top <= 0:
        top = float(v.max()) if v.size else 0.0
    if top <= 0:
        return np.zeros(v.shape, np.uint8)
    return np.clip(v * (255.0 / top), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _inferno(grey: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> (H, W, 3) with a perceptually ordered dark-to-bright colour ramp (black-red-yellow-white)."""
    t = grey.astype(np.float32) / 255.0
    r = np.clip(t * 3.0, 0, 1)
    g = np.clip(t * 3.0 - 1.0, 0, 1)
    b = np.clip(t * 3.0 - 2.0, 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- error level analysis


@dataclass
class ELA:
    """Error level analysis (Krawetz, "A Picture's Worth...", Black Hat 2007; FotoForensics).

    ``error``: (H, W) float32, per pixel the largest absolute change over R, G, B (0-255) when the image
    is saved once more as JPEG at ``quality`` and decoded. ``view``: (H, W, 3) uint8, ``error`` scaled so
    its 99.5th percentile is white. ``mean_error``: mean of ``error`` (0-255 units).
    """

    quality: int
    error: np.ndarray
    view: np.ndarray
    mean_error: float


def resave_jpeg(rgb: np.ndarray, quality: int, subsampling: int | str = 0) -> np.ndarray:
    """``rgb`` encoded as JPEG at ``quality`` (1-100, Pillow/libjpeg IJG tables) and decoded again.

    ``subsampling`` as Pillow's JPEG writer takes it (0 = 4:4:4, 2 = 4:2:0). Returns (H, W, 3) uint8.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an int in 1-100, got {quality!r}")
    buf = io.BytesIO()
    Image.fromarray(check_rgb(rgb), mode="RGB").save(buf, "JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf, formats=["JPEG"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def error_level_analysis(rgb: np.ndarray, quality: int = DEFAULT_ELA_QUALITY) -> ELA:
    """Re-save ``rgb`` at JPEG ``quality`` and measure how much each pixel moves.

    Regions that were already compressed at that quality (or coarser) barely move; regions with another
    compression history (pasted from another file, retouched after the last save) stand out as brighter
    or darker than similar content around them. Edges and fine texture are always brighter: compare like
    with like. Raises ``ValueError`` for a bad array or quality.
    """
    arr = check_rgb(rgb)
    again = resave_jpeg(arr, quality)
    error = np.abs(arr.astype(np.int16) - again.astype(np.int16)).max(axis=2).astype(np.float32)
    return ELA(quality=int(quality), error=error, view=_inferno(scale_for_view(error)), mean_error=float(error.mean()))


# --------------------------------------------------------------------------- noise


@dataclass
class NoiseResidual:
    """Noise residual: luma minus its median-filtered copy (the median filter as a simple denoiser).

    ``residual``: (H, W) float32, signed, 0-255 units. ``local_variance``: (H, W) float32, the residual's
    variance in a ``window`` x ``window`` neighbourhood (units: (0-255)^2). ``view``: (H, W, 3) uint8 of
    ``|residual|``; ``variance_view``: (H, W, 3) uint8 of the variance map. A camera sensor leaves a fairly
    even noise over the whole frame; a pasted, smoothed or generated region often has less (darker) or a
    different texture of noise.
    """

    residual: np.ndarray
    local_variance: np.ndarray
    view: np.ndarray
    variance_view: np.ndarray
    median_size: int
    window: int


def noise_residual(rgb: np.ndarray, median_size: int = 3, window: int = 16) -> NoiseResidual:
    """Noise residual and its local variance (scipy.ndimage median and uniform filters, edges reflected).

    The luma is rounded to 8 bits first (as stored in a JPEG's Y channel, near enough).
    """
    if median_size < 1 or window < 1:
        raise ValueError("median_size and window must be positive")
    y = np.rint(luma(rgb)).astype(np.uint8)  # 8-bit luma: the median filter runs ~1.5x faster on uint8
    from scipy import ndimage  # on first use (with scipy.fft below: 0.3-0.4 s that the Overview's audit need not pay)

    residual = y.astype(np.float32) - ndimage.median_filter(y, size=median_size, mode="reflect").astype(np.float32)
    mean = ndimage.uniform_filter(residual, size=window, mode="reflect")
    mean_sq = ndimage.uniform_filter(residual * residual, size=window, mode="reflect")
    variance = np.maximum(mean_sq - mean * mean, 0.0).astype(np.float32)
    return NoiseResidual(residual=residual.astype(np.float32), local_variance=variance,
                         view=_grey_to_rgb(scale_for_view(np.abs(residual))),
                         variance_view=_inferno(scale_for_view(variance)), median_size=median_size, window=window)


# --------------------------------------------------------------------------- spectrum


@dataclass
class Spectrum:
    """Fourier spectrum of the luma (scipy.fft, single precision), for the periodic traces of up-sampling (Durall et al., CVPR 2020;
    Dzanic et al., NeurIPS 2020: GAN images carry peaks and a distorted high-frequency tail).

    ``log_magnitude``: (H, W) float32, ``log(1 + |F|)`` with zero frequency at the centre (fftshift) of the
    mean-removed, Hann-windowed luma. ``view``: (H, W, 3) uint8 of it. ``frequency``: (K,) float64, cycles per
    pixel from 0 to 0.5 (bin centres); ``radial_power``: (K,) float64, ``log10(1 + mean |F|^2)`` over each ring
    (the azimuthally averaged power; an up-sampling by 2 leaves a peak near 0.25 or 0.5 cycles/pixel).
    """

    log_magnitude: np.ndarray
    view: np.ndarray
    frequency: np.ndarray
    radial_power: np.ndarray


def spectrum(rgb: np.ndarray, max_side: int = 1024) -> Spectrum:
    """2-D log-magnitude spectrum and its azimuthal average.

    Images larger than ``max_side`` on a side are centre-cropped to it (a crop keeps the pixel grid, a
    resize would move its peaks). Raises ``ValueError`` for a bad array.
    """
    y = luma(rgb)
    h, w = y.shape
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    y = y[top:top + max_side, left:left + max_side]
    h, w = y.shape
    window = np.outer(np.hanning(h), np.hanning(w)) if min(h, w) > 1 else np.ones((h, w))
    from scipy import fft as sp_fft

    f = np.fft.fftshift(sp_fft.fft2(((y - y.mean()) * window).astype(np.float32)))
    mag = np.abs(f)
    log_mag = np.log1p(mag).astype(np.float32)
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    n_bins = max(1, min(h, w) // 2)
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    index = np.clip(np.digitize(radius.ravel(), edges) - 1, 0, None)
    keep = radius.ravel() <= 0.5
    power = mag.ravel().astype(np.float64) ** 2
    sums = np.bincount(index[keep], weights=power[keep], minlength=n_bins)[:n_bins]
    counts = np.bincount(index[keep], minlength=n_bins)[:n_bins]
    radial = np.log10(1.0 + np.divide(sums, counts, out=np.zeros(n_bins), where=counts > 0))
    lo = float(np.percentile(log_mag, 1))
    view = _grey_to_rgb(scale_for_view(np.maximum(log_mag - lo, 0.0), 99.9))
    return Spectrum(log_magnitude=log_mag, view=view, frequency=(edges[:-1] + edges[1:]) / 2, radial_power=radial)

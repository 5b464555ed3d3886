"""JPEG facts read from the file: quantisation tables, estimated quality, chroma subsampling, scan mode,
and the signs of a second compression (JPEG ghosts).

Tables come from Pillow (``JpegImageFile.quantization``, natural 8x8 order). The quality estimate matches
them against the IJG tables libjpeg writes for qualities 1-100 (made here by encoding a tiny image with
Pillow at each quality, so they are exactly what libjpeg's ``jpeg_set_quality`` produces).
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, JpegImagePlugin

from pipeline.forensics.views import resave_jpeg

GHOST_QUALITIES = tuple(range(30, 100, 2))
GHOST_CROP = 512  # the ghost curve is measured on a grid-aligned centre crop of at most this many pixels a side
GHOST_DIP = 0.10  # a local minimum at least 10% below its neighbours' level counts as a ghost
_SUBSAMPLING = {(1, 1): "4:4:4", (2, 1): "4:2:2", (1, 2): "4:4:0", (2, 2): "4:2:0", (4, 1): "4:1:1", (4, 2): "4:1:0"}


@functools.lru_cache(maxsize=1)
def ijg_tables() -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """{quality: (luminance table, chrominance table)}, 64 ints each in natural order, for qualities 1-100."""
    grey = Image.new("RGB", (16, 16), (128, 128, 128))
    out = {}
    for q in range(1, 101):
        buf = io.BytesIO()
        grey.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            tables = im.quantization
        out[q] = (tuple(tables[0]), tuple(tables.get(1, tables[0])))
    return out


def estimate_quality(tables: dict[int, list[int]]) -> tuple[int | None, bool]:
    """(closest IJG quality 1-100, whether the file's tables equal that quality's exactly).

    Distance: sum of absolute differences over the luminance table and (when present) the first
    chrominance table. ``(None, False)`` when there is no usable table.
    """
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None, False
    chrom = tuple(tables[1]) if 1 in tables and len(tables[1]) == 64 else None
    return _closest_quality(tuple(tables[0]), chrom)


@functools.lru_cache(maxsize=256)
def _closest_quality(lum: tuple[int, ...], chrom: tuple[int, ...] | None) -> tuple[int, bool]:
    ref = ijg_tables()
    qualities = np.array(sorted(ref))
    d = np.abs(np.array([ref[q][0] for q in qualities]) - np.asarray(lum)).sum(axis=1)
    if chrom is not None:
        d = d + np.abs(np.array([ref[q][1] for q in qualities]) - np.asarray(chrom)).sum(axis=1)
    i = int(np.argmin(d))  # ties: the lowest quality
    return int(qualities[i]), bool(d[i] == 0)


@dataclass
class JpegGhosts:
    """JPEG ghosts (Farid, "Exposing digital forgeries from JPEG ghosts", IEEE TIFS 2009).

    The image is re-saved at each quality of ``qualities``; ``difference`` (same length) is the mean squared
    change of the pixels (0-255 units, squared). A once-compressed image has one minimum, at its own quality.
    An image compressed at a lower quality before its last save keeps a second dip (a "ghost") at that earlier
    quality: ``ghost_quality`` (None when there is none).
    """

    qualities: list[int]
    difference: list[float]
    ghost_quality: int | None


def jpeg_ghosts(rgb: np.ndarray, last_quality: int | None) -> JpegGhosts:
    """The ghost curve of stored-orientation pixels ``rgb`` ((H, W, 3) uint8, top-left on the JPEG grid).

    Only qualities below ``last_quality - 4`` can hold a ghost (the last save makes its own minimum).
    """
    h, w = rgb.shape[:2]
    ch, cw = min(h, GHOST_CROP) // 8 * 8, min(w, GHOST_CROP) // 8 * 8
    top, left = (h - ch) // 2 // 8 * 8, (w - cw) // 2 // 8 * 8
    crop = np.ascontiguousarray(rgb[top:top + ch, left:left + cw]) if ch and cw else rgb
    base = crop.astype(np.float32)
    diffs = [float(np.mean((resave_jpeg(crop, q, subsampling=2).astype(np.float32) - base) ** 2))
             for q in GHOST_QUALITIES]
    ghost = None
    limit = (last_quality or 101) - 4
    d = np.asarray(diffs)
    best_depth = 0.0
    for i in range(2, len(d) - 2):
        q = GHOST_QUALITIES[i]
        if q >= limit:
            break
        left_max, right_max = d[max(0, i - 4):i].max(), d[i + 1:i + 5].max()
        if d[i] <= d[i - 1] and d[i] <= d[i + 1]:
            depth = 1.0 - d[i] / max(min(left_max, right_max), 1e-9)
            if depth >= GHOST_DIP and depth > best_depth:
                ghost, best_depth = q, depth
    return JpegGhosts(list(GHOST_QUALITIES), diffs, ghost)


@dataclass
class JpegFacts:
    """What a JPEG file says about its own encoding.

    ``quantization``: {table id: 64 ints, natural order}; ``quality``: closest IJG quality (1-100) and
    ``quality_exact``: the tables are exactly libjpeg's for it (cameras, phones and Photoshop use their own);
    ``subsampling``: "4:2:0", "4:4:4", ... or "grey"; ``progressive``: progressive scans (else baseline);
    ``ghosts``: the JPEG-ghost curve; ``double_compression``: sentences naming each sign found (empty: none).
    """

    quantization: dict[int, list[int]]
    quality: int | None
    quality_exact: bool
    subsampling: str
    progressive: bool
    ghosts: JpegGhosts | None = None
    double_compression: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "quantization": {str(k): list(v) for k, v in self.quantization.items()},
            "estimated_quality": self.quality, "quality_exact_ijg_table": self.quality_exact,
            "chroma_subsampling": self.subsampling, "progressive": self.progressive,
            "ghosts": None if self.ghosts is None else {"qualities": self.ghosts.qualities,
                                                        "difference": [round(v, 4) for v in self.ghosts.difference],
                                                        "ghost_quality": self.ghosts.ghost_quality},
            "double_compression_signs": self.double_compression,
        }


def subsampling_of(im: Image.Image) -> str:
    """Chroma subsampling of an opened JPEG from its component sampling factors (``im.layer``)."""
    layers = getattr(im, "layer", None) or []
    if len(layers) == 1:
        return "grey"
    if len(layers) == 3:
        (_, h0, v0, _), (_, h1, v1, _), (_, h2, v2, _) = layers
        if (h1, v1) == (h2, v2) and h1 and v1:
            return _SUBSAMPLING.get((h0 // h1, v0 // v1), f"{h0}x{v0},{h1}x{v1}")
    return "other (" + ", ".join(f"{h}x{v}" for _, h, v, _ in layers) + ")" if layers else "unknown"


def header_facts(data: bytes) -> JpegFacts | None:
    """Table, quality, subsampling and scan facts from the JPEG header of ``data``; None for a non-JPEG.

    Reads the headers only (no pixel is decoded). Raises ``ValueError`` when the header is damaged.
    """
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
            if not isinstance(im, JpegImagePlugin.JpegImageFile):
                return None
            tables = {int(k): [int(x) for x in v] for k, v in (im.quantization or {}).items()}
            sub = subsampling_of(im)
            progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on a broken header
        raise ValueError(f"the JPEG header could not be read ({exc})") from None
    quality, exact = estimate_quality(tables)
    return JpegFacts(tables, quality, exact, sub, progressive)


def jpeg_facts(data: bytes, stored_rgb: np.ndarray | None = None) -> JpegFacts | None:
    """:func:`header_facts` plus the double-compression signs (ghost curve on ``stored_rgb`` when given).

    Signs: a JPEG ghost below the last quality. ``stored_rgb`` must be the pixels in stored orientation
    (EXIF rotation not applied) so the 8x8 grid lines up.
    """
    facts = header_facts(data)
    if facts is None:
        return None
    if stored_rgb is not None:
        facts.ghosts = jpeg_ghosts(stored_rgb, facts.quality)
        if facts.ghosts.ghost_quality is not None:
            facts.double_compression.append(
                f"JPEG ghost at quality {facts.ghosts.ghost_quality}: the pixels remember an earlier save at about "
                f"that quality, below the last one ({facts.quality}); the file was compressed at least twice")
    return facts

"""What a file says about itself: EXIF, XMP and IPTC metadata (read with Pillow) and the EXIF thumbnail.

Metadata is easy to strip and to forge: its presence proves little, its absence nothing. GPS coordinates
are personal data: they are left out unless the caller asks for them (``include_gps=True``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import ExifTags, Image, IptcImagePlugin

from pipeline import images

MAX_VALUE_CHARS = 200
THUMBNAIL_MAX_PIXELS = 1_000_000  # an EXIF thumbnail is at most 64 KB of JPEG; anything larger is refused
THUMBNAIL_DISAGREES = 20.0  # mean absolute difference (0-255) above which a thumbnail "shows another picture"
EDITORS = ("photoshop", "lightroom", "gimp", "snapseed", "pixelmator", "affinity", "canva", "facetune", "faceapp",
           "picsart", "luminar", "paint.net", "photopea", "capture one", "darktable", "rawtherapee", "fotor",
           "meitu", "remini", "airbrush", "photoroom", "firefly", "midjourney", "dall-e", "dall·e", "stable diffusion",
           "comfyui", "automatic1111", "novelai", "leonardo", "ideogram", "flux")
_IPTC_NAMES = {(2, 5): "object_name", (2, 55): "date_created", (2, 65): "originating_program",
               (2, 80): "by_line", (2, 105): "headline", (2, 110): "credit", (2, 115): "source",
               (2, 116): "copyright", (2, 120): "caption"}
_XMP_FIELDS = ("CreatorTool", "CreateDate", "ModifyDate", "MetadataDate", "DigitalSourceType", "Credit",
               "softwareAgent", "History", "DocumentID", "OriginalDocumentID")
_AI_PNG_KEYS = ("parameters", "prompt", "workflow", "Dream", "sd-metadata", "invokeai_metadata")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).replace("\x00", "").strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def _tag_name(tag: int, gps: bool = False) -> str:
    table = ExifTags.GPSTAGS if gps else ExifTags.TAGS
    return table.get(tag, f"tag_{tag:#06x}")


@dataclass
class Metadata:
    """Metadata facts of one file.

    ``camera``: make and model; ``software``: the Software tag and XMP CreatorTool; ``dates``: {name: text}
    (EXIF DateTime, DateTimeOriginal, DateTimeDigitized, XMP dates, IPTC date); ``editing_software``: names
    from :data:`EDITORS` found in any of them; ``exif``: every other readable EXIF tag as text (GPS excluded);
    ``gps``: "hidden" / "none" / the GPS tags when asked; ``xmp`` and ``iptc``: selected fields;
    ``ai_metadata``: PNG text keys that AI image tools write (prompt, parameters); ``errors``: what could not
    be read (damaged EXIF is reported, never fatal).
    """

    camera: str | None = None
    software: list[str] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)
    editing_software: list[str] = field(default_factory=list)
    exif: dict[str, str] = field(default_factory=dict)
    gps: Any = "none"
    xmp: dict[str, str] = field(default_factory=dict)
    iptc: dict[str, str] = field(default_factory=dict)
    ai_metadata: list[str] = field(default_factory=list)
    has_exif: bool = False
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("camera", "software", "dates", "editing_software", "has_exif", "gps",
                                              "xmp", "iptc", "ai_metadata", "exif", "errors")}


def _exif_part(im: Image.Image, meta: Metadata, include_gps: bool) -> Image.Exif | None:
    try:
        exif = im.getexif()
    except Exception as exc:  # noqa: BLE001 - a damaged EXIF block must not cost the rest
        meta.errors.append(f"the EXIF block could not be read ({_text(exc)})")
        return None
    if not exif:
        return exif
    meta.has_exif = True
    merged: dict[str, Any] = {}
    for tag, value in exif.items():
        if tag not in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            merged[_tag_name(tag)] = value
    try:
        for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
            merged[_tag_name(tag)] = value
    except Exception as exc:  # noqa: BLE001
        meta.errors.append(f"the EXIF sub-directory could not be read ({_text(exc)})")
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception as exc:  # noqa: BLE001
        gps = {}
        meta.errors.append(f"the GPS block could not be read ({_text(exc)})")
    if gps:
        meta.gps = ({_tag_name(t, gps=True): _text(v) for t, v in gps.items()} if include_gps
                    else "hidden (present in the file; ask for it explicitly to show it)")
    for name in ("MakerNote", "UserComment", "PrintImageMatching", "ExifOffset", "GPSInfo"):
        merged.pop(name, None)
    make, model = _text(merged.get("Make", "")), _text(merged.get("Model", ""))
    meta.camera = " ".join(p for p in (make, model) if p and not model.startswith(make or "\x00")) or model or None
    if merged.get("Software"):
        meta.software.append(_text(merged["Software"]))
    for name in ("DateTime", "DateTimeOriginal", "DateTimeDigitized"):
        if merged.get(name):
            meta.dates[f"EXIF {name}"] = _text(merged[name])
    meta.exif = {k: _text(v) for k, v in sorted(merged.items())}
    return exif


def _xmp_part(im: Image.Image, meta: Metadata) -> None:
    raw = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if not raw:
        return
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    for name in _XMP_FIELDS:  # attribute form (ns:Name="...") or element form (<ns:Name>...</ns:Name>)
        found = re.search(rf'\b\w+:{name}\s*=\s*"([^"]*)"', text) or re.search(
            rf"<\w+:{name}>\s*(.*?)\s*</\w+:{name}>", text, flags=re.S)
        if found:
            meta.xmp[name] = _text(re.sub(r"<[^>]+>", " ", found.group(1)))
    if meta.xmp.get("CreatorTool"):
        meta.software.append(meta.xmp["CreatorTool"])
    for name in ("CreateDate", "ModifyDate", "MetadataDate"):
        if meta.xmp.get(name):
            meta.dates[f"XMP {name}"] = meta.xmp[name]


def _iptc_part(im: Image.Image, meta: Metadata) -> None:
    try:
        info = IptcImagePlugin.getiptcinfo(im) or {}
    except Exception as exc:  # noqa: BLE001
        meta.errors.append(f"the IPTC block could not be read ({_text(exc)})")
        return
    for key, name in _IPTC_NAMES.items():
        value = info.get(key)
        if value:
            meta.iptc[name] = _text(value[0] if isinstance(value, list) else value)
    if meta.iptc.get("originating_program"):
        meta.software.append(meta.iptc["originating_program"])
    if meta.iptc.get("date_created"):
        meta.dates["IPTC DateCreated"] = meta.iptc["date_created"]


def read_metadata(im: Image.Image, include_gps: bool = False) -> Metadata:
    """Metadata of an opened Pillow image (headers only; no pixel decoding). Never raises for bad content."""
    meta = Metadata()
    _exif_part(im, meta, include_gps)
    _xmp_part(im, meta)
    _iptc_part(im, meta)
    meta.ai_metadata = [k for k in _AI_PNG_KEYS if k in im.info]
    haystack = " ".join(meta.software + list(meta.xmp.values()) + list(meta.iptc.values())).lower()
    meta.editing_software = [e for e in EDITORS if e in haystack]
    meta.software = list(dict.fromkeys(meta.software))
    return meta


@dataclass
class Thumbnail:
    """The EXIF thumbnail (IFD1) compared with the main image.

    ``rgb``: (h, w, 3) uint8 thumbnail; ``difference``: mean absolute difference (0-255) between it and the
    image shrunk to its size; ``aspect_mismatch``: relative difference of the aspect ratios; ``disagrees``:
    the thumbnail shows another picture (difference above :data:`THUMBNAIL_DISAGREES`, or aspect off by >5%).
    Editors that change the pixels but keep the camera's EXIF leave the old thumbnail behind.
    """

    rgb: np.ndarray
    difference: float
    aspect_mismatch: float
    disagrees: bool

    def to_json(self) -> dict:
        return {"size": [int(self.rgb.shape[1]), int(self.rgb.shape[0])], "mean_abs_difference": round(self.difference, 2),
                "aspect_mismatch": round(self.aspect_mismatch, 4), "disagrees_with_image": self.disagrees}


def exif_thumbnail_bytes(im: Image.Image) -> bytes | None:
    """The JPEG bytes of the EXIF IFD1 thumbnail of an opened image, None when there is none.

    Raises ``ValueError`` when IFD1 points outside the EXIF block.
    """
    raw = im.info.get("exif")
    if not raw:
        return None
    ifd1 = im.getexif().get_ifd(ExifTags.IFD.IFD1)
    offset, length = ifd1.get(0x0201), ifd1.get(0x0202)
    if not offset or not length:
        return None
    start = 6 if raw.startswith(b"Exif\x00\x00") else 0
    data = raw[start + offset:start + offset + length]
    if len(data) != length:
        raise ValueError("the EXIF thumbnail points outside the EXIF block")
    return data


def compare_thumbnail(thumb_jpeg: bytes, oriented_rgb: np.ndarray, stored_rgb: np.ndarray) -> Thumbnail:
    """Decode the thumbnail safely (pipeline.images, small pixel cap) and compare it with the image.

    The thumbnail is compared with whichever of the stored or EXIF-rotated pixels has its aspect ratio
    (cameras write it in stored orientation). Raises :class:`pipeline.images.ImageError` for an unreadable one.
    """
    thumb = _decode_thumbnail(thumb_jpeg)
    th, tw = thumb.shape[:2]
    t_aspect = tw / th

    def mismatch(arr):
        return abs((arr.shape[1] / arr.shape[0]) / t_aspect - 1.0)

    ref = min((stored_rgb, oriented_rgb), key=mismatch)
    small = np.asarray(Image.fromarray(ref).resize((tw, th), Image.Resampling.BOX), dtype=np.float32)
    diff = float(np.abs(small - thumb.astype(np.float32)).mean())
    aspect = mismatch(ref)
    return Thumbnail(thumb, diff, aspect, diff > THUMBNAIL_DISAGREES or aspect > 0.05)


def _decode_thumbnail(data: bytes) -> np.ndarray:
    return images.load_rgb(data, name="The EXIF thumbnail", max_pixels=THUMBNAIL_MAX_PIXELS)

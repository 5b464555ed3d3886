"""The image formats Deepfake Lens decodes, and what a file's leading bytes say before any pixel is decoded.

Which formats are read (:data:`SUPPORTED_EXTENSIONS` for folder scans, :data:`UPLOAD_TYPES` for
uploaders, :data:`PIL_FORMATS`: the only Pillow decoders ever tried), the format a file's magic bytes
claim (:func:`magic_format`), well-known non-image containers (:data:`NOT_IMAGES`), whether a header
looks like text (:func:`as_text`) and the width x height read from the header alone
(:func:`header_size`), for the files Pillow refuses to open. :mod:`pipeline.images` turns these into
its messages.

Phone photos: HEIC/HEIF is decoded by ``pillow-heif`` (its Pillow opener is registered on import of
this module; libheif applies the file's rotation and resets the EXIF orientation to 1), AVIF by
Pillow itself (Pillow >= 11.3).
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO

try:  # HEIC/HEIF phone photos (pillow-heif bundles libheif); without it they get a clear "not supported"
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is in requirements.txt
    HEIF_SUPPORTED = False
try:
    from PIL import features as _features

    AVIF_SUPPORTED = bool(_features.check("avif"))
except Exception:  # pragma: no cover - Pillow built without libavif
    AVIF_SUPPORTED = False

SUPPORTED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp") + (
    (".heic", ".heif") if HEIF_SUPPORTED else ()) + ((".avif",) if AVIF_SUPPORTED else ())  # picked up by folder scans
UPLOAD_TYPES = [ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS]  # a Streamlit uploader's type filter
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF") + (("HEIF",) if HEIF_SUPPORTED else ()) + (
    ("AVIF",) if AVIF_SUPPORTED else ())  # the only Pillow decoders used
SUPPORTED_TEXT = "supported: JPEG, PNG, WebP, BMP, GIF, TIFF" + (", HEIC" if HEIF_SUPPORTED else "") + (
    ", AVIF" if AVIF_SUPPORTED else "")

FORMAT_NAMES = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF",
                "TIFF": "TIFF", "HEIF": "HEIC/HEIF", "AVIF": "AVIF"}

# Containers that are not images (or images Pillow is not asked to read), by leading bytes.
NOT_IMAGES: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "is a PDF document, not an image"),
    (b"PK\x03\x04", 0, "is a ZIP archive (or an Office document), not an image"),
    (b"PK\x05\x06", 0, "is an empty ZIP archive, not an image"),
    (b"\x1f\x8b", 0, "is a gzip-compressed file, not an image"),
    (b"Rar!\x1a\x07", 0, "is a RAR archive, not an image"),
    (b"7z\xbc\xaf\x27\x1c", 0, "is a 7-Zip archive, not an image"),
    (b"%!PS", 0, "is a PostScript/EPS file, which is not supported; export it as PNG or JPEG"),
    (b"8BPS", 0, "is a Photoshop (PSD) file, which is not supported; export it as PNG or JPEG"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "is a JPEG 2000 image, which is not supported; convert it to PNG or JPEG"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "is a JPEG XL image, which is not supported; convert it to PNG or JPEG"),
    (b"\xff\x0a", 0, "is a JPEG XL image, which is not supported; convert it to PNG or JPEG"),
    (b"\x1aE\xdf\xa3", 0, "is a video (Matroska/WebM), not an image"),
    (b"OggS", 0, "is an audio/video (Ogg) file, not an image"),
    (b"ID3", 0, "is an audio (MP3) file, not an image"),
)
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
AVIF_BRANDS = (b"avif", b"avis")


def magic_format(head: bytes) -> str | None:
    """The image format the leading bytes claim, among those we decode."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        if HEIF_SUPPORTED and head[8:12] in HEIF_BRANDS:
            return "HEIC/HEIF"
        if AVIF_SUPPORTED and head[8:12] in AVIF_BRANDS:
            return "AVIF"
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 64, 108, 124):
        return "BMP"
    return None


def as_text(head: bytes) -> str | None:
    """The decoded text when ``head`` looks like a text file (UTF-8/UTF-16 with BOM/Latin-1 printable)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head[: len(head) // 2 * 2].decode("utf-16", errors="strict")
        except UnicodeDecodeError:
            return None
    if b"\x00" in head:
        return None
    sample = head[:-3] if len(head) > 3 else head  # a multi-byte character may be cut at the end
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = sample.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return text if text and printable / len(text) >= 0.95 else None


def header_size(fp: BinaryIO, head: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the header alone, for the cases Pillow refuses to open; None if unknown."""
    try:
        if kind == "PNG" and head[12:16] == b"IHDR" and len(head) >= 24:
            return struct.unpack_from(">II", head, 16)
        if kind == "GIF" and len(head) >= 10:
            return struct.unpack_from("<HH", head, 6)
        if kind == "BMP" and len(head) >= 26:
            if struct.unpack_from("<I", head, 14)[0] == 12:
                return struct.unpack_from("<HH", head, 18)
            w, h = struct.unpack_from("<ii", head, 18)
            return abs(w), abs(h)
        if kind == "WebP" and len(head) >= 30:
            chunk = head[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(head[24:27], "little") + 1
                h = int.from_bytes(head[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L" and head[20] == 0x2F:
                bits = int.from_bytes(head[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
                w, h = struct.unpack_from("<HH", head, 26)
                return w & 0x3FFF, h & 0x3FFF
        if kind == "JPEG":
            return _jpeg_size(fp)
    except (struct.error, IndexError, OSError, ValueError):
        return None
    return None


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(fp: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG marker segments (by seeking, bounded) to the frame header."""
    fp.seek(2)
    for _ in range(256):
        byte = fp.read(1)
        if byte != b"\xff":
            return None
        marker = fp.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fp.read(1)
        if not marker:
            return None
        m = marker[0]
        if m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            continue
        if m in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        raw = fp.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if m in _SOF_MARKERS:
            body = fp.read(5)
            if len(body) < 5:
                return None
            h, w = struct.unpack_from(">HH", body, 1)
            return w, h
        if length < 2:
            return None
        fp.seek(length - 2, os.SEEK_CUR)
    return None


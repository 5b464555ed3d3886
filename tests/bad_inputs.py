"""A corpus of awkward image files, for any test that reads images (``import bad_inputs``).

``make_corpus(folder)`` writes small files into ``folder`` (flat, seeded, well under a second) and
returns ``{key: CorpusItem}``. Every item is a regular file. For a bad item (``ok=False``)
``expect`` is a lowercase substring that ``pipeline.images.ImageError``'s message must contain; for a
usable item (``ok=True``) it describes the correct handling, which ``tests/test_images.py`` asserts.

Most names end in one of ``pipeline.image_formats.SUPPORTED_EXTENSIONS``; the GIF and TIFF items keep their
natural ``.gif``/``.tif`` names, so folder scans skip them (see :func:`scannable`).
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.image_formats import SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class CorpusItem:
    path: Path
    ok: bool
    expect: str  # bad: lowercase substring of the error message; ok: what correct handling looks like


# Colours and geometry the tests check against.
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
EXIF_STORED_WH = (48, 32)  # stored width x height of the orientation-6 JPEG (displayed 32 x 48)
PNG_NAMED_JPG_WH = (40, 24)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def crafted_png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0, rows: bytes = b"") -> bytes:
    """PNG bytes with any IHDR size (Pillow cannot save 0x0, and a 30000x30000 save would be slow).

    ``rows`` is the raw (filtered) scanline data; it may cover only part of the image.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def rgb48_png(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow only writes 8-bit RGB) from an (H, W, 3) uint16 array."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))
    return crafted_png(w, h, bit_depth=16, color_type=2, rows=raw)


def minimal_pdf() -> bytes:
    """A small but structurally valid one-page PDF (correct xref offsets)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def jpeg_scan_bomb(image: Image.Image, extra_scans: int) -> bytes:
    """A progressive JPEG with its last scan repeated ``extra_scans`` times (a CPU bomb when large)."""
    data = _encode(image, "JPEG", progressive=True, quality=75)
    last_sos = data.rindex(b"\xff\xda")
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[last_sos:eoi] * extra_scans + data[eoi:]


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _frames(size: tuple[int, int], colours, mode: str = "RGB") -> list[Image.Image]:
    return [Image.new(mode, size, c) for c in colours]


def make_corpus(folder: Path) -> dict[str, CorpusItem]:
    """Write the corpus into ``folder`` (created if needed) and describe each file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    items: dict[str, CorpusItem] = {}

    def add(key: str, filename: str, data: bytes, ok: bool, expect: str) -> None:
        path = folder / filename
        path.write_bytes(data)
        items[key] = CorpusItem(path, ok, expect)

    # a textured RGB picture (noise + gradient, so truncation cuts into real image data)
    yy, xx = np.mgrid[0:48, 0:64]
    photo = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2) + rng.integers(0, 40, (48, 64, 3))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    photo_im = Image.fromarray(photo)
    good_jpeg = _encode(photo_im, "JPEG", quality=90)
    good_png = _encode(photo_im, "PNG")

    # ---- unusable -------------------------------------------------------------------------
    add("empty", "empty.jpg", b"", False, "is empty (0 bytes)")
    random_bytes = b"\x00" + rng.bytes(4095)  # leading NUL: no magic number, not text
    add("random_bytes", "random_bytes.jpg", random_bytes, False, "is not an image pillow can read")
    add("truncated_jpeg", "truncated.jpg", good_jpeg[: len(good_jpeg) * 6 // 10], False, "is truncated or corrupt")
    add("truncated_png", "truncated.png", good_png[: len(good_png) * 6 // 10], False, "is truncated or corrupt")
    add("zero_size", "zero_size.png", crafted_png(0, 0), False,
        "is only 0×0 pixels; need at least 16 on each side")
    add("tiny_1x1", "tiny_1x1.png", _encode(Image.new("RGB", (1, 1), RED), "PNG"), False,
        "is only 1×1 pixels; need at least 16 on each side")
    add("bomb", "bomb.png", crafted_png(30000, 30000, bit_depth=1, rows=b"\x00" * 3751 * 4), False,
        "is 30000×30000 = 900,000,000 pixels, over the limit of 40,000,000")
    # under Pillow's own bomb limit: only our header check stops this one
    add("over_limit", "over_limit.png", crafted_png(7000, 6000, bit_depth=1, rows=b"\x00" * 876 * 4), False,
        "is 7000×6000 = 42,000,000 pixels, over the limit of 40,000,000")
    add("scan_bomb", "many_scans.jpg", jpeg_scan_bomb(photo_im.resize((32, 16)), 600), False,
        "scans (more than 500), which would take too long to decode")
    add("pdf", "document.pdf.jpg", minimal_pdf(), False, "is a pdf document, not an image")
    add("text_as_png", "notes.png", b"Shopping list\n- eggs\n- milk\n\nRemember: call Sam at 5pm.\n" * 4,
        False, "is not an image file (looks like text)")
    add("html_as_jpg", "page.jpg",
        b"<!DOCTYPE html>\n<html><head><title>photo.jpg</title></head>\n"
        b"<body><img src=\"https://example.com/photo.jpg\"></body></html>\n", False, "is an html web page")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("face.jpg", good_jpeg)
    add("zip_as_png", "archive.png", zbuf.getvalue(), False, "is a zip archive")

    # ---- usable ---------------------------------------------------------------------------
    add("good_jpeg", "good.jpg", good_jpeg, True, "plain RGB JPEG, 64x48")
    add("good_bmp", "good.bmp", _encode(photo_im.resize((40, 30)), "BMP"), True, "24-bit BMP, 40x30, lossless")
    add("grayscale_jpeg", "grayscale.jpg", _encode(photo_im.convert("L"), "JPEG", quality=90), True,
        "mode L -> RGB with three equal channels")
    add("cmyk_jpeg", "cmyk.jpg", _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95),
        True, "pure-red CMYK JPEG -> close to (255, 0, 0)")
    gradient = np.repeat(np.linspace(0, 65535, 64).round().astype(np.uint16)[None, :], 24, axis=0)
    add("gray16_png", "gray16.png", _encode(Image.frombytes("I;16", (64, 24), gradient.astype("<u2").tobytes()), "PNG"), True,
        "16-bit grey gradient 0..65535 left to right -> 0..255, monotonic, scaled not clipped")
    rgb48 = np.zeros((16, 24, 3), np.uint16)
    rgb48[:, :8] = (65535, 0, 32896)
    rgb48[:, 8:16] = (0, 65535, 257)
    rgb48[:, 16:] = (1000, 30000, 65535)
    add("rgb48_png", "rgb48.png", rgb48_png(rgb48), True,
        "48-bit RGB PNG -> 8-bit (65535 -> 255, 32896 -> 128)")
    rgba = np.zeros((32, 32, 4), np.uint8)  # left half: fully transparent *black*
    rgba[:, 16:] = (0, 0, 255, 255)  # right half opaque blue
    rgba[24:, 16:] = (255, 0, 0, 128)  # bottom-right: half-transparent red
    add("rgba_png", "rgba.png", _encode(Image.fromarray(rgba, mode="RGBA"), "PNG"), True,
        "transparent (black) left half -> white; opaque blue kept; 50% red over white -> (255, 127, 127)")
    la = np.zeros((32, 32, 2), np.uint8)
    la[:16] = (0, 0)  # top half transparent black
    la[16:] = (60, 255)  # bottom half opaque dark grey
    add("la_png", "la.png", _encode(Image.fromarray(la, mode="LA"), "PNG"), True,
        "grey+alpha: transparent top half -> white, opaque grey 60 kept")
    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 0] + [0] * (256 * 3 - 9))
    pal.paste(2, (0, 0, 32, 16))  # top half index 2 (black) = the transparent entry
    pal.paste(1, (0, 16, 16, 32))  # bottom-left green, bottom-right red
    add("palette_png", "palette.png", _encode(pal, "PNG", transparency=2), True,
        "palette with a transparent entry: transparent top half -> white, red/green kept")
    add("animated_gif", "animated.gif",
        _encode(_frames((32, 32), [RED, GREEN, BLUE])[0], "GIF", save_all=True,
                append_images=_frames((32, 32), [RED, GREEN, BLUE])[1:], duration=100, loop=0),
        True, "3 frames red, green, blue -> first frame (red)")
    webp_frames = _frames((32, 32), [RED, GREEN, BLUE])
    add("animated_webp", "animated.webp",
        _encode(webp_frames[0], "WEBP", save_all=True, append_images=webp_frames[1:], duration=100,
                lossless=True), True, "animated WebP red, green, blue -> first frame (red)")
    png_frames = _frames((32, 32), [RED, GREEN, BLUE])
    add("apng", "animated.png",
        _encode(png_frames[0], "PNG", save_all=True, append_images=png_frames[1:], duration=100),
        True, "APNG red, green, blue -> first frame (red)")
    add("webp", "photo.webp", _encode(photo_im, "WEBP", quality=90), True, "lossy WebP, 64x48")
    add("tiff", "photo.tif", _encode(photo_im, "TIFF"), True, "uncompressed RGB TIFF, 64x48, lossless")
    named = np.zeros((PNG_NAMED_JPG_WH[1], PNG_NAMED_JPG_WH[0], 3), np.uint8)
    named[:, :, 0] = np.arange(PNG_NAMED_JPG_WH[0], dtype=np.uint8)[None, :] * 6
    named[:, :, 2] = 200
    add("png_named_jpg", "really_a_png.jpg", _encode(Image.fromarray(named), "PNG"), True,
        "PNG content behind a .jpg name -> decoded by content, pixels exact")
    stored = np.full((EXIF_STORED_WH[1], EXIF_STORED_WH[0], 3), 255, np.uint8)  # white, 48 wide x 32 high
    stored[:8, :8] = RED  # marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    add("exif_rotated_jpeg", "exif_rotated.jpg", _encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif),
        True, "orientation 6: stored 48x32 -> returned 48 high x 32 wide, red marker moves to the top-right")
    return items


def scannable(corpus: dict[str, CorpusItem]) -> dict[str, CorpusItem]:
    """The items a folder scan picks up (names ending in a supported extension)."""
    return {k: v for k, v in corpus.items() if v.path.suffix.lower() in SUPPORTED_EXTENSIONS}

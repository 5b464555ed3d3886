"""Safe image decoding: the one way training data, ``predict`` and dashboard uploads become pixels.

Every input ends as a ``(H, W, 3)`` ``uint8`` RGB array or as an :class:`ImageError` whose message
is a sentence for the user that starts with the file name (when known) and says what is wrong.

Safety rules:

* Only the formats in :data:`PIL_FORMATS` are tried (Pillow's other plugins, e.g. EPS which runs
  Ghostscript, are never reached), and a file is identified by its content, not its extension.
* The size is read from the header and checked against ``max_pixels`` before any pixel is decoded.
  Pillow's own decompression-bomb refusal is turned into the same message. No Pillow global
  (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``, warning filters) is changed, so the module is
  safe to call from many threads (a side effect: for 89M-179M pixel images Pillow still emits its
  ``DecompressionBombWarning`` before our refusal; under ``-W error`` that warning is handled too).
* Truncated data is an error, never a partially grey image (a JPEG missing only its final
  end-of-image marker counts as truncated too; Pillow refuses it).
* A JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused unread (each progressive scan is a
  pass over the whole image, so thousands of tiny scans make a small file take minutes).

Phone photos: HEIC/HEIF is decoded by ``pillow-heif`` (its Pillow opener is registered on import; libheif
applies the file's rotation and resets the EXIF orientation to 1), AVIF by Pillow itself (Pillow >= 11.3).

Normalisation: the EXIF orientation is applied; grey, 16-bit, CMYK and palette images become RGB
(16-bit is scaled, 65535 -> 255); alpha is composited onto white; animations give their first frame.
Colour profiles (ICC) are not applied: pixel values are used as stored, as in most ML pipelines.
"""
from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16
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
MAX_JPEG_SCANS = 500  # libjpeg-turbo's advice: each scan is a pass over the whole image (CPU bomb)

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_SNIFF_BYTES = 4096


class ImageError(ValueError):
    """An input that cannot be used as an image; ``str(exc)`` is a sentence for the user."""


# --------------------------------------------------------------------------------------------
# public API


def load_rgb(source: Source, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (path, bytes or binary file object) to a C-contiguous (H, W, 3) uint8 RGB array.

    ``name`` is used in error messages (default: the path, or the file object's ``name``).
    Raises :class:`ImageError` for anything that is not a usable image.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    max_pixels = int(max_pixels)
    label, opener = _resolve(source, name)
    with opener() as fp:
        return _decode(fp, label, max_pixels)


def check_rgb(rgb) -> np.ndarray:
    """``rgb`` as an (H, W, 3) uint8 array (0-255), unchanged; ``ValueError`` naming its shape and dtype
    otherwise (a programming error, not a user's file: files go through :func:`load_rgb`)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to (size, size, 3) with bilinear filtering.

    Downscaling is antialiased (Pillow widens the filter support). A non-square image is
    stretched, not cropped. Always returns a new C-contiguous array.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"cannot resize an empty image of shape {arr.shape}")
    size = int(size)
    if arr.shape[:2] == (size, size):
        return np.array(arr, dtype=np.uint8, order="C", copy=True)
    im = Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    out = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(out, dtype=np.uint8, order="C", copy=True)


def load_for_model(source: Source, size: int, *, name: str | None = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``resize_square(load_rgb(source), size)``: the (size, size, 3) uint8 input of every model."""
    return resize_square(load_rgb(source, name=name, max_pixels=max_pixels), size)


def check_image(source: Source, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """None when ``source`` decodes to a usable image, else the :class:`ImageError` message.

    The image is fully decoded (a truncated file is only found that way). Never raises for bad
    content; a wrong argument type still raises ``TypeError``.
    """
    try:
        load_rgb(source, name=name, max_pixels=max_pixels)
    except ImageError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# opening the source


class _Borrowed:
    """Context manager around a file object we do not own (not closed on exit)."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp

    def __enter__(self) -> BinaryIO:
        return self.fp

    def __exit__(self, *exc: object) -> None:
        return None


def _resolve(source: Source, name: str | None):
    """(label for messages, zero-argument callable giving a context manager of a seekable binary file)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(source) or "The empty path"
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageError(f"{label} does not exist") from None
        except NotADirectoryError:
            raise ImageError(f"{label} does not exist (a parent in its path is a file)") from None
        except PermissionError:
            raise ImageError(f"{label} could not be read (permission denied)") from None
        except (OSError, ValueError) as exc:  # name too long, embedded NUL, ...
            raise ImageError(f"{label} could not be read ({_oserror_text(exc)})") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{label} is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):  # FIFO, socket, device: reading could block forever
            raise ImageError(f"{label} is not a regular file (a pipe, socket or device), so it was not read")

        def open_path():
            try:
                return open(path, "rb")
            except PermissionError:
                raise ImageError(f"{label} could not be read (permission denied)") from None
            except OSError as exc:
                raise ImageError(f"{label} could not be read ({_oserror_text(exc)})") from None

        return label, open_path
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return name or "The image data", lambda: io.BytesIO(data)
    if isinstance(source, io.TextIOBase):
        raise TypeError("the file object must be opened in binary mode ('rb'), not text mode")
    if hasattr(source, "read"):
        own = getattr(source, "name", None)
        label = name or (own if isinstance(own, str) and own else "The image data")
        seekable = False
        try:
            seekable = bool(source.seekable()) if hasattr(source, "seekable") else False
        except (OSError, ValueError):
            seekable = False
        if seekable:
            return label, lambda: _Borrowed(source)

        def read_all():
            try:
                data = source.read()
            except (OSError, ValueError) as exc:
                raise ImageError(f"{label} could not be read ({_oserror_text(exc)})") from None
            if isinstance(data, str):
                raise TypeError("the file object must be opened in binary mode ('rb'), not text mode")
            return io.BytesIO(data or b"")

        return label, read_all
    raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")


def _oserror_text(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).rstrip(".")


# --------------------------------------------------------------------------------------------
# decoding


def _decode(fp: BinaryIO, label: str, max_pixels: int) -> np.ndarray:
    try:
        fp.seek(0)
        head = fp.read(_SNIFF_BYTES)
        fp.seek(0)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{label} could not be read ({_oserror_text(exc)})") from None
    if isinstance(head, str):
        raise TypeError("the file object must be opened in binary mode ('rb'), not text mode")
    if not head:
        raise ImageError(f"{label} is empty (0 bytes)")
    kind = _magic_format(head)
    if kind == "JPEG":
        scans = _count_jpeg_scans(fp, label)
        if scans > MAX_JPEG_SCANS:
            raise ImageError(f"{label} is a JPEG with {scans:,} scans (more than {MAX_JPEG_SCANS}), "
                             "which would take too long to decode")

    try:
        im = Image.open(fp, formats=PIL_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(_explain_unidentified(fp, label, head, kind, max_pixels)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses before we can see the size; read it from the header ourselves.
        raise ImageError(_too_big_message(fp, label, head, kind, max_pixels, exc)) from None
    except MemoryError:
        raise ImageError(f"{label} could not be decoded (out of memory while reading its header)") from None
    except Exception as exc:  # a plugin failed on a damaged header
        raise ImageError(_corrupt(label, kind, exc)) from None

    with im:
        kind = _FORMAT_NAMES.get(im.format or "", kind)
        width, height = im.size
        _check_size(label, width, height, max_pixels)
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(_too_big_message(fp, label, head, kind, max_pixels, exc)) from None
        except MemoryError:
            raise ImageError(f"{label} could not be decoded (out of memory)") from None
        except Exception as exc:
            raise ImageError(_corrupt(label, kind, exc)) from None
        mode = im.mode
        try:
            rgb = _to_rgb(_apply_orientation(im, label))
            arr = np.array(rgb, dtype=np.uint8, order="C", copy=True)
        except MemoryError:
            raise ImageError(f"{label} could not be decoded (out of memory)") from None
        except Exception as exc:
            raise ImageError(f"{label} uses colour mode {mode}, which could not be converted to RGB "
                             f"({_detail(exc)})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:  # defensive: never hand on junk
        raise ImageError(f"{label} decoded to an unexpected pixel layout {arr.shape}")
    return arr


def _check_size(label: str, width: int, height: int, max_pixels: int) -> None:
    pixels = width * height
    if pixels > max_pixels:
        raise ImageError(f"{label} is {width}×{height} = {pixels:,} pixels, over the limit of {max_pixels:,}")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{label} is only {width}×{height} pixels; need at least {MIN_SIDE} on each side")


def _detail(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _corrupt(label: str, kind: str | None, exc: BaseException) -> str:
    where = f"{kind} data: " if kind else ""
    return f"{label} is truncated or corrupt ({where}{_detail(exc)})"


_FORMAT_NAMES = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF",
                 "TIFF": "TIFF", "HEIF": "HEIC/HEIF", "AVIF": "AVIF"}

# Containers that are not images (or images Pillow is not asked to read), by leading bytes.
_NOT_IMAGES: tuple[tuple[bytes, int, str], ...] = (
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
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


def _magic_format(head: bytes) -> str | None:
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
        if HEIF_SUPPORTED and head[8:12] in _HEIF_BRANDS:
            return "HEIC/HEIF"
        if AVIF_SUPPORTED and head[8:12] in _AVIF_BRANDS:
            return "AVIF"
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 64, 108, 124):
        return "BMP"
    return None


def _explain_unidentified(fp: BinaryIO, label: str, head: bytes, kind: str | None, max_pixels: int) -> str:
    """Why Pillow could not identify the file: a damaged image, or not an image at all."""
    if kind:
        size = _header_size(fp, head, kind)
        if size is not None and min(size) < 1:  # Pillow refuses 0-sized images outright
            return f"{label} is only {size[0]}×{size[1]} pixels; need at least {MIN_SIDE} on each side"
        if kind == "HEIC/HEIF":
            return f"{label} is a HEIC/HEIF photo that is truncated or corrupt (its header could not be read)"
        return f"{label} is truncated or corrupt (the {kind} header could not be read)"
    for magic, offset, text in _NOT_IMAGES:
        if head[offset:offset + len(magic)] == magic:
            return f"{label} {text}"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return f"{label} is a HEIC/HEIF photo, which is not supported; convert it to JPEG or PNG"
        if brand in _AVIF_BRANDS:
            return f"{label} is an AVIF image, which is not supported; convert it to JPEG or PNG"
        return f"{label} is a video (MP4/QuickTime), not an image"
    if head.startswith(b"RIFF"):
        return f"{label} is a RIFF media file ({head[8:12].decode('latin-1')!r}), not an image"
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered[:1024]:
            return f"{label} is an HTML web page, not an image (was the page saved instead of the picture?)"
        if "<svg" in lowered[:2048]:
            return f"{label} is an SVG vector drawing, which is not supported; export it as PNG"
        return f"{label} is not an image file (looks like text)"
    return f"{label} is not an image Pillow can read ({SUPPORTED_TEXT})"


def _as_text(head: bytes) -> str | None:
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


_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _too_big_message(fp: BinaryIO, label: str, head: bytes, kind: str | None, max_pixels: int,
                     exc: BaseException) -> str:
    size = _header_size(fp, head, kind) if kind else None
    if size is not None:
        w, h = size
        limit = max_pixels if w * h > max_pixels else _pillow_limit(exc)
        return f"{label} is {w}×{h} = {w * h:,} pixels, over the limit of {limit:,}"
    found = _BOMB_PIXELS.search(str(exc))
    if found:
        pixels = int(found.group(1))
        limit = max_pixels if pixels > max_pixels else _pillow_limit(exc)
        return f"{label} is {pixels:,} pixels, over the limit of {limit:,}"
    return f"{label} is too large to decode safely (Pillow refused it as a possible decompression bomb)"


def _pillow_limit(exc: BaseException) -> int:
    """The limit Pillow itself applied (only matters when ``max_pixels`` is raised above it).

    Pillow errors above 2 x ``MAX_IMAGE_PIXELS`` and warns above ``MAX_IMAGE_PIXELS`` (the warning
    only arrives here as an exception when warnings are turned into errors, e.g. ``-W error``).
    """
    limit = Image.MAX_IMAGE_PIXELS or 0
    return limit if isinstance(exc, Image.DecompressionBombWarning) else 2 * limit


def _header_size(fp: BinaryIO, head: bytes, kind: str) -> tuple[int, int] | None:
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


def _count_jpeg_scans(fp: BinaryIO, label: str) -> int:
    """Start-of-scan markers in the whole file (0xFF 0xDA cannot occur inside entropy-coded data)."""
    count, prev = 0, b""
    try:
        fp.seek(0)
        while chunk := fp.read(1 << 20):
            count += (prev + chunk).count(b"\xff\xda")
            prev = chunk[-1:]
        fp.seek(0)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{label} could not be read ({_oserror_text(exc)})") from None
    return count


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


# --------------------------------------------------------------------------------------------
# pixel normalisation


def _apply_orientation(im: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation (``PIL.ImageOps.exif_transpose``); unreadable EXIF leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # damaged EXIF must not cost a usable photo
        log.warning("%s: ignoring unreadable EXIF data (%s)", label, _detail(exc))
        return im


_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _to_rgb(im: Image.Image) -> Image.Image:
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

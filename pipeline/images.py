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

Which formats are read, and what a file's header says before decoding, is :mod:`pipeline.image_formats`
(HEIC/HEIF through pillow-heif, AVIF through Pillow).

Normalisation: the EXIF orientation is applied; grey, 16-bit, CMYK and palette images become RGB
(16-bit is scaled, 65535 -> 255; :mod:`pipeline.image_modes`); alpha is composited onto white;
animations give their first frame. Colour profiles (ICC) are not applied: pixel values are used as
stored, as in most ML pipelines.
"""
from __future__ import annotations

import io
import logging
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.image_formats import (AVIF_BRANDS, FORMAT_NAMES, HEIF_BRANDS, NOT_IMAGES, PIL_FORMATS,
                                    SUPPORTED_TEXT, as_text, header_size, magic_format)
from pipeline.image_modes import to_rgb

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16
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
    kind = magic_format(head)
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
        kind = FORMAT_NAMES.get(im.format or "", kind)
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
            rgb = to_rgb(_apply_orientation(im, label))
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


def _explain_unidentified(fp: BinaryIO, label: str, head: bytes, kind: str | None, max_pixels: int) -> str:
    """Why Pillow could not identify the file: a damaged image, or not an image at all."""
    if kind:
        size = header_size(fp, head, kind)
        if size is not None and min(size) < 1:  # Pillow refuses 0-sized images outright
            return f"{label} is only {size[0]}×{size[1]} pixels; need at least {MIN_SIDE} on each side"
        if kind == "HEIC/HEIF":
            return f"{label} is a HEIC/HEIF photo that is truncated or corrupt (its header could not be read)"
        return f"{label} is truncated or corrupt (the {kind} header could not be read)"
    for magic, offset, text in NOT_IMAGES:
        if head[offset:offset + len(magic)] == magic:
            return f"{label} {text}"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in HEIF_BRANDS:
            return f"{label} is a HEIC/HEIF photo, which is not supported; convert it to JPEG or PNG"
        if brand in AVIF_BRANDS:
            return f"{label} is an AVIF image, which is not supported; convert it to JPEG or PNG"
        return f"{label} is a video (MP4/QuickTime), not an image"
    if head.startswith(b"RIFF"):
        return f"{label} is a RIFF media file ({head[8:12].decode('latin-1')!r}), not an image"
    text = as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered[:1024]:
            return f"{label} is an HTML web page, not an image (was the page saved instead of the picture?)"
        if "<svg" in lowered[:2048]:
            return f"{label} is an SVG vector drawing, which is not supported; export it as PNG"
        return f"{label} is not an image file (looks like text)"
    return f"{label} is not an image Pillow can read ({SUPPORTED_TEXT})"


_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _too_big_message(fp: BinaryIO, label: str, head: bytes, kind: str | None, max_pixels: int,
                     exc: BaseException) -> str:
    size = header_size(fp, head, kind) if kind else None
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


# --------------------------------------------------------------------------------------------
# pixel normalisation


def _apply_orientation(im: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation (``PIL.ImageOps.exif_transpose``); unreadable EXIF leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # damaged EXIF must not cost a usable photo
        log.warning("%s: ignoring unreadable EXIF data (%s)", label, _detail(exc))
        return im

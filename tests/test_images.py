"""pipeline.images: every awkward input becomes a clean RGB array or a specific ImageError."""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import bad_inputs
from bad_inputs import BLUE, EXIF_STORED_WH, GREEN, PNG_NAMED_JPG_WH, RED
from pipeline import image_formats, image_modes, images
from pipeline.images import ImageError, check_image, load_for_model, load_rgb, resize_square


def _keys() -> tuple[list[str], list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = bad_inputs.make_corpus(Path(tmp))
    return sorted(k for k, v in corpus.items() if not v.ok), sorted(k for k, v in corpus.items() if v.ok)


BAD_KEYS, OK_KEYS = _keys()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, bad_inputs.CorpusItem]:
    return bad_inputs.make_corpus(tmp_path_factory.mktemp("corpus"))


def _assert_rgb(arr: np.ndarray) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.ndim == 3 and arr.shape[2] == 3, arr.shape
    assert arr.dtype == np.uint8
    assert arr.flags.c_contiguous and arr.flags.writeable
    assert min(arr.shape[:2]) >= 1


def _close(pixel, colour, tol=8) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)) <= tol))


# ---- the corpus -----------------------------------------------------------------------------


def test_corpus_is_small_fast_and_complete(corpus, tmp_path):
    import time

    start = time.perf_counter()
    bad_inputs.make_corpus(tmp_path)
    assert time.perf_counter() - start < 1.0
    assert all(item.path.is_file() for item in corpus.values())
    assert sum(item.path.stat().st_size for item in corpus.values()) < 200_000
    assert {"empty", "random_bytes", "truncated_jpeg", "zero_size", "tiny_1x1", "bomb", "grayscale_jpeg",
            "cmyk_jpeg", "gray16_png", "rgba_png", "palette_png", "animated_gif", "webp", "pdf", "text_as_png",
            "png_named_jpg", "exif_rotated_jpeg", "good_jpeg", "good_bmp"} <= set(corpus)
    assert all(item.expect == item.expect.lower() for item in corpus.values() if not item.ok)
    assert set(bad_inputs.scannable(corpus)) == set(corpus) - {"animated_gif", "tiff"}


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_input_gives_specific_message(corpus, key):
    item = corpus[key]
    with pytest.raises(ImageError) as info:
        load_rgb(item.path)
    message = str(info.value)
    assert message.startswith(str(item.path)), message
    assert item.path.name in message
    assert item.expect in message.lower(), message
    # same verdict through every entry point and source type
    assert check_image(item.path) == message
    named = f"{item.path.name} is"
    assert check_image(item.path.read_bytes(), name=item.path.name).startswith(named)
    with pytest.raises(ImageError, match="^" + item.path.name):
        load_for_model(io.BytesIO(item.path.read_bytes()), 32, name=item.path.name)


@pytest.mark.parametrize("key", OK_KEYS)
def test_usable_input_decodes_the_same_from_path_bytes_and_file(corpus, key):
    item = corpus[key]
    arr = load_rgb(item.path)
    _assert_rgb(arr)
    assert check_image(item.path) is None
    data = item.path.read_bytes()
    np.testing.assert_array_equal(load_rgb(data), arr)
    np.testing.assert_array_equal(load_rgb(bytearray(data)), arr)
    np.testing.assert_array_equal(load_rgb(str(item.path)), arr)
    with open(item.path, "rb") as fh:
        np.testing.assert_array_equal(load_rgb(fh), arr)
        assert not fh.closed  # the caller's file is left open
    model_input = load_for_model(item.path, 24)
    assert model_input.shape == (24, 24, 3) and model_input.dtype == np.uint8


def test_plain_files_keep_their_pixels(corpus):
    assert load_rgb(corpus["good_jpeg"].path).shape == (48, 64, 3)
    assert load_rgb(corpus["webp"].path).shape == (48, 64, 3)
    tiff = load_rgb(corpus["tiff"].path)
    bmp = load_rgb(corpus["good_bmp"].path)
    assert tiff.shape == (48, 64, 3) and bmp.shape == (30, 40, 3)
    with Image.open(corpus["tiff"].path) as im:
        np.testing.assert_array_equal(tiff, np.asarray(im.convert("RGB")))  # lossless: exact


def test_exif_orientation_is_applied(corpus):
    arr = load_rgb(corpus["exif_rotated_jpeg"].path)
    w, h = EXIF_STORED_WH
    assert arr.shape == (w, h, 3)  # H and W swapped versus the stored 48x32
    assert _close(arr[3, -4], RED, 30)  # stored top-left marker is now top-right (90 deg clockwise)
    assert _close(arr[3, 3], (255, 255, 255), 30)
    assert _close(arr[-4, -4], (255, 255, 255), 30)


def test_alpha_is_flattened_onto_white(corpus):
    arr = load_rgb(corpus["rgba_png"].path)
    assert (arr[:, :16] == 255).all()  # fully transparent black -> white, not black
    assert _close(arr[4, 24], BLUE, 0)
    assert _close(arr[28, 24], (255, 127, 127), 1)  # 50% red over white
    la = load_rgb(corpus["la_png"].path)
    assert (la[:16] == 255).all() and (la[16:] == 60).all()


def test_palette_with_transparency(corpus):
    arr = load_rgb(corpus["palette_png"].path)
    assert (arr[:16] == 255).all()  # transparent palette entry -> white
    assert _close(arr[20, 4], GREEN, 0) and _close(arr[20, 28], RED, 0)


def test_16_bit_is_scaled_not_clipped(corpus):
    arr = load_rgb(corpus["gray16_png"].path)
    assert arr.shape == (24, 64, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    row = arr[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 50  # monotonic and not saturated
    assert abs(row[32] - 130) <= 2  # 65535 * 32/63 = 33288 -> 129.5
    rgb48 = load_rgb(corpus["rgb48_png"].path)
    assert tuple(rgb48[0, 0]) == (255, 0, 128)
    assert tuple(rgb48[0, 10]) == (0, 255, 1)
    assert tuple(rgb48[0, 20]) in {(3, 116, 255), (4, 117, 255), (3, 117, 255)}


def test_cmyk_and_grayscale_become_rgb(corpus):
    cmyk = load_rgb(corpus["cmyk_jpeg"].path)
    assert _close(cmyk.mean(axis=(0, 1)), RED, 6)
    gray = load_rgb(corpus["grayscale_jpeg"].path)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


@pytest.mark.parametrize("key", ["animated_gif", "animated_webp", "apng"])
def test_animation_gives_the_first_frame(corpus, key):
    arr = load_rgb(corpus[key].path)
    assert arr.shape == (32, 32, 3)
    assert (np.abs(arr.astype(int) - RED).max(axis=2) <= 2).all()


def test_content_not_extension_decides(corpus):
    arr = load_rgb(corpus["png_named_jpg"].path)
    w, h = PNG_NAMED_JPG_WH
    assert arr.shape == (h, w, 3)
    assert (arr[:, :, 2] == 200).all() and (arr[0, :, 0] == np.arange(w) * 6).all()  # lossless: exact


# ---- paths, names and sources ------------------------------------------------------------------


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg does not exist$"):
        load_rgb(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="does not exist"):
        load_rgb(tmp_path / "nope.jpg" / "deeper.png")
    folder = tmp_path / "looks_like.jpg"
    folder.mkdir()
    with pytest.raises(ImageError, match=r"looks_like\.jpg is a directory, not an image file"):
        load_rgb(folder)
    assert check_image(str(tmp_path)) == f"{tmp_path} is a directory, not an image file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_rgb(fifo)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path, corpus):
    path = tmp_path / "locked.jpg"
    path.write_bytes(corpus["good_jpeg"].path.read_bytes())
    path.chmod(0)
    try:
        assert check_image(path) == f"{path} could not be read (permission denied)"
    finally:
        path.chmod(0o644)


def test_names_in_messages(corpus):
    data = corpus["truncated_jpeg"].path.read_bytes()
    assert check_image(data).startswith("The image data is truncated or corrupt (")
    assert check_image(data, name="upload.jpg").startswith("upload.jpg is truncated or corrupt (")
    assert check_image(corpus["empty"].path, name="x.jpg") == "x.jpg is empty (0 bytes)"
    assert check_image(b"") == "The image data is empty (0 bytes)"

    class Upload(io.BytesIO):  # like streamlit's UploadedFile
        name = "selfie.png"

    assert check_image(Upload(b"%PDF-1.7\n...")) == "selfie.png is a PDF document, not an image"


def test_file_objects(corpus):
    data = corpus["good_jpeg"].path.read_bytes()
    expected = load_rgb(data)
    stream = io.BytesIO(data)
    stream.seek(100)  # position does not matter: the whole object is the file
    np.testing.assert_array_equal(load_rgb(stream), expected)
    assert not stream.closed

    class Pipe(io.RawIOBase):  # readable, not seekable
        def __init__(self, payload: bytes) -> None:
            self._buf = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    np.testing.assert_array_equal(load_rgb(io.BufferedReader(Pipe(data))), expected)
    np.testing.assert_array_equal(load_rgb(memoryview(data)), expected)
    with pytest.raises(TypeError):
        load_rgb(12345)
    with pytest.raises(TypeError):
        load_rgb(io.StringIO("not bytes"))
    with open(corpus["good_jpeg"].path, encoding="latin-1") as text_mode, pytest.raises(TypeError):
        load_rgb(text_mode)


def test_other_messages():
    assert check_image(b"\x89PNG\r\n\x1a\n\x00\x00").endswith("is truncated or corrupt (the PNG header could not be read)")
    assert check_image(b"\xff\xd8\xff\xe0").startswith("The image data is truncated or corrupt")
    assert check_image(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>").endswith("SVG vector drawing, which is not supported; export it as PNG")
    assert "HEIC/HEIF photo" in check_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    assert "looks like text" in check_image("Grüße, naïve café\n".encode() * 10)
    assert "looks like text" in check_image("plain text\n".encode("utf-16"))
    assert f"not an image Pillow can read ({image_formats.SUPPORTED_TEXT})" in check_image(bytes(range(256)))


def test_formats_outside_the_allow_list_are_not_decoded():
    # Pillow could read these, but only JPEG/PNG/WebP/BMP/GIF/TIFF decoders are ever used.
    ppm = b"P6\n16 16\n255\n" + bytes(16 * 16 * 3)
    assert "not an image Pillow can read" in check_image(ppm)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "ICO")
    assert check_image(buf.getvalue()) is not None
    assert "PostScript/EPS" in check_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n")


# ---- size limits ----------------------------------------------------------------------------


def test_pixel_limit_is_checked_before_decoding(corpus):
    path = corpus["good_jpeg"].path  # 64 x 48 = 3072 pixels
    assert check_image(path, max_pixels=3072) is None
    assert check_image(path, max_pixels=3071) == f"{path} is 64×48 = 3,072 pixels, over the limit of 3,071"
    # header claims 7000x6000 but holds almost no data: a decoder would fail as truncated; we never get there
    assert "42,000,000 pixels" in check_image(corpus["over_limit"].path)
    # raising our limit does not lift Pillow's own hard limit, and the message says which limit applies
    msg = check_image(corpus["bomb"].path, max_pixels=10**9)
    assert msg.endswith(f"is 30000×30000 = 900,000,000 pixels, over the limit of {2 * Image.MAX_IMAGE_PIXELS:,}")
    with pytest.raises(ValueError):
        load_rgb(path, max_pixels=0)


def test_bomb_warning_escalated_to_error_is_still_an_image_error():
    # 10000 x 9000 = 90M pixels: Pillow only *warns*; under `-W error` that warning is raised
    data = bad_inputs.crafted_png(10000, 9000, bit_depth=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_image(data) == "The image data is 10000×9000 = 90,000,000 pixels, over the limit of 40,000,000"


@pytest.mark.parametrize("fmt,size", [("GIF", (20000, 20000)), ("BMP", (20000, 20000)), ("JPEG", (20000, 20000)),
                                      ("WEBP", (16000, 16000))])
def test_bomb_sizes_are_read_from_every_header(fmt, size):
    small = io.BytesIO()
    Image.new("RGB", (16, 16), RED).save(small, fmt)
    data = bytearray(small.getvalue())
    w, h = size
    if fmt == "GIF":
        data[6:10] = w.to_bytes(2, "little") + h.to_bytes(2, "little")
    elif fmt == "BMP":
        data[18:26] = w.to_bytes(4, "little") + h.to_bytes(4, "little", signed=True)
    elif fmt == "JPEG":
        sof = data.index(b"\xff\xc0")
        data[sof + 5: sof + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    else:  # lossy WebP 'VP8 ' frame header
        assert data[12:16] == b"VP8 "
        data[26:30] = w.to_bytes(2, "little") + h.to_bytes(2, "little")
    msg = check_image(bytes(data), name="big")
    assert msg == f"big is {w}×{h} = {w * h:,} pixels, over the limit of 40,000,000", msg


def test_jpeg_scan_limit():
    im = Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", progressive=True, quality=75)
    base = buf.getvalue().count(b"\xff\xda")
    at_limit = bad_inputs.jpeg_scan_bomb(im, images.MAX_JPEG_SCANS - base)
    assert check_image(at_limit) is None
    over = bad_inputs.jpeg_scan_bomb(im, images.MAX_JPEG_SCANS - base + 1)
    assert check_image(over, name="p.jpg") == (
        f"p.jpg is a JPEG with {images.MAX_JPEG_SCANS + 1} scans (more than {images.MAX_JPEG_SCANS}), "
        "which would take too long to decode")


def test_too_small_sides():
    for w, h in [(1, 1), (15, 200), (200, 15)]:
        buf = io.BytesIO()
        Image.new("RGB", (w, h)).save(buf, "PNG")
        assert check_image(buf.getvalue(), name="s.png") == (
            f"s.png is only {w}×{h} pixels; need at least {images.MIN_SIDE} on each side")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG")
    assert check_image(buf.getvalue()) is None
    assert "only 0×16 pixels" in check_image(bad_inputs.crafted_png(0, 16))


# ---- mode conversion (in memory) -----------------------------------------------------------------


def _roundtrip(im: Image.Image, fmt: str, **kw) -> np.ndarray:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return load_rgb(buf.getvalue())


def test_more_modes_through_files():
    ramp = np.linspace(0, 65535, 32).round().astype(np.uint16)
    big_endian = Image.frombytes("I;16B", (32, 1), ramp.astype(">u2").tobytes()).resize((32, 16))
    arr = _roundtrip(big_endian, "TIFF")
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255 and (np.diff(arr[0, :, 0].astype(int)) >= 0).all()
    one_bit = Image.new("1", (16, 16), 0)
    one_bit.paste(1, (8, 0, 16, 16))
    arr = _roundtrip(one_bit, "PNG")
    assert (arr[:, :8] == 0).all() and (arr[:, 8:] == 255).all()
    pal = Image.new("RGB", (16, 16), GREEN).convert("P")
    assert _close(_roundtrip(pal, "PNG")[0, 0], GREEN, 0)
    gif_transparent = Image.new("P", (16, 16), 0)
    gif_transparent.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    gif_transparent.paste(1, (0, 8, 16, 16))
    arr = _roundtrip(gif_transparent, "GIF", transparency=0)
    assert (arr[:8] == 255).all() and _close(arr[12, 4], RED, 0)
    rgb_key = Image.new("RGB", (16, 16), (10, 20, 30))  # PNG tRNS colour key on an RGB image
    arr = _roundtrip(rgb_key, "PNG", transparency=(10, 20, 30))
    assert (arr == 255).all()
    rgba_webp = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    assert (_roundtrip(rgba_webp, "WEBP", lossless=True) == 255).all()


@pytest.mark.parametrize("im,expected", [
    (Image.fromarray(np.full((16, 16), 65535, np.int32)), 255),  # 16-bit data in an I image
    (Image.fromarray(np.full((16, 16), 200, np.int32)), 200),  # 8-bit data in an I image
    (Image.fromarray(np.full((16, 16), 0.5, np.float32)), 128),  # float 0..1
    (Image.fromarray(np.full((16, 16), 77.0, np.float32)), 77),  # float 0..255
])
def test_high_depth_modes(im, expected):
    out = np.asarray(image_modes.to_rgb(im))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and (out == expected).all()


def test_high_depth_stretch_and_nan():
    ramp = np.linspace(-1000, 1000, 256, dtype=np.float32).reshape(16, 16)
    ramp[0, 1] = np.nan
    out = np.asarray(image_modes.to_rgb(Image.fromarray(ramp)))[..., 0]
    assert out.min() == 0 and out.max() == 255
    pa = Image.new("PA", (16, 16))
    pa.putpalette([255, 0, 0] * 256)
    pa.putdata([(0, 0)] * 128 + [(0, 255)] * 128)
    out = np.asarray(image_modes.to_rgb(pa))
    assert (out[:8] == 255).all() and (out[8:] == RED).all()
    for mode in ("YCbCr", "LAB", "HSV", "RGBX", "CMYK", "I;16L", "La", "RGBa"):
        out = np.asarray(image_modes.to_rgb(Image.new(mode, (16, 16))))
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8, mode


# ---- resize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,size", [((48, 64, 3), 32), ((20, 40, 3), 64), ((16, 16, 3), 16), ((100, 7, 3), 1)])
def test_resize_square_shapes(shape, size):
    rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = resize_square(rgb, size)
    _assert_rgb(out)
    assert out.shape == (size, size, 3)
    if shape[:2] == (size, size):
        np.testing.assert_array_equal(out, rgb)
        assert not np.shares_memory(out, rgb)


def test_resize_square_stretches_and_antialiases():
    halves = np.zeros((20, 40, 3), np.uint8)
    halves[:, :20] = RED
    halves[:, 20:] = BLUE
    out = resize_square(halves, 10)
    assert (out[:, :4] == RED).all() and (out[:, 6:] == BLUE).all()  # stretched, not cropped
    checker = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = resize_square(np.repeat(checker[..., None], 3, axis=2), 8)
    assert np.abs(out.astype(int) - 128).max() <= 2  # antialiased: averages, not samples
    view = np.zeros((30, 30, 3), np.uint8)[::2, ::3]  # non-contiguous input
    assert resize_square(view, 16).shape == (16, 16, 3)
    with pytest.raises(ValueError):
        resize_square(np.zeros((8, 8), np.uint8), 4)
    with pytest.raises(ValueError):
        resize_square(np.zeros((8, 8, 3), np.float32), 4)
    with pytest.raises(ValueError):
        resize_square(np.zeros((8, 8, 3), np.uint8), 0)


# ---- no global side effects, no leaks, thread safety -----------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_no_global_state_changed_and_no_leaked_files(corpus):
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    fds = _open_fds()
    for item in corpus.values():
        check_image(item.path)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters)) == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert _open_fds() == fds


def test_concurrent_checks_agree(corpus):
    items = list(corpus.values()) * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda it: check_image(it.path), items))
    for item, result in zip(items, results):
        assert (result is None) == item.ok, (item.path.name, result)


# ---- fuzzing ---------------------------------------------------------------------------------


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(7)
    base = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    seeds = []
    for fmt, kw in [("JPEG", {"quality": 80}), ("JPEG", {"progressive": True}), ("PNG", {}), ("WEBP", {}),
                    ("BMP", {}), ("GIF", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})]:
        buf = io.BytesIO()
        base.save(buf, fmt, **kw)
        seeds.append(buf.getvalue())
    buf = io.BytesIO()
    base.convert("RGBA").save(buf, "PNG")
    seeds.append(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 8
    buf = io.BytesIO()
    base.save(buf, "JPEG", exif=exif)
    seeds.append(buf.getvalue())
    return seeds


SEEDS = _seed_images()


def _decode_or_image_error(data: bytes) -> None:
    try:
        arr = load_rgb(data, max_pixels=1_000_000)
    except ImageError as exc:
        assert str(exc).startswith("The image data ")
        return
    _assert_rgb(arr)
    assert arr.shape[0] * arr.shape[1] <= 1_000_000


FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about damaged metadata it skips
@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(data):
    _decode_or_image_error(data)


@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ
@given(st.sampled_from(range(len(SEEDS))),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzz_damaged_images(seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _decode_or_image_error(bytes(data))

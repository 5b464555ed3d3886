"""Phone photos: HEIC/HEIF (pillow-heif) and AVIF (Pillow) decode through pipeline.images, rotated upright."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from pipeline import data_folders, image_formats, images


def _photo(fmt: str, orientation: int = 6) -> bytes:
    """A 40x80 (H x W) image, left half red, stored with an EXIF orientation, encoded as ``fmt``."""
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, quality=90, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_upright(fmt):
    rgb = images.load_rgb(_photo(fmt), name=f"photo.{fmt.lower()}")
    assert rgb.shape == (80, 40, 3)  # orientation 6 = rotate 90 clockwise: the red half ends on top
    assert rgb[:40].mean(axis=(0, 1))[0] > 200 and rgb[:40].mean(axis=(0, 1))[1] < 40
    assert rgb[40:].mean() < 20


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_truncated_get_a_message(fmt):
    raw = _photo(fmt)
    msg = images.check_image(raw[: len(raw) // 2], name="cut")
    assert msg is not None and msg.startswith("cut is") and "truncated or corrupt" in msg


def test_phone_formats_are_picked_up_by_folder_scans(tmp_path):
    for label in ("real", "fake"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "a.heic").write_bytes(_photo("HEIF"))
        (tmp_path / label / "b.avif").write_bytes(_photo("AVIF"))
    assert {".heic", ".heif", ".avif"} <= set(image_formats.SUPPORTED_EXTENSIONS)
    assert {"heic", "heif", "avif"} <= set(image_formats.UPLOAD_TYPES)
    rows, skipped = data_folders.list_files(data_folders.DatasetFolder("phones", tmp_path, False))
    assert skipped.empty
    assert sorted(Path(p).name for p in rows["path"]) == ["a.heic", "a.heic", "b.avif", "b.avif"]
    assert all(images.check_image(p) is None for p in rows["path"])


@pytest.mark.parametrize("fmt,name", [("HEIF", "HEIC/HEIF"), ("AVIF", "AVIF")])
def test_forensic_bench_reads_phone_formats(fmt, name):
    from pipeline import forensics

    r = forensics.inspect_image(_photo(fmt), name=f"photo.{fmt.lower()}")
    assert r.format == name and (r.height, r.width) == (80, 40) and r.jpeg is None
    assert r.views["ela"].shape == (80, 40, 3) and r.metadata.camera == "TestCam"

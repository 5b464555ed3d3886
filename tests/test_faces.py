"""pipeline.faces: MTCNN face detection and margin crops."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline import faces

PASTES = [((60, 50), 150), ((400, 200), 160)]  # (x, y), side


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area, boxes as (x, y, w, h)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def test_two_pasted_faces_are_found(shared_data):
    files = sorted((shared_data / "faces140k" / "real").glob("*.jpg"))[:2]
    if len(files) < 2:
        pytest.skip("fewer than 2 real faces in faces140k/real")
    canvas = np.full((420, 640, 3), 210, np.uint8)
    for f, ((x, y), side) in zip(files, PASTES):
        canvas[y:y + side, x:x + side] = np.asarray(Image.open(f).convert("RGB").resize((side, side)))
    found = faces.detect_faces(canvas)
    assert len(found) == 2
    for (x, y), side in PASTES:
        pasted = (x, y, side, side)
        match = max(found, key=lambda f: _overlap(f.box, pasted))
        assert _overlap(match.box, pasted) > 0.9  # the detected face lies inside the pasted photo
        assert match.confidence >= faces.DEFAULT_MIN_CONFIDENCE
        cx, cy, cw, ch = match.crop_box
        assert cw == ch and match.crop.shape == (ch, cw, 3)  # squared
        assert cw > max(match.box[2], match.box[3])  # with a margin
    drawn = faces.draw_boxes(canvas, found)
    assert drawn.shape == canvas.shape and not np.array_equal(drawn, canvas)


@pytest.mark.parametrize("kind", ["noise", "gradient"])
def test_faceless_images_give_no_face(kind):
    rng = np.random.default_rng(0)
    if kind == "noise":
        img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:240, 0:320]
        img = np.stack([xx * 255 // 319, yy * 255 // 239, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    assert faces.detect_faces(img) == []
    assert faces.detect_faces(img[:8, :8]) == []  # too small to hold a face


def test_square_box_margin_and_clipping():
    assert faces.square_box((40, 40, 20, 20), (100, 100), 0.2) == (36, 36, 28, 28)
    assert faces.square_box((40, 30, 20, 40), (100, 100), 0.0) == (30, 30, 40, 40)  # squared on the larger side
    x, y, w, h = faces.square_box((0, 0, 30, 30), (100, 100), 0.5)  # at a corner: shifted inward, still square
    assert (x, y) == (0, 0) and w == h == 60
    assert faces.square_box((10, 10, 80, 80), (60, 100), 0.5) == (20, 0, 60, 60)  # limited by the image
    with pytest.raises(ValueError):
        faces.square_box((0, 0, 1, 1), (10, 10), -0.1)


@pytest.mark.parametrize("kind", ["noise", "gradient", "flat"])
def test_the_padded_retry_finds_no_face_where_there_is_none(kind):
    rng = np.random.default_rng(1)
    if kind == "noise":
        img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    elif kind == "gradient":
        yy, xx = np.mgrid[0:224, 0:224]
        img = np.stack([xx * 255 // 223, yy * 255 // 223, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    else:
        img = np.full((224, 224, 3), 90, np.uint8)
    assert faces.detect_faces(img, retry_padded=True) == []


def test_a_face_filling_a_tight_crop_is_found_by_the_padded_retry(shared_data):
    """DFDC's tight face crops: MTCNN found no face in 28 of the 600 test crops, as when a user uploads a
    cropped face. Searching the picture padded by its own edge pixels finds this one; the box is given in
    the picture's own pixels, and the check path (which asks for the retry) finds it too."""
    from pipeline import checking, images

    path = shared_data / "dfdc" / "fake" / "canzjpemnu.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is not in ../shared/data (a user's clone without the shared data)")
    rgb = images.load_rgb(path)
    assert faces.detect_faces(rgb) == []
    [face] = faces.detect_faces(rgb, retry_padded=True)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= rgb.shape[1] and y + h <= rgb.shape[0] and w * h > 0.5 * rgb.size / 3
    assert face.confidence >= faces.DEFAULT_MIN_CONFIDENCE and face.crop.shape[:2] == (face.crop_box[3], face.crop_box[2])
    assert all(0 <= kx < rgb.shape[1] + 1 and 0 <= ky < rgb.shape[0] + 1 for kx, ky in (face.keypoints or {}).values())
    checked = checking.check_image(path.name, rgb, {}, crop_faces=True)
    assert len(checked.detected) == 1 and checked.note is None

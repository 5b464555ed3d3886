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

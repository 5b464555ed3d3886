"""Face detection for arbitrary photos: find the faces, crop each with a margin, square it.

The detectors of the zoo were trained on tight face crops, so a holiday photo or a profile picture
with background is cropped to its faces before scoring. Detection uses the ``mtcnn`` package
(PyPI; MTCNN on TensorFlow, its weights ship inside the package, nothing is downloaded).

``detect_faces(rgb)`` returns the faces, most confident first; an image without a face gives an
empty list and the caller decides (the dashboard offers to score the whole image).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

DEFAULT_MIN_CONFIDENCE = 0.9
DEFAULT_MARGIN = 0.2
MIN_FACE_PX = 20  # MTCNN's smallest face (its ``min_face_size``)

_DETECTOR = None
_LOCK = threading.Lock()


@dataclass
class Face:
    """A detected face. ``box``: (x, y, w, h) in pixels of the photo, as detected (tight).
    ``crop_box``: (x, y, w, h) of ``crop``, the box widened by the margin, squared and clipped to the photo.
    """

    box: tuple[int, int, int, int]
    confidence: float
    crop: np.ndarray
    crop_box: tuple[int, int, int, int]
    keypoints: dict | None = None


def detector():
    """The process-wide MTCNN detector (built on first use, about 1-2 s plus TensorFlow's import)."""
    global _DETECTOR
    with _LOCK:
        if _DETECTOR is None:
            from mtcnn import MTCNN

            _DETECTOR = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
        return _DETECTOR


def square_box(box, shape, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """(x, y, w, h) widened by ``margin`` of its larger side on every side, made square around its centre
    and clipped to an image of ``shape`` (H, W, ...). Near an edge the square is shifted inward; it is
    only cut (no longer square) when the image itself is too small."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, w, h = (float(v) for v in box)
    H, W = int(shape[0]), int(shape[1])
    side = max(w, h) * (1 + 2 * margin)
    side = max(1.0, min(side, float(min(H, W))))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0.0), W - side)))
    y0 = int(round(min(max(cy - side / 2, 0.0), H - side)))
    s = int(round(side))
    return x0, y0, min(s, W - x0), min(s, H - y0)


PAD_RETRY = 0.15  # share of each side added around the picture for the second search of a tight crop


def detect_faces(rgb: np.ndarray, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 margin: float = DEFAULT_MARGIN, min_face_size: int = MIN_FACE_PX,
                 retry_padded: bool = False) -> list[Face]:
    """Faces in an (H, W, 3) uint8 RGB image, most confident first; ``[]`` when there is none.

    ``retry_padded``: when nothing is found, search once more in the picture padded by
    :data:`PAD_RETRY` of its height and width on each side (its edge pixels repeated). MTCNN misses
    many faces that fill the frame and touch its border, as in tight face crops: of the 600 DFDC test
    crops it found no face in 28, and 13 of those with the padding (the check path asks for it). Boxes are given in the original
    picture, clipped to it; a face whose centre falls in the padding is dropped."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {rgb.shape}")
    if min(rgb.shape[:2]) < 12:
        return []
    found = _mtcnn(rgb, min_face_size)
    shift = (0, 0)
    if retry_padded and not any(float(f.get("confidence", 0.0)) >= min_confidence for f in found):
        py, px = int(round(rgb.shape[0] * PAD_RETRY)), int(round(rgb.shape[1] * PAD_RETRY))
        found = _mtcnn(np.pad(rgb, ((py, py), (px, px), (0, 0)), mode="edge"), min_face_size)
        shift = (px, py)
    H, W = rgb.shape[:2]
    faces = []
    for f in found:
        conf = float(f.get("confidence", 0.0))
        x, y, w, h = (int(round(v)) for v in f["box"])
        if shift != (0, 0):  # found in the padded picture: back to this one's pixels, clipped to it
            x, y = x - shift[0], y - shift[1]
            if not (0 <= x + w / 2 < W and 0 <= y + h / 2 < H):
                continue  # centred in the padding: not a face of this picture
            x0, y0 = max(0, x), max(0, y)
            x, y, w, h = x0, y0, min(W, x + w) - x0, min(H, y + h) - y0
        if conf < min_confidence or w <= 0 or h <= 0:
            continue
        cx, cy, cw, ch = square_box((x, y, w, h), rgb.shape, margin)
        crop = np.ascontiguousarray(rgb[cy:cy + ch, cx:cx + cw])
        if crop.size == 0:
            continue
        kp = {k: (int(v[0]) - shift[0], int(v[1]) - shift[1]) for k, v in (f.get("keypoints") or {}).items()}
        faces.append(Face((x, y, w, h), conf, crop, (cx, cy, cw, ch), kp or None))
    faces.sort(key=lambda face: -face.confidence)
    return faces


def _mtcnn(rgb: np.ndarray, min_face_size: int) -> list[dict]:
    """MTCNN's raw detections (box, confidence, keypoints) of an (H, W, 3) uint8 image."""
    det = detector()
    with _LOCK:  # MTCNN keeps per-call state in its stages: one image at a time
        return list(det.detect_faces(rgb, min_face_size=int(min_face_size)) or [])


def draw_boxes(rgb: np.ndarray, faces: list[Face], labels: list[str] | None = None,
               colors: list[str] | None = None, width: int | None = None) -> np.ndarray:
    """The photo with each face's crop box drawn and labelled (default: ``face 1``, ``face 2``, ...)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    draw = ImageDraw.Draw(im)
    width = width or max(2, min(im.size) // 150)
    font = ImageFont.load_default(size=max(12, min(im.size) // 30))
    for i, face in enumerate(faces):
        x, y, w, h = face.crop_box
        colour = (colors[i] if colors and i < len(colors) else "#FFD400")
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=width)
        text = labels[i] if labels and i < len(labels) else f"face {i + 1}"
        tx, ty = x + width, max(0, y - font.size - 2 * width) if y > font.size + 2 * width else y + width
        bbox = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle(bbox, fill=colour)
        draw.text((tx, ty), text, fill="black", font=font)
    return np.asarray(im)


BAR_DARK, BAR_LIGHT = 24, 235  # a letterbox bar is near black or near white (0-255, every channel)
BAR_MIN_SHARE = 0.03  # and at least this share of the side: a thin uniform edge is part of the photo


def content_box(rgb: np.ndarray, tolerance: int = 10, min_keep: float = 0.3) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the photo without letterbox or pillarbox bars: stripes along the edges whose
    every pixel lies within ``tolerance`` (0-255) of the stripe's corner colour, that colour near black
    (<= 24) or near white (>= 235), the stripe at least 3% of the side (a plain wall or sky at the
    edge of a photo is not a bar). Keeps at least ``min_keep`` of each side."""
    a = np.asarray(rgb, dtype=np.int16)
    H, W = a.shape[:2]

    def uniform(line: np.ndarray, colour: np.ndarray) -> bool:
        return bool(np.abs(line - colour).max() <= tolerance)

    def bar_colour(colour: np.ndarray) -> bool:
        return bool((colour <= BAR_DARK).all() or (colour >= BAR_LIGHT).all())

    def trim(n: int, side: int) -> int:
        return n if n >= BAR_MIN_SHARE * side else 0

    top, bottom, left, right = 0, H, 0, W
    corner = a[0, 0]
    while bar_colour(corner) and top < H * (1 - min_keep) and uniform(a[top], corner):
        top += 1
    top = trim(top, H)
    corner = a[-1, -1]
    while bar_colour(corner) and bottom > top + H * min_keep and uniform(a[bottom - 1], corner):
        bottom -= 1
    bottom = H - trim(H - bottom, H)
    corner = a[top, 0]
    while bar_colour(corner) and left < W * (1 - min_keep) and uniform(a[top:bottom, left], corner):
        left += 1
    left = trim(left, W)
    corner = a[bottom - 1, -1]
    while bar_colour(corner) and right > left + W * min_keep and uniform(a[top:bottom, right - 1], corner):
        right -= 1
    right = W - trim(W - right, W)
    return left, top, right - left, bottom - top


WHOLE_SHARE = 0.85  # a framed crop this close to the photo's shorter side becomes the whole photo


def _clearance(cx: float, cy: float, other: tuple[int, int, int, int]) -> float:
    """Half-side of the largest square centred at (cx, cy) that does not overlap the box ``other``."""
    x, y, w, h = other
    dx = max(x - cx, cx - (x + w), 0.0)
    dy = max(y - cy, cy - (y + h), 0.0)
    return max(dx, dy)


def framed_box(box, shape, *, face_fraction: float, content: tuple[int, int, int, int] | None = None,
               others: list | None = None, whole: bool = True) -> tuple[int, int, int, int]:
    """The square crop around a tight face ``box`` (x, y, w, h) that frames it as the training images
    framed their faces: the face's larger side is ``face_fraction`` of the crop's side (measured on
    the run's training images by :func:`face_fraction_of`). The square stays inside ``content`` (the
    photo without letterbox bars, :func:`content_box`), and is made smaller rather than take in a
    neighbouring face (``others``: their tight boxes). Never smaller than the face itself.

    A square photo (sides within 10%) whose framed crop would take at least :data:`WHOLE_SHARE` of it
    is framed like the (square) training photos and is scored whole, bars and neighbours and all, as
    in training: lfw_faceswap's training photos often show a second person, and cropping such a photo
    to keep the neighbour out left 5 of the 7 such test photos "can't tell" (run best-288c733eb10c),
    against 10% of the photos scored whole. ``whole=False`` never gives the whole photo (for every face
    but a photo's largest: :func:`frame_faces`)."""
    x, y, w, h = (float(v) for v in box)
    H, W = int(shape[0]), int(shape[1])
    cx, cy = x + w / 2, y + h / 2
    face_side = max(w, h)
    side = max(face_side / max(min(face_fraction, 1.0), 0.05), face_side)
    if whole and max(H, W) <= 1.1 * min(H, W) and side >= WHOLE_SHARE * min(H, W):
        return 0, 0, W, H  # the whole photo: pixel for pixel what the detectors saw in training
    for other in others or []:
        side = min(side, 2 * _clearance(cx, cy, other))
    side = max(side, face_side)
    cx0, cy0, cw, ch = content if content is not None else (0, 0, W, H)
    side = max(1.0, min(side, float(min(cw, ch))))
    x0 = int(round(min(max(cx - side / 2, cx0), cx0 + cw - side)))
    y0 = int(round(min(max(cy - side / 2, cy0), cy0 + ch - side)))
    s = int(round(side))
    return x0, y0, min(s, cx0 + cw - x0), min(s, cy0 + ch - y0)


NEIGHBOUR_SIZE = 0.6  # a face at least this large (relative to the one cropped) is a neighbour to keep out


def frame_faces(rgb: np.ndarray, faces: list[Face], face_fraction: float) -> list[Face]:
    """``faces`` re-cropped with :func:`framed_box` (training framing: a square photo framed like the
    training photos is scored whole for its largest face, the first of equals; a crop takes in no
    letterbox bars and no neighbouring face of comparable size, one at least :data:`NEIGHBOUR_SIZE` of
    its side, while smaller faces in the background are part of the scene, as in the training photos).
    Two faces never get the same whole photo (two identical entries with one score). ``box``,
    ``confidence`` and ``keypoints`` are kept."""
    content = content_box(rgb)
    sides = [max(f.box[2], f.box[3]) for f in faces]
    largest = int(np.argmax(sides)) if faces else -1
    out = []
    for i, face in enumerate(faces):
        side = sides[i]
        others = [f.box for j, f in enumerate(faces)  # a much smaller face in the background stays in the
                  if j != i and sides[j] >= NEIGHBOUR_SIZE * side]  # crop, as in training photos
        cb = framed_box(face.box, rgb.shape, face_fraction=face_fraction, content=content, others=others,
                        whole=i == largest)
        crop = np.ascontiguousarray(rgb[cb[1]:cb[1] + cb[3], cb[0]:cb[0] + cb[2]])
        out.append(Face(face.box, face.confidence, crop, cb, face.keypoints))
    return out


def face_fraction_of(images: list[np.ndarray], min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                     percentile: float = 50) -> float | None:
    """The ``percentile`` (default the median) over ``images`` (training images of a run) of the share
    of an image's shorter side that its most confident face's larger side takes; None when no face is
    found in any of them."""
    ratios = []
    for rgb in images:
        found = detect_faces(rgb, min_confidence=min_confidence)
        if found:
            x, y, w, h = found[0].box
            ratios.append(max(w, h) / float(min(rgb.shape[:2])))
    return float(np.percentile(ratios, percentile)) if ratios else None

"""Occlusion sensitivity: which regions of an image move a detector's p(fake), for any detector.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks" (ECCV 2014): slide a grey patch over
the image and record how much the score drops. It needs only :meth:`~pipeline.detectors.Detector.predict_proba`,
so it explains detectors without a gradient graph (the frozen CLIP encoder run by onnxruntime, the combined
models) at a cost set by the grid: ``grid ** 2 + 1`` scores (7 x 7: 50 images, about 10 s for CLIP on 2 cores).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREY = 128  # the patch colour (0-255): neither dark nor bright


@dataclass(frozen=True)
class OcclusionMap:
    """``heatmap``: (H, W) float32 in [-1, 1], the drop of p(fake) when that region is covered, scaled by the
    largest absolute drop (positive = the region pushed toward "fake"); ``p_fake``: the unoccluded score;
    ``max_drop``: the largest drop in probability units; ``n_scored``: images scored."""

    heatmap: np.ndarray
    p_fake: float
    max_drop: float
    n_scored: int


def occlusion_map(detector, rgb: np.ndarray, grid: int = 7, patch: float = 1.5, batch: int = 16) -> OcclusionMap:
    """Occlusion sensitivity of ``detector`` on one (H, W, 3) uint8 image.

    The image is covered by a ``grid`` x ``grid`` lattice of grey squares (side ``patch`` cells, so neighbours
    overlap), one at a time; each cell's value is the mean drop of p(fake) over the patches covering it.
    Raises ValueError for a non-RGB image or a grid below 2."""
    from pipeline.images import check_rgb

    rgb = check_rgb(rgb)
    if grid < 2:
        raise ValueError(f"grid must be at least 2, got {grid}")
    h, w = rgb.shape[:2]
    cy, cx = h / grid, w / grid
    half_y, half_x = cy * patch / 2, cx * patch / 2
    boxes, occluded = [], []
    for i in range(grid):
        for j in range(grid):
            y0, y1 = int(max(0, (i + 0.5) * cy - half_y)), int(min(h, np.ceil((i + 0.5) * cy + half_y)))
            x0, x1 = int(max(0, (j + 0.5) * cx - half_x)), int(min(w, np.ceil((j + 0.5) * cx + half_x)))
            im = rgb.copy()
            im[y0:y1, x0:x1] = GREY
            boxes.append((y0, y1, x0, x1))
            occluded.append(im)
    base = float(np.asarray(detector.predict_proba([rgb]))[0])
    scores = np.concatenate([np.asarray(detector.predict_proba(occluded[k:k + batch]), dtype=np.float64)
                             for k in range(0, len(occluded), batch)])
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    for (y0, y1, x0, x1), s in zip(boxes, scores):
        total[y0:y1, x0:x1] += base - s
        count[y0:y1, x0:x1] += 1
    drop = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    peak = float(np.abs(drop).max())
    heat = (drop / peak if peak > 0 else drop).astype(np.float32)
    return OcclusionMap(heatmap=heat, p_fake=base, max_drop=peak, n_scored=len(occluded) + 1)

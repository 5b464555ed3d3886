"""Occlusion sensitivity for detectors without gradients (pipeline.occlusion)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.occlusion import occlusion_map


class TopLeftBrightness:
    """p(fake) = mean brightness of the top-left quarter: covering it with grey must move the score."""

    name, kind, threshold, image_size = "top_left", "test", 0.5, None

    def predict_proba(self, rgb_images):
        return np.array([im[: im.shape[0] // 2, : im.shape[1] // 2].mean() / 255.0 for im in rgb_images])


def test_the_map_points_at_the_region_the_score_depends_on():
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[:32, :48] = 255  # bright where the detector looks: covering it with grey lowers p(fake)
    res = occlusion_map(TopLeftBrightness(), rgb, grid=4)
    assert res.heatmap.shape == (64, 96) and res.n_scored == 17 and res.p_fake == pytest.approx(1.0)
    assert res.heatmap[:24, :36].mean() > 0.5 and abs(res.heatmap[48:, 72:]).max() < 0.1
    assert res.heatmap.max() == pytest.approx(1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        occlusion_map(TopLeftBrightness(), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="grid"):
        occlusion_map(TopLeftBrightness(), np.zeros((8, 8, 3), np.uint8), grid=1)

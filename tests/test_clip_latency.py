"""A CLIP detector's measured latency is that of a new image through the encoder and its own head, even when
another head of the run has just encoded the same validation images (review6)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline import clip
from pipeline.detectors import clip_linear


class CountingEncoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        self.calls += 1
        return (pixel_values.reshape(-1)[::290][:512] + 3.0).astype(np.float32)


class CountingHead:
    def __init__(self):
        self.rows = 0

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        self.rows += len(emb)
        return np.tile([0.5, 0.5], (len(emb), 1))


def test_latency_encodes_the_image_even_when_the_memory_of_recent_images_holds_it(monkeypatch, tmp_path):
    enc = CountingEncoder()
    monkeypatch.setattr(clip, "default_encoder", lambda: enc)
    monkeypatch.setattr(clip, "_RECENT", type(clip._RECENT)())
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    path = tmp_path / "face.png"
    Image.fromarray(rgb).save(path)
    clip.embed([rgb])  # the first head of a run encodes the validation sample: it is now remembered
    assert enc.calls == 1
    clip_linear._latency_ms([str(path)] * 3, max_pixels=10_000_000)
    assert enc.calls == 4  # each timed call encoded the image: not the memo's 0.2 ms answer
    head = CountingHead()
    latency = clip_linear._latency_ms([str(path)] * 3, max_pixels=10_000_000, head=head)
    assert enc.calls == 7 and head.rows == 3  # and the head's own cost (an RBF SVM's is not nil) is inside the time
    assert latency["batch1_p50"] > 0 and latency["batch64_p50"] == round(latency["batch1_p50"] * 64, 3)
    assert 0 < latency["clip_encoder_p50"] <= latency["batch1_p50"]


def test_a_combined_model_counts_the_shared_clip_encoder_once():
    from pipeline.detectors.combined import member_latency

    clip_member = {"latency_ms": {"batch1_p50": 150.0, "per_image_batch64": 150.0, "batch64_p50": 9600.0,
                                  "clip_encoder_p50": 140.0}}
    keras_member = {"latency_ms": {"batch1_p50": 16.0, "per_image_batch64": 2.0, "batch64_p50": 128.0}}
    got = member_latency([clip_member, clip_member, keras_member])
    assert got == {"batch1_p50": 176.0, "batch64_p50": 9600 * 2 + 128 - 64 * 140, "per_image_batch64": 162.0}
    # members written before the encoder's share was recorded: the plain sum, as the run's stored numbers
    old = {"latency_ms": {k: v for k, v in clip_member["latency_ms"].items() if k != "clip_encoder_p50"}}
    assert member_latency([old, old, keras_member]) == {"batch1_p50": 316.0, "batch64_p50": 19328.0,
                                                        "per_image_batch64": 302.0}
    assert member_latency([old, {"latency_ms": {}}]) == {}

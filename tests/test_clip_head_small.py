"""An SVM CLIP head on very few images (a specialist's small data set, `train --max-images-per-class 2`, one data
set's share in the generalisation matrix): a clear message, or the matrix row left out as a logistic head's is
(review6)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import clip_head
from pipeline.detectors import clip_linear


def _emb(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 8)).astype(np.float32)


def test_an_svm_head_on_one_image_of_a_class_says_what_to_do():
    y = np.array([0, 0, 0, 0, 0, 1])
    clip_head.fit_head(_emb(6), y)  # the logistic head fits
    with pytest.raises(ValueError, match="at least 2 real and 2 fake images.*params.head"):
        clip_head.fit_head(_emb(6), y, head="svm")


def test_an_svm_head_counts_images_not_their_augmented_copies():
    y, groups = np.tile([0, 0, 0, 0, 0, 1], 2), np.tile(np.arange(6), 2)  # one fake image and its copy
    with pytest.raises(ValueError, match=r"got 5 real, 1 fake"):
        clip_head.fit_head(_emb(12), y, head="svm", groups=groups)
    y, groups = np.tile([0, 0, 0, 1, 1, 1], 2), np.tile(np.arange(6), 2)
    head = clip_head.fit_head(_emb(12), y, head="svm", groups=groups)
    assert head.predict_proba(_emb(3, 1)).shape == (3, 2)


def test_the_generalisation_matrix_leaves_out_a_data_set_an_svm_head_cannot_fit(monkeypatch, tmp_path):
    """per_dataset_rows skips a data set whose training sample lacks a class (both heads) or, for the SVM head, has
    one image of a class, instead of failing the whole experiment."""
    rows = ([("a", "train", y) for y in (0, 0, 0, 1, 1, 1)] + [("b", "train", y) for y in (0, 0, 0, 1)]
            + [(d, s, y) for d in "ab" for s in ("val", "test") for y in (0, 1, 0, 1)])
    manifest = pd.DataFrame(rows, columns=["dataset", "split", "y"]).assign(
        path=[f"/x/{i}.png" for i in range(len(rows))], label=lambda m: np.where(m["y"] == 1, "fake", "real"))
    monkeypatch.setattr(clip_linear, "embed_rows", lambda manifest, rows, *a, **k: _emb(len(rows), 2))
    cfg = SimpleNamespace(seed=0, artifacts_dir=str(tmp_path), max_image_pixels=10**7, threshold_rule="youden")
    for head, expected in (("logistic", ["a", "b"]), ("svm", ["a"])):
        spec = SimpleNamespace(name="clip", max_train_images=0, params={"head": head})
        out = clip_linear.per_dataset_rows(cfg, spec, manifest)
        assert [d for d, *_ in out] == expected
        assert all(p.shape == (8,) for _, p, *_ in out)

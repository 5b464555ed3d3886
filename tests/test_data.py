"""Data ingestion: layouts, labels, manifest, dedup across splits, unreadable files, splitting."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_labelled_folder, make_split_folder, write_images
from pipeline import config, config_load, data, data_folders


def cfg_for(tmp_path: Path, *paths, **kw) -> config.RunConfig:
    return config_load.from_dict({"name": "t", "data": [str(p) for p in paths], "artifacts_dir": str(tmp_path / "art"),
                                  "models": [{"name": "baseline_cnn"}], **kw})


def test_real_fake_layout_is_one_dataset_named_after_the_folder(tmp_path):
    root = make_labelled_folder(tmp_path / "mine", n_per_class=10)
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root))
    assert set(manifest["dataset"]) == {"mine"}
    assert manifest.groupby("label").size().to_dict() == {"fake": 10, "real": 10}
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert (manifest["y"] == (manifest["label"] == "fake")).all()
    assert skipped.empty
    assert list(manifest.columns) == data.MANIFEST_COLUMNS
    assert manifest["sha256"].str.len().eq(64).all() and (manifest["size_bytes"] > 0).all()


@pytest.mark.parametrize("real_name,fake_name", [("REAL", "Fake"), ("training_real", "training_fake"),
                                                 ("real", "ai"), ("real", "generated"), ("real", "Synthetic")])
def test_label_folder_aliases_case_insensitive(tmp_path, real_name, fake_name):
    root = make_labelled_folder(tmp_path / "d", n_per_class=6, real_name=real_name, fake_name=fake_name)
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    assert manifest.groupby("label").size().to_dict() == {"fake": 6, "real": 6}


def test_kaggle_layout_keeps_its_given_split(tmp_path):
    root = make_split_folder(tmp_path / "real_vs_fake", counts=(8, 3, 4))
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", "fake"): 8, ("train", "real"): 8, ("val", "fake"): 3, ("val", "real"): 3,
                      ("test", "fake"): 4, ("test", "real"): 4}
    assert (manifest["given_split"] == manifest["split"]).all()


def test_root_of_several_datasets(synthetic_data, tmp_path):
    manifest, _ = data.build_manifest(cfg_for(tmp_path, synthetic_data))
    assert set(manifest["dataset"]) == {"alpha", "beta"}


def test_formats_jpeg_webp_bmp_are_ingested(tmp_path):
    for seed, fmt in enumerate(("JPEG", "WEBP", "BMP")):
        write_images(tmp_path / "d" / "real", "real", 3, seed=10 * seed, fmt=fmt)
        write_images(tmp_path / "d" / "fake", "fake", 3, seed=10 * seed + 1, fmt=fmt)
    manifest, _ = data.build_manifest(cfg_for(tmp_path, tmp_path / "d"))
    assert len(manifest) == 18
    x = data.load_arrays(manifest, 24, None)
    assert x.shape == (18, 24, 24, 3) and x.dtype.name == "uint8"


def test_identical_files_never_straddle_a_split(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=20)
    originals = sorted((root / "real").iterdir())[:5]
    for i, src in enumerate(originals):  # five exact copies under other names
        shutil.copy(src, root / "real" / f"copy_{i}.png")
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root))
    assert manifest["sha256"].is_unique
    assert len(manifest) == 40
    assert skipped["reason"].str.contains("duplicate of").sum() == 5


def test_same_image_under_both_labels_is_dropped(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=10)
    src = sorted((root / "real").iterdir())[0]
    shutil.copy(src, root / "fake" / "mislabelled.png")
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root))
    assert src.name not in set(manifest["path"].map(lambda p: Path(p).name))
    assert skipped["reason"].str.contains("both real and fake").sum() == 2


def test_unreadable_files_are_listed_and_skipped(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=10)
    (root / "real" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "fake" / "empty.png").write_bytes(b"")
    (root / "fake" / "notes.txt").write_text("hello")
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root))
    assert len(manifest) == 20
    reasons = dict(zip(skipped["path"].map(lambda p: Path(p).name), skipped["reason"]))
    assert set(reasons) == {"broken.jpg", "empty.png", "notes.txt"}
    assert "empty" in reasons["empty.png"] and "not a supported image type" in reasons["notes.txt"]
    assert data.summarize(manifest, skipped)["n_skipped"] == 3


def test_split_is_stratified_deterministic_and_order_independent(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=40)
    a, _ = data.build_manifest(cfg_for(tmp_path, root, seed=3))
    b, _ = data.build_manifest(cfg_for(tmp_path, root, seed=3))
    pd.testing.assert_frame_equal(a, b)
    per = a.groupby(["label", "split"]).size().unstack()
    assert per.loc["real"].to_dict() == {"test": 6, "train": 28, "val": 6}
    assert per.loc["fake"].to_dict() == per.loc["real"].to_dict()
    c, _ = data.build_manifest(cfg_for(tmp_path, root, seed=4))
    assert not (a.set_index("sha256")["split"] == c.set_index("sha256").loc[a["sha256"], "split"]).all()


def test_cap_per_class(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=30)
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root, max_images_per_class=12))
    assert manifest.groupby("label").size().to_dict() == {"fake": 12, "real": 12}


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(data_folders.DataError, match="does not exist.*--data"):
        data.build_manifest(cfg_for(tmp_path, tmp_path / "nowhere"))


def test_folder_without_labels_lists_what_it_found(tmp_path):
    (tmp_path / "photos" / "holiday").mkdir(parents=True)
    with pytest.raises(data_folders.DataError, match="no labelled images.*holiday"):
        data.build_manifest(cfg_for(tmp_path, tmp_path / "photos"))


def test_empty_class_is_a_clear_error(tmp_path):
    write_images(tmp_path / "d" / "real", "real", 10, seed=1)
    (tmp_path / "d" / "fake").mkdir()
    with pytest.raises(data_folders.DataError, match="no fake images"):
        data.build_manifest(cfg_for(tmp_path, tmp_path / "d"))


def test_no_data_configured(tmp_path):
    with pytest.raises(data_folders.DataError, match="no data configured"):
        data.build_manifest(cfg_for(tmp_path))


def test_decoded_array_cache_is_reused(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=5)
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    cache = tmp_path / "cache"
    cache.mkdir()
    x1 = data.load_arrays(manifest, 16, cache)
    files = list(cache.glob("images_16px_*.npy"))
    assert len(files) == 1
    x2 = data.load_arrays(manifest, 16, cache)
    assert (x1 == x2).all()


def test_shared_data_layout(shared_data, tmp_path):
    """The real sets are found by name; every file is either in the manifest once or skipped."""
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, shared_data, max_images_per_class=0))
    expected = {p.name for p in shared_data.iterdir() if (p / "real").is_dir()}
    assert {"faces140k", "ciplab", "lfw_faceswap"} <= expected
    assert set(manifest["dataset"]) == expected
    assert manifest["sha256"].is_unique
    on_disk = sum(1 for p in shared_data.glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(manifest) + len(skipped) == on_disk

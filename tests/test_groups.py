"""Group-aware split: a dataset's groups.csv keeps each group (one video's frames, a real video and
the fakes made from it) on one side of the split; without groups.csv nothing changes."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_labelled_folder, make_split_folder
from pipeline import artifacts, config, config_load, data, data_folders, results, splits

SHARED_DFDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dfdc"


def cfg_for(tmp_path: Path, *paths, seed: int = 0, **kw) -> config.RunConfig:
    return config_load.from_dict({"name": "t", "data": [str(p) for p in paths], "artifacts_dir": str(tmp_path / "art"),
                                  "models": [{"name": "baseline_cnn"}], "seed": seed, **kw})


def make_grouped_folder(root: Path, n_groups: int = 30, seed: int = 0) -> Path:
    """``n_groups`` "videos", each with 2-5 real and 2-5 fake frames (distinct tiny PNGs), and a groups.csv."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        for label in ("real", "fake"):
            for k in range(int(rng.integers(2, 6))):
                rel = f"{label}/v{g:02d}_{label}_{k}.png"
                (root / label).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / rel)
                rows.append({"file": rel, "group": f"video_{g:02d}"})
    pd.DataFrame(rows).to_csv(root / "groups.csv", index=False)
    return root


def old_assign_splits(files: pd.DataFrame, fractions, seed: int) -> pd.Series:
    """The split of the code before groups existed (verbatim), the reference for "nothing changes"."""
    split = files["given_split"].copy()
    for _, group in files[files["given_split"].isna()].groupby(["dataset", "label"], sort=True):
        order = group.sort_values("sha256").index.to_numpy()
        order = order[np.random.default_rng(seed).permutation(len(order))]
        n = len(order)
        n_train = int(round(n * fractions[0]))
        n_val = int(round(n * fractions[1]))
        if n >= 3:
            n_train = min(max(n_train, 1), n - 2)
            n_val = min(max(n_val, 1), n - n_train - 1)
        split.loc[order[:n_train]] = "train"
        split.loc[order[n_train:n_train + n_val]] = "val"
        split.loc[order[n_train + n_val:]] = "test"
    return split


# ----- the grouped split

@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_group_on_two_sides_and_classes_stay_balanced(tmp_path, seed):
    root = make_grouped_folder(tmp_path / "vids", n_groups=40, seed=3)
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root, seed=seed))
    assert skipped.empty
    assert manifest["group"].str.startswith("video_").all()
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert set(manifest["split"]) == {"train", "val", "test"}
    share = manifest.groupby(["label", "split"]).size() / manifest.groupby("label").size()
    for label in ("real", "fake"):
        assert share[label]["train"] == pytest.approx(0.70, abs=0.07)
        assert share[label]["val"] == pytest.approx(0.15, abs=0.07)
        assert share[label]["test"] == pytest.approx(0.15, abs=0.07)


def test_grouped_split_is_deterministic_and_follows_the_seed(tmp_path):
    root = make_grouped_folder(tmp_path / "vids", n_groups=30, seed=4)
    first, _ = data.build_manifest(cfg_for(tmp_path, root, seed=5))
    again, _ = data.build_manifest(cfg_for(tmp_path, root, seed=5))
    other, _ = data.build_manifest(cfg_for(tmp_path, root, seed=6))
    assert first.equals(again)
    assert artifacts.manifest_hash(first) == artifacts.manifest_hash(again)
    assert not first["split"].equals(other["split"])


def test_grouped_split_ignores_row_order_and_group_names(tmp_path):
    files = pd.DataFrame({
        "dataset": "d", "label": ["real", "fake"] * 30, "given_split": None,
        "sha256": [f"{i:064x}" for i in range(60)], "group": [f"g{i // 4}" for i in range(60)]})
    base = splits.assign_splits(files, (0.7, 0.15, 0.15), 3)["split"]
    shuffled = splits.assign_splits(files.sample(frac=1, random_state=1), (0.7, 0.15, 0.15), 3)["split"]
    renamed = splits.assign_splits(files.assign(group="x" + files["group"].str[::-1]), (0.7, 0.15, 0.15), 3)["split"]
    assert base.equals(shuffled.sort_index())
    assert base.equals(renamed)


def test_one_big_group_and_mixed_sizes_keep_every_split_two_classed(tmp_path):
    # one group holding 40% of the data, the rest small: still no straddling, val and test hold both classes
    labels = ["real", "fake"] * 50
    groups = ["big"] * 40 + [f"g{i}" for i in range(60)]
    files = pd.DataFrame({"dataset": "d", "label": labels, "given_split": None,
                          "sha256": [f"{i:064x}" for i in range(100)], "group": groups})
    out = splits.assign_splits(files, (0.7, 0.15, 0.15), 0)
    assert out.groupby("group")["split"].nunique().max() == 1
    assert (out.loc[out["group"] == "big", "split"] == "train").all()
    for split in ("train", "val", "test"):
        assert set(out.loc[out["split"] == split, "label"]) == {"real", "fake"}


def test_few_groups_still_reach_val_and_test(tmp_path):
    files = pd.DataFrame({"dataset": "d", "label": ["real", "fake"] * 6, "given_split": None,
                          "sha256": [f"{i:064x}" for i in range(12)], "group": [f"g{i // 4}" for i in range(12)]})
    out = splits.assign_splits(files, (0.7, 0.15, 0.15), 0)
    assert out.groupby("group")["split"].nunique().max() == 1
    assert sorted(out.groupby("split")["group"].nunique().to_dict().items()) == [("test", 1), ("train", 1),
                                                                                   ("val", 1)]


def test_ungrouped_files_are_their_own_group_and_bare_names_match(tmp_path):
    root = make_labelled_folder(tmp_path / "mine", n_per_class=12)
    reals = sorted(p.name for p in (root / "real").iterdir())
    fakes = sorted((root / "fake").iterdir())
    # a bare file name, a Windows-style path and a ./ path; the last 6 fakes are not listed
    lines = ["file,group", f"{reals[0]},scene_a", f"fake\\{fakes[0].name},scene_a", f"./real/{reals[1]},scene_b",
             f"fake/{fakes[1].name},scene_b", f"fake/{fakes[2].name},scene_b"]
    lines += [f"real/{r},scene_c" for r in reals[2:]] + [f"fake/{f.name},scene_c" for f in fakes[3:6]]
    (root / "groups.csv").write_text("\n".join(lines) + "\n")
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    group = dict(zip(manifest["relpath"], manifest["group"]))
    assert group[f"real/{reals[0]}"] == group[f"fake/{fakes[0].name}"] == "scene_a"
    assert group[f"fake/{fakes[2].name}"] == "scene_b"
    assert group[f"fake/{fakes[7].name}"] == f"fake/{fakes[7].name}"  # not listed: its own group
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert (manifest.loc[manifest["group"] == "scene_c", "split"].nunique()) == 1


def test_groups_sharing_an_identical_image_are_joined(tmp_path):
    root = make_grouped_folder(tmp_path / "vids", n_groups=20, seed=8)
    table = pd.read_csv(root / "groups.csv")
    a = table.loc[table["group"] == "video_03", "file"].iloc[0]
    b = table.loc[table["group"] == "video_11", "file"].iloc[0]
    (root / b).write_bytes((root / a).read_bytes())  # the same clip under two video names
    manifest, skipped = data.build_manifest(cfg_for(tmp_path, root))
    assert len(skipped) == 1 and "duplicate" in skipped["reason"].iloc[0]
    assert "video_11" not in set(manifest["group"])  # joined into video_03 (alphabetically first)
    joined = manifest[manifest["group"] == "video_03"]
    assert joined["split"].nunique() == 1
    assert len(joined) == (table["group"].isin(["video_03", "video_11"])).sum() - 1


def test_given_split_is_kept_and_a_straddling_group_is_warned(tmp_path, caplog):
    root = make_split_folder(tmp_path / "kaggle", counts=(6, 3, 3))
    before, _ = data.build_manifest(cfg_for(tmp_path, root))
    train_real = sorted((root / "train" / "real").iterdir())[0].name
    test_fake = sorted((root / "test" / "fake").iterdir())[0].name
    (root / "groups.csv").write_text(f"file,group\ntrain/real/{train_real},v1\ntest/fake/{test_fake},v1\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.data"):
        after, _ = data.build_manifest(cfg_for(tmp_path, root))
    assert after["split"].equals(before["split"])
    assert "v1" in caplog.text and "given split is kept" in caplog.text


def test_unknown_files_are_warned_and_ignored(tmp_path, caplog):
    root = make_grouped_folder(tmp_path / "vids", n_groups=10, seed=2)
    with open(root / "groups.csv", "a") as fh:
        fh.write("fake/deleted_long_ago.png,video_00\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.data"):
        manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    assert "deleted_long_ago.png" in caplog.text and "ignored" in caplog.text
    assert manifest["group"].str.startswith("video_").all()


# ----- without groups.csv nothing changes

def test_without_groups_the_split_and_run_id_are_those_of_before(tmp_path, synthetic_data):
    for seed in (0, 42):
        cfg = cfg_for(tmp_path, synthetic_data, seed=seed)
        files, _, _ = data.collect_images(cfg)
        files = data._cap_per_class(files, cfg.max_images_per_class, cfg.seed)
        expected = old_assign_splits(files.drop(columns="group"), cfg.split, seed)
        assert splits.assign_splits(files, cfg.split, seed)["split"].equals(expected)
        assert splits.assign_splits(files.drop(columns="group"), cfg.split, seed)["split"].equals(expected)
        manifest, _ = data.build_manifest(cfg)
        assert (manifest["group"] == manifest["relpath"]).all()
        # the run id does not see the (trivial) group column: old runs keep their ids
        without = manifest.drop(columns="group")
        assert artifacts.manifest_hash(manifest) == artifacts.manifest_hash(without)
        assert (artifacts.make_run_id("t", {"a": 1}, manifest) == artifacts.make_run_id("t", {"a": 1}, without))


def test_one_file_per_group_splits_as_without_groups(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=20)
    before, _ = data.build_manifest(cfg_for(tmp_path, root, seed=3))
    rel = before["relpath"].tolist()
    pd.DataFrame({"file": rel, "group": [f"clip{i}" for i in range(len(rel))]}).to_csv(root / "groups.csv",
                                                                                      index=False)
    after, _ = data.build_manifest(cfg_for(tmp_path, root, seed=3))
    assert after["split"].equals(before["split"])
    assert after["group"].str.startswith("clip").all()
    assert artifacts.manifest_hash(after) == artifacts.manifest_hash(before)


def test_real_groups_change_the_run_id(tmp_path):
    root = make_grouped_folder(tmp_path / "vids", n_groups=12, seed=1)
    grouped, _ = data.build_manifest(cfg_for(tmp_path, root))
    assert artifacts.manifest_hash(grouped) != artifacts.manifest_hash(grouped.drop(columns="group"))
    # same partition under other names: same hash (names do not decide training)
    renamed = grouped.assign(group="clip-" + grouped["group"])
    assert artifacts.manifest_hash(renamed) == artifacts.manifest_hash(grouped)


def test_old_run_manifest_without_group_column_reads_with_own_groups(tmp_path):
    from synthetic_run import write_synthetic_run

    run_dir = write_synthetic_run(tmp_path / "art")
    man = pd.read_parquet(run_dir / "manifest.parquet").drop(columns="group")
    man.to_parquet(run_dir / "manifest.parquet", index=False)
    loaded = results.load_run(run_dir).manifest()
    assert list(loaded.columns[-1:]) == ["group"] and (loaded["group"] == loaded["relpath"]).all()


# ----- bad groups.csv

@pytest.mark.parametrize("content,expect", [
    (b"", "is empty"),
    (b"file,video\nreal/a.png,v1\n", "lacks the column(s) group"),
    (b"name;group\nreal/a.png;v1\n", "lacks the column(s) file"),
    (b"file,group\n", "lists no files"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00\x08\x06\x06",
     "not a text CSV"),
    (b"file,group\nreal/a.png,v1\nreal/a.png,v2\n", "two different groups"),
    (b"file,group\nreal/a.png,\n", "empty group"),
    (b"file,group\nreal/nothing_here.png,v1\n", "none of the 1 files listed"),
])
def test_bad_groups_csv_is_a_clear_error(tmp_path, content, expect):
    root = make_labelled_folder(tmp_path / "d", n_per_class=6)
    (root / "groups.csv").write_bytes(content.replace(b"real/a.png", f"real/{sorted((root / 'real').iterdir())[0].name}".encode()))
    with pytest.raises(data_folders.DataError) as err:
        data.build_manifest(cfg_for(tmp_path, root))
    assert expect in str(err.value)
    assert str(root / "groups.csv") in str(err.value)


def test_duplicate_identical_rows_are_one_row(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=6)
    name = sorted((root / "real").iterdir())[0].name
    (root / "groups.csv").write_text(f"file,group\nreal/{name},v1\nreal/{name},v1\n{name},v1\n")
    manifest, _ = data.build_manifest(cfg_for(tmp_path, root))
    assert (manifest.loc[manifest["relpath"] == f"real/{name}", "group"] == "v1").all()


def test_ambiguous_bare_name_is_a_clear_error(tmp_path):
    root = make_labelled_folder(tmp_path / "d", n_per_class=6)
    name = sorted((root / "real").iterdir())[0].name
    (root / "fake" / name).write_bytes(b"\x89PNG not really")  # same name under fake/
    (root / "groups.csv").write_text(f"file,group\n{name},v1\n")
    with pytest.raises(data_folders.DataError, match="relative to the dataset folder"):
        data.build_manifest(cfg_for(tmp_path, root))


# ----- the shared DFDC file

def test_shared_dfdc_groups_csv_is_read():
    source = SHARED_DFDC / "groups.csv"
    if not source.is_file():
        pytest.skip(f"{source} is absent (the shared face data is not beside the repository)")
    table = data.read_groups(source)
    assert len(table) == 4000 and table["file"].str.match(r"^(real|fake)/[a-z]{10}\.jpg$").all()
    assert table["group"].str.endswith(".mp4").all()
    rel = sorted(str(p.relative_to(SHARED_DFDC)) for p in SHARED_DFDC.glob("*/*.jpg"))
    groups, unknown = data.match_groups(table, rel, source)
    assert unknown == [] and all(g is not None for g in groups)
    # every image's group is its source video: a real's own video (group == its own id)
    own = [g == Path(r).stem + ".mp4" for r, g in zip(rel, groups) if r.startswith("real/")]
    assert np.mean(own) > 0.95

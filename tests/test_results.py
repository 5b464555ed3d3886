"""pipeline.results: finding runs and reading their files (no TensorFlow)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from pipeline import results
from pipeline.results import ArtifactError, ModelNotFound, RunNotFound
from synthetic_run import INCOMPLETE_MODEL, write_synthetic_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """An artifacts folder with an older and a newer run, plus junk."""
    root = tmp_path_factory.mktemp("artifacts")
    old = write_synthetic_run(root, seed=1, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    new = write_synthetic_run(root, seed=2, name="full", models=("baseline_cnn", "mobilenet", "xception"),
                              datasets=("faces140k", "ciplab", "lfw_faceswap"),
                              created=datetime(2025, 3, 1, tzinfo=timezone.utc))
    (root / "cache").mkdir()
    (root / "cache" / "run.json").write_text("{}")
    (root / "junk").mkdir()
    (root / "corrupt").mkdir()
    (root / "corrupt" / "run.json").write_text("{not json")
    (root / "list").mkdir()
    (root / "list" / "run.json").write_text("[1, 2]")
    (root / "notes.txt").write_text("hello")
    (root / "README.md").write_text("# artifacts")
    return root, old, new


def test_artifacts_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tmp_path))
    assert results.artifacts_dir() == tmp_path
    monkeypatch.delenv(results.ARTIFACTS_ENV)
    assert results.artifacts_dir() == results.REPO_ROOT / "artifacts"


def test_list_runs_newest_first_and_skips_junk(two_runs):
    root, old, new = two_runs
    runs = results.list_runs(root)
    assert [r.path for r in runs] == [new.resolve(), old.resolve()]
    full = runs[0]
    assert full.run_id == new.name and full.config_name == "full" and full.status == "running"
    assert full.created.startswith("2025-03-01")
    assert full.models == ["baseline_cnn", "mobilenet", "xception", INCOMPLETE_MODEL]
    assert full.complete_models == ["baseline_cnn", "mobilenet", "xception"]
    assert "3/4 models" in full.label


def test_list_runs_missing_or_empty_root(tmp_path):
    assert results.list_runs(tmp_path / "nope") == []
    assert results.list_runs(tmp_path) == []


def test_list_runs_uses_env(two_runs, monkeypatch):
    root, _, new = two_runs
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(root))
    assert results.list_runs()[0].path == new.resolve()
    assert results.latest_run().path == new.resolve()


def test_latest_run(two_runs):
    root, _, new = two_runs
    assert results.latest_run(root).run_id == new.name


def test_latest_run_skips_runs_without_finished_models(tmp_path):
    older = write_synthetic_run(tmp_path, seed=1, created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    newer = write_synthetic_run(tmp_path, seed=2, name="killed", created=datetime(2025, 2, 1, tzinfo=timezone.utc))
    for done in (newer / "models").glob("*/done.json"):
        done.unlink()
    assert results.list_runs(tmp_path)[0].run_id == newer.name
    assert results.latest_run(tmp_path).run_id == older.name
    shutil.rmtree(older)
    with pytest.raises(RunNotFound, match="python -m pipeline train"):
        results.latest_run(tmp_path)


def test_no_run_message_tells_what_to_run(tmp_path):
    with pytest.raises(RunNotFound) as err:
        results.latest_run(tmp_path)
    assert "python -m pipeline train" in str(err.value)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(LookupError):
        results.resolve_run(None, tmp_path)


def test_resolve_run(two_runs):
    root, old, new = two_runs
    assert results.resolve_run(None, root).path == new.resolve()
    assert results.resolve_run("latest", root).path == new.resolve()
    assert results.resolve_run(old.name, root).path == old.resolve()
    assert results.resolve_run(old.name[:9], root).path == old.resolve()  # unique prefix
    assert results.resolve_run(str(old), root).path == old.resolve()  # path
    assert results.resolve_run("small", root).path == old.resolve()  # config name


def test_resolve_run_path_outside_root(two_runs, tmp_path):
    _, old, _ = two_runs
    info = results.resolve_run(str(old), tmp_path / "elsewhere")
    assert info.run_id == old.name


def test_resolve_run_missing_and_ambiguous(two_runs, tmp_path):
    root, old, new = two_runs
    with pytest.raises(RunNotFound, match="python -m pipeline train") as err:
        results.resolve_run("nope-123", root)
    assert old.name in str(err.value)  # lists the known runs
    write_synthetic_run(tmp_path, seed=5, name="dup")
    write_synthetic_run(tmp_path, seed=6, name="dupe")
    assert results.resolve_run("dup", tmp_path).config_name == "dup"  # a config name wins over a prefix
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        results.resolve_run("du", tmp_path)
    with pytest.raises(RunNotFound, match="python -m pipeline train"):
        results.resolve_run("anything", tmp_path / "empty")


def test_incomplete_models_are_hidden(two_runs):
    _, old, _ = two_runs
    run = results.load_run(str(old))
    assert (old / "models" / INCOMPLETE_MODEL).is_dir()
    assert run.models() == ["baseline_cnn", "mobilenet"]
    assert INCOMPLETE_MODEL in run.info.models
    with pytest.raises(ModelNotFound, match="did not finish"):
        run.metrics(INCOMPLETE_MODEL)
    with pytest.raises(RunNotFound, match="not in this run"):
        run.history("nope")
    assert all(INCOMPLETE_MODEL != m for m in run.summary()["model"])


def test_run_accessors(two_runs):
    _, old, _ = two_runs
    run = results.load_run(results.resolve_run(str(old)))
    assert run.config["name"] == "small"
    assert run.config["seed"] == 1
    assert run.model_config("mobilenet")["fine_tune_epochs"] == 2
    man = run.manifest()
    assert set(results.MANIFEST_COLUMNS) <= set(man.columns)
    assert all(Path(p).is_file() for p in man["path"])
    assert run.datasets() == ["faces140k", "lfw_faceswap"]
    sk = run.skipped()
    assert list(sk.columns) == results.SKIPPED_COLUMNS and len(sk) == 2
    m = run.metrics("mobilenet")
    assert set(m["scopes"]) == {"all", "faces140k", "lfw_faceswap"}
    hist = run.history("mobilenet")
    assert set(results.HISTORY_COLUMNS) <= set(hist.columns)
    preds = run.predictions("baseline_cnn")
    assert set(results.PREDICTION_COLUMNS) <= set(preds.columns)
    assert set(preds["split"]) == {"val", "test"}
    assert run.model_path("baseline_cnn").name == "model.keras"
    summ = run.summary()
    assert list(summ.columns) == results.SUMMARY_COLUMNS
    assert len(summ) == 2 * 3  # 2 models x (all + 2 datasets)
    assert run.scopes() == ["all", "faces140k", "lfw_faceswap"]


def test_metrics_consistent_with_predictions(two_runs):
    _, old, _ = two_runs
    run = results.load_run(str(old))
    for model in run.models():
        m = run.metrics(model)
        test = run.predictions(model).query("split == 'test'")
        at = m["scopes"]["all"]["at_threshold"]
        pred = (test["p_fake"] >= m["threshold"]).astype(int)
        assert at["tp"] == int(((pred == 1) & (test["y"] == 1)).sum())
        assert at["tn"] == int(((pred == 0) & (test["y"] == 0)).sum())
        assert at["tn"] + at["fp"] + at["fn"] + at["tp"] == m["scopes"]["all"]["n"] == len(test)


def test_counts(two_runs):
    _, old, _ = two_runs
    run = results.load_run(str(old))
    counts = run.counts()
    assert list(counts.columns) == ["dataset", "split", "label", "n"]
    assert len(counts) == 2 * 3 * 2
    assert counts["n"].sum() == len(run.manifest())
    first = counts.iloc[:6]
    assert first["dataset"].unique().tolist() == ["faces140k"]
    assert first["split"].tolist() == ["train", "train", "val", "val", "test", "test"]
    assert first["label"].tolist() == ["real", "fake"] * 3
    n = counts.set_index(["dataset", "split", "label"])["n"]
    assert n[("lfw_faceswap", "test", "fake")] == 8


def test_comparison_table(two_runs):
    _, old, _ = two_runs
    run = results.load_run(str(old))
    table = run.comparison("all")
    assert table["model"].tolist() == ["baseline_cnn", "mobilenet"]
    assert list(table.columns) == results.COMPARISON_COLUMNS
    summ = run.summary().query("scope == 'all'").set_index("model")
    for _, row in table.iterrows():
        assert row["accuracy"] == pytest.approx(summ.loc[row["model"], "accuracy"])
        assert row["file_size_mb"] == pytest.approx(summ.loc[row["model"], "file_size_mb"])
    half = run.comparison("faces140k", at_half=True)
    assert (half["threshold"] == 0.5).all()
    assert half["accuracy"].tolist() == [run.metrics(m)["scopes"]["faces140k"]["at_0.5"]["accuracy"]
                                         for m in half["model"]]
    assert run.comparison("no_such_scope").empty


def test_missing_and_corrupt_files_raise_clear_errors(tmp_path):
    path = write_synthetic_run(tmp_path)
    run = results.load_run(str(path))
    (path / "summary.csv").unlink()
    empty = run.summary()
    assert empty.empty and list(empty.columns) == results.SUMMARY_COLUMNS
    (path / "skipped.csv").unlink()
    assert run.skipped().empty
    (path / "models" / "mobilenet" / "metrics.json").write_text("{broken")
    with pytest.raises(ArtifactError, match="python -m pipeline train"):
        run.metrics("mobilenet")
    (path / "models" / "mobilenet" / "metrics.json").write_text(json.dumps({"model": "mobilenet"}))
    with pytest.raises(ValueError, match="scopes"):
        run.metrics("mobilenet")
    (path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match="cannot be read"):
        run.manifest()
    assert run.datasets() == ["faces140k", "lfw_faceswap"]  # falls back to the config
    pd.DataFrame({"dataset": ["x"]}).to_parquet(path / "manifest.parquet")
    with pytest.raises(ArtifactError, match="lacks column"):
        run.counts()
    (path / "manifest.parquet").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        run.manifest()
    (path / "models" / "baseline_cnn" / "model.keras").unlink()
    with pytest.raises(ArtifactError, match="model.keras is missing"):
        run.model_path("baseline_cnn")
    shutil.rmtree(path)
    with pytest.raises(RunNotFound, match="python -m pipeline train"):
        results.load_run(run.info)


def test_done_json_appearing_is_picked_up(tmp_path):
    path = write_synthetic_run(tmp_path)
    run = results.load_run(str(path))
    assert INCOMPLETE_MODEL not in run.models()
    (path / "models" / INCOMPLETE_MODEL / "done.json").write_text("{}")
    assert INCOMPLETE_MODEL in run.models()
    assert INCOMPLETE_MODEL in results.load_run(str(path)).info.complete_models


def test_no_tensorflow_import():
    code = ("import sys; import pipeline.results; "
            "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)")
    rc = os.system(f'cd "{results.REPO_ROOT}" && "{sys.executable}" -c "{code}"')
    assert rc == 0

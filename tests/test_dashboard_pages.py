"""The dashboard pages through Streamlit's AppTest, on synthetic runs (no TensorFlow).

Plotly charts cannot be inspected in AppTest: ``tests/test_figures.py`` checks the figures.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline import results
from synthetic_run import INCOMPLETE_MODEL, write_routed_ensemble, write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
MODELS = ("baseline_cnn", "mobilenet", "xception")
DATASETS = ("faces140k", "ciplab", "lfw_faceswap")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    write_synthetic_run(root, seed=1, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    write_synthetic_run(root, seed=2, name="full", models=MODELS, datasets=DATASETS,
                        created=datetime(2025, 2, 1, tzinfo=timezone.utc))
    (root / "cache").mkdir()
    return root


def _app(monkeypatch, root: Path) -> AppTest:
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_overview_shows_counts(monkeypatch, artifacts):
    at = _app(monkeypatch, artifacts)
    _ok(at)
    run = results.load_run(None, artifacts)
    assert run.info.config_name == "full"
    assert at.title[0].value == "Overview"
    # sidebar run selector: newest first, default = latest finished run
    sel = at.sidebar.selectbox(key="run_id")
    assert sel.value == run.run_id
    assert [o.split(" · ")[0] for o in sel.options] == [r.run_id for r in results.list_runs(artifacts)]
    # metrics and the counts pivot
    n = len(run.manifest())
    assert at.metric[0].value == f"{n:,}"
    pivot = at.dataframe[0].value
    assert set(DATASETS) | {"all datasets"} == set(pivot.index)
    assert pivot.loc["all datasets", "total"] == n
    counts = run.counts().set_index(["dataset", "split", "label"])["n"]
    assert pivot.loc["ciplab", "test · fake"] == counts[("ciplab", "test", "fake")]
    assert pivot.loc["faces140k", "train · real"] == counts[("faces140k", "train", "real")]
    balance = at.dataframe[1].value
    assert balance.set_index("dataset").loc["all datasets", "fake share"] == pytest.approx(0.5)
    assert "**2** file(s) could not be used" in _texts(at)


def _open_samples(at: AppTest) -> AppTest:
    """Overview's sections below the first screen are lazy tabs: the sample images run once opened."""
    assert [t.label for t in at.tabs] == ["File shortcut audit", "Sample images"]
    assert not [w for w in at.selectbox if w.key == "overview_dataset"]
    at.session_state["overview_section"] = "Sample images"
    at.run()
    assert not [w for w in at.selectbox if w.key == "overview_audit_fact"]
    return at


def test_overview_samples_and_shuffle(monkeypatch, artifacts):
    at = _open_samples(_app(monkeypatch, artifacts))
    at.selectbox(key="overview_dataset").set_value("lfw_faceswap").run()
    _ok(at)
    assert "**real** · 28 images" in _texts(at)
    seed = at.session_state["overview_sample_seed"]
    at.button(key="overview_shuffle").click().run()
    _ok(at)
    assert at.session_state["overview_sample_seed"] == seed + 1
    at.selectbox(key="overview_split").set_value("test").run()
    at.slider(key="overview_per_class").set_value(16).run()
    _ok(at)
    assert "**fake** · 8 images" in _texts(at)


def test_overview_missing_image_shows_warning(monkeypatch, tmp_path):
    path = write_synthetic_run(tmp_path, seed=4)
    man = results.load_run(str(path)).manifest()
    for p in man[(man["dataset"] == "faces140k") & (man["label"] == "fake")]["path"]:
        Path(p).unlink()
    at = _open_samples(_app(monkeypatch, tmp_path))
    _ok(at)
    assert "missing or unreadable" in _texts(at)


def test_compare_page(monkeypatch, artifacts):
    at = _app(monkeypatch, artifacts)
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert at.title[0].value == "Compare models"
    table = at.dataframe[0].value
    assert table["model"].tolist() == list(MODELS)
    assert INCOMPLETE_MODEL not in table["model"].tolist()
    run = results.load_run(None, artifacts)
    expected = run.comparison("all").set_index("model")
    from pipeline.evaluation import chance_verdict

    for _, row in table.iterrows():
        assert row["roc_auc"] == pytest.approx(expected.loc[row["model"], "roc_auc"])
        assert row["threshold"] == pytest.approx(expected.loc[row["model"], "threshold"])
        assert row["vs_chance"] == chance_verdict(row["roc_auc"], expected.loc[row["model"], "n"])
    weak = table[table["vs_chance"] != "above chance"]["model"].tolist()
    warned = " ".join(w.value for w in at.warning)
    assert all(f"**{m}**" in warned for m in weak) and (bool(weak) == ("Not better than a coin" in warned))
    assert "best ROC-AUC" in _texts(at)
    # the run selector stays in the sidebar on this page
    assert at.sidebar.selectbox(key="run_id").value == run.run_id


def test_compare_scope_and_threshold_toggle(monkeypatch, artifacts):
    at = _app(monkeypatch, artifacts)
    at.switch_page("app_pages/compare.py").run()
    scope = at.selectbox(key="compare_scope")
    assert scope.options == ["all datasets pooled", "ciplab", "faces140k", "lfw_faceswap"]
    scope.set_value("faces140k").run()
    _ok(at)
    run = results.load_run(None, artifacts)
    table = at.dataframe[0].value.set_index("model")
    expected = run.comparison("faces140k").set_index("model")
    for m in MODELS:
        assert table.loc[m, "accuracy"] == pytest.approx(expected.loc[m, "accuracy"])
    assert "16 test images (8 real, 8 fake)" in _texts(at)
    at.toggle(key="compare_at_half").set_value(True).run()
    _ok(at)
    table = at.dataframe[0].value.set_index("model")
    assert (table["threshold"] == 0.5).all()
    half = run.comparison("faces140k", at_half=True).set_index("model")
    for m in MODELS:
        assert table.loc[m, "f1"] == pytest.approx(half.loc[m, "f1"])
    assert at.selectbox(key="compare_scope").value == "faces140k"
    # the sections below the curves are lazy tabs: only the open one runs
    assert [t.label for t in at.tabs] == ["Can the verdict be trusted?", "Calibration per model", "Confusion matrices",
                                          "One metric, every scope", "Training curves"]
    assert not [w for w in at.toggle if w.key == "compare_reliability_calibrated"]
    assert not [w for w in at.selectbox if w.key == "compare_bar_metric"]
    at.session_state["compare_section"] = "Calibration per model"
    at.run()
    _ok(at)
    assert at.toggle(key="compare_reliability_calibrated").value is True
    at.session_state["compare_section"] = "Training curves"
    at.run()
    assert not [w for w in at.toggle if w.key == "compare_reliability_calibrated"]
    at.segmented_control(key="compare_curve_metric").set_value("auc").run()
    _ok(at)
    at.session_state["compare_section"] = "One metric, every scope"
    at.run()
    at.selectbox(key="compare_bar_metric").set_value("f1").run()
    _ok(at)
    at.session_state["compare_section"] = "Confusion matrices"
    at.run()
    _ok(at)
    assert at.multiselect(key="compare_cm_models").value  # the best models' matrices by default


def test_compare_router_section(monkeypatch, tmp_path):
    path = write_synthetic_run(tmp_path, seed=11, name="routed", models=MODELS, datasets=DATASETS)
    preds = write_routed_ensemble(path)
    at = _app(monkeypatch, tmp_path)
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert "Router" in [t.label for t in at.tabs]
    at.session_state["compare_section"] = "Router"
    at.run()
    _ok(at)
    assert not at.info
    test = preds[preds["split"] == "test"]
    wrong = test[test["routed_to"] != test["dataset"]]
    assert len(wrong) == 12  # 4 of the 16 test images of each of the 3 datasets
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Router test accuracy"] == f"{1 - len(wrong) / len(test):.1%}"
    assert metrics["Misrouted test images"] == f"{len(wrong)} of {len(test)}"
    tables = {tuple(df.value.columns): df.value for df in at.dataframe}
    per = next(t for cols, t in tables.items() if "router_accuracy" in cols).set_index("dataset")
    assert per["router_accuracy"].tolist() == pytest.approx([0.75] * 3)
    groups = next(t for cols, t in tables.items() if "routing" in cols)
    assert sorted(groups["dataset"].unique()) == sorted(DATASETS) and len(groups) == 6
    misrouted = next(t for cols, t in tables.items() if "route_confidence" in cols)
    # paths as read in a table: relative to their data folder ("<dataset>/<label>/<file>" here), not absolute
    assert sorted(misrouted["path"]) == sorted(wrong["relpath"])
    assert not any(p.startswith("/") for p in misrouted["path"])
    assert len(at.get("image")) == len(wrong)  # a thumbnail of each (at most 16) misrouted image


def test_compare_router_section_of_an_older_run_says_how_to_refresh(monkeypatch, tmp_path):
    path = write_synthetic_run(tmp_path, seed=12, name="routed")
    write_routed_ensemble(path, with_routing=False)
    at = _app(monkeypatch, tmp_path)
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    at.session_state["compare_section"] = "Router"
    at.run()
    _ok(at)
    assert at.info and "python -m pipeline train --force" in at.info[0].value
    assert "ensemble_routed" in at.dataframe[0].value["model"].tolist()  # the rest of the page is unchanged


def test_run_selector_applies_to_every_page(monkeypatch, artifacts):
    at = _app(monkeypatch, artifacts)
    older = results.list_runs(artifacts)[1]
    at.sidebar.selectbox(key="run_id").set_value(older.run_id).run()
    _ok(at)
    assert older.run_id in at.caption[0].value
    assert set(at.dataframe[0].value.index) == {"faces140k", "lfw_faceswap", "all datasets"}
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert older.run_id in at.caption[0].value
    assert at.dataframe[0].value["model"].tolist() == ["baseline_cnn", "mobilenet"]


def test_empty_artifacts_folder_shows_what_to_run(monkeypatch, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "junk").mkdir()
    at = _app(monkeypatch, tmp_path)
    _ok(at)
    assert at.info, "expected an st.info explaining what to run"
    assert "python -m pipeline train" in at.info[0].value
    assert not at.dataframe


def test_missing_artifacts_folder(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "does-not-exist")
    _ok(at)
    assert "python -m pipeline train" in at.info[0].value


def test_run_without_finished_models(monkeypatch, tmp_path):
    path = write_synthetic_run(tmp_path, seed=7)
    for done in (path / "models").glob("*/done.json"):
        done.unlink()
    at = _app(monkeypatch, tmp_path)
    _ok(at)
    assert at.dataframe  # the data overview still works
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert "no finished model" in at.info[0].value
    assert "python -m pipeline train" in at.info[0].value


def test_corrupt_files_show_a_message_not_a_traceback(monkeypatch, tmp_path):
    path = write_synthetic_run(tmp_path, seed=8)
    (path / "models" / "mobilenet" / "metrics.json").write_text("{broken")
    at = _app(monkeypatch, tmp_path)
    _ok(at)
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert at.warning and "metrics.json" in at.warning[0].value
    (path / "manifest.parquet").write_bytes(b"garbage")
    at.switch_page("app_pages/overview.py").run()
    _ok(at)
    assert "manifest.parquet" in at.warning[0].value


def test_retrained_run_is_picked_up(monkeypatch, tmp_path):
    """The cache is keyed by file modification times: new files show without a restart."""
    path = write_synthetic_run(tmp_path, seed=9)
    at = _app(monkeypatch, tmp_path)
    at.switch_page("app_pages/compare.py").run()
    before = at.dataframe[0].value.set_index("model").loc["mobilenet", "params"]
    metrics_file = path / "models" / "mobilenet" / "metrics.json"
    data = json.loads(metrics_file.read_text())
    data["params"] = 424242
    metrics_file.write_text(json.dumps(data))
    later = time.time() + 5
    os.utime(metrics_file, (later, later))
    at.run()
    _ok(at)
    after = at.dataframe[0].value.set_index("model").loc["mobilenet", "params"]
    assert before != after == 424242
    shutil.rmtree(path)


def test_training_page_names_a_model_that_kept_its_head_phase(monkeypatch, tmp_path):
    write_synthetic_run(tmp_path, seed=4, models=MODELS, kept_head=("mobilenet", "baseline_cnn"))
    at = _app(monkeypatch, tmp_path)
    at.switch_page("app_pages/training.py").run()
    _ok(at)
    warnings = [w.value for w in at.warning if "head" in w.value]
    # baseline_cnn has no fine-tuning phase to fall back from
    assert len(warnings) == 1 and "**mobilenet**" in warnings[0] and "baseline_cnn" not in warnings[0]
    at.multiselect(key="training_models").set_value(["baseline_cnn", "xception"]).run()
    assert not [w.value for w in at.warning if "head phase" in w.value]

"""New images scored by the run's combined model (ensemble_routed, else ensemble_stacked): the
pipeline (ensemble.load_combiner / score_combined, checking), ``python -m pipeline predict`` and the
Check page. A tiny two-dataset run with a specialist and a PCA-SVM member is trained once."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO, write_images
from pipeline import checking, config_load, detectors, results, runner
from pipeline.__main__ import main
from pipeline.detectors import combined as ensemble

APP = str(REPO / "dashboard" / "app.py")
MEMBERS = ["baseline_cnn", "small_only", "baseline_cnn+pca_svm"]


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    for dataset, n, seed in (("big", 24, 3), ("small", 12, 4)):  # 48 px: every model and the router resize
        write_images(root / dataset / "real", "real", n, seed, size=48)
        write_images(root / dataset / "fake", "fake", n, seed + 1000, size=48)
    cfg = config_load.from_dict({
        "name": "combined", "data": [str(root)], "seed": 1,
        "artifacts_dir": str(tmp_path_factory.mktemp("artifacts")),
        "training": {"batch_size": 16, "epochs": 1, "early_stopping_patience": 0},
        "models": [{"name": "baseline_cnn", "image_size": 16},
                   {"name": "small_only", "architecture": "baseline_cnn", "image_size": 16, "datasets": ["small"]}],
        "embeddings": {"enabled": True, "umap": False, "svm": True, "models": ["baseline_cnn"]},
        "verdict": {"members": MEMBERS},
    })
    return runner.train_run(cfg, log=lambda _: None)


def _test_rows(run_dir, name: str) -> pd.DataFrame:
    preds = pd.read_parquet(run_dir / "models" / name / "predictions.parquet")
    return preds[preds["split"] == "test"].sort_values("path").reset_index(drop=True)


def _pick(run_dir, n: int = 3) -> pd.DataFrame:
    """A few test images of both datasets (test rows are scored by the full fit, not out-of-fold)."""
    rows = _test_rows(run_dir, ensemble.ROUTED)
    return pd.concat([rows[rows["dataset"] == d].head(n) for d in ("big", "small")], ignore_index=True)


@pytest.fixture(scope="module")
def combiner(routed_run):
    return ensemble.load_combiner(routed_run)


def test_the_routed_model_is_preferred_and_reproduces_its_test_predictions(routed_run, combiner):
    assert ensemble.combiner_name(routed_run) == "ensemble_routed"
    assert combiner.name == "ensemble_routed" and combiner.members == MEMBERS
    picked = _pick(routed_run)
    checks = checking.check_files(list(picked["path"]), detectors.load_many(routed_run), crop_faces=False,
                                  combiner=combiner)
    metrics = json.loads((routed_run / "models" / "ensemble_routed" / "metrics.json").read_text())
    for row, check in zip(picked.itertuples(), checks):
        assert check.ok, check.error
        combined = check.faces[0].combined
        assert combined["model"] == "ensemble_routed"
        assert combined["p_fake"] == pytest.approx(row.p_fake, abs=1e-4)
        assert combined["threshold"] == pytest.approx(metrics["threshold"], abs=1e-6)
        assert combined["verdict"] == ("fake" if combined["p_fake"] >= combined["threshold"] else "real")
        # every member, the PCA-SVM too, gives the p_fake the run stored for this image
        for member in MEMBERS:
            stored = _test_rows(routed_run, member).set_index("path").loc[row.path, "p_fake"]
            assert combined["members"][member] == pytest.approx(stored, abs=1e-4), member
        assert set(combined["looks_like"]) == {"big", "small"}
        assert sum(combined["looks_like"].values()) == pytest.approx(1.0, abs=1e-5)
    table = checking.results_table(checks)
    assert {"combined_model", "combined_p_fake", "combined_threshold", "combined_verdict",
            "combined_looks_like"} <= set(table.columns)
    assert table["combined_p_fake"].to_numpy() == pytest.approx(picked["p_fake"].to_numpy(), abs=1e-4)


def test_stacked_is_the_fallback_and_reproduces_its_test_predictions(routed_run, tmp_path):
    run_dir = tmp_path / routed_run.name
    shutil.copytree(routed_run, run_dir)
    shutil.rmtree(run_dir / "models" / "ensemble_routed")
    assert ensemble.combiner_name(run_dir) == "ensemble_stacked"
    stacked = ensemble.load_combiner(run_dir)
    rows = _test_rows(run_dir, "ensemble_stacked").head(4)
    checks = checking.check_files(list(rows["path"]), {}, crop_faces=False, combiner=stacked)
    for row, check in zip(rows.itertuples(), checks):
        combined = check.faces[0].combined
        assert combined["model"] == "ensemble_stacked" and combined["looks_like"] is None
        assert combined["p_fake"] == pytest.approx(row.p_fake, abs=1e-4)
    shutil.rmtree(run_dir / "models" / "ensemble_stacked")
    assert ensemble.combiner_name(run_dir) is None and ensemble.load_combiner(run_dir) is None


def test_a_combined_model_older_than_a_retrained_member_is_refused(routed_run, tmp_path):
    run_dir = tmp_path / routed_run.name
    shutil.copytree(routed_run, run_dir)
    done = run_dir / "models" / "small_only" / "done.json"
    done.write_text(done.read_text().replace("}", ', "retrained": true}'))
    with pytest.raises(ValueError, match="refit it with"):
        ensemble.load_combiner(run_dir)


def test_a_router_fitted_on_older_features_is_refused_then_refitted(routed_run, tmp_path, monkeypatch):
    from pipeline import config_load, routing

    run_dir = tmp_path / routed_run.name
    shutil.copytree(routed_run, run_dir)
    monkeypatch.setattr(routing, "FEATURES_VERSION", routing.FEATURES_VERSION + 1)  # the features changed
    with pytest.raises(ValueError, match="older version of the pipeline; refit it with"):
        ensemble.load_combiner(run_dir)
    cfg = config_load.from_json_dict(json.loads((run_dir / "run.json").read_text())["config"])
    logs: list[str] = []
    ensemble.run_ensemble(cfg, run_dir, log=logs.append)  # not a cache hit: the ensembles are refitted
    assert not any("cached" in line for line in logs)
    assert ensemble.load_combiner(run_dir).name == "ensemble_routed"


def test_bad_files_keep_their_messages_with_a_combiner(combiner, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    checks = checking.check_files([bad, ("empty.png", b"")], {}, crop_faces=False, combiner=combiner)
    assert [c.ok for c in checks] == [False, False]
    assert checks[0].error.startswith("bad.jpg") and checks[1].error.startswith("empty.png")
    table = checking.results_table(checks)
    assert table["error"].notna().all()


def test_predict_prints_the_combined_verdict(routed_run, capsys):
    picked = _pick(routed_run, n=1)
    assert main(["predict", *picked["path"], "--run", str(routed_run), "--whole-image"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for row in picked.itertuples():
        records = {r["model"]: r for r in lines if r["file"] == row.path}
        assert set(records) == {"baseline_cnn", "small_only", "ensemble_routed", "verdict"}
        assert records["verdict"]["verdict"] in {"real", "fake", "unsure"}
        assert records["verdict"]["based_on"] == "ensemble_routed" and records["verdict"]["headline"]
        routed = records["ensemble_routed"]
        assert routed["p_fake"] == pytest.approx(row.p_fake, abs=1e-4)
        assert routed["verdict"] in {"real", "fake"} and set(routed["looks_like"]) == {"big", "small"}
        assert set(routed["members"]) == set(MEMBERS)
    # the combined model alone, by name
    assert main(["predict", picked["path"][0], "--run", str(routed_run), "--model", "ensemble_stacked",
                 "--whole-image"]) == 0
    only = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in only] == ["ensemble_stacked"]
    stacked = _test_rows(routed_run, "ensemble_stacked").set_index("path").loc[picked["path"][0], "p_fake"]
    assert only[0]["p_fake"] == pytest.approx(stacked, abs=1e-4)


def test_check_page_headline_is_the_run_verdict(monkeypatch, routed_run):
    """The page's headline is the run's three-way verdict, word for word what the one check path (the
    CLI's too) gives for the same file and settings; the error rate is stated; the formula is behind
    the "How is this computed?" expander."""
    from pipeline import verdict

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(routed_run.parent))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/check.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    words = verdict.error_rate_words(verdict.load_policy(routed_run))
    assert any(words in c.value for c in at.caption), [c.value for c in at.caption]
    picked = _pick(routed_run, n=1)
    path = picked["path"][0]
    at.toggle(key="check_crop").set_value(False)
    at.toggle(key="check_cam").set_value(False)
    at.file_uploader(key="check_files").set_value((path.rsplit("/", 1)[-1], open(path, "rb").read(), "image/png"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    setup = checking.load_check_setup(routed_run)
    [expected] = checking.check_files([path], setup.models, crop_faces=False, combiner=setup.combiner,
                                      policy=setup.policy)
    assert expected.faces[0].verdict["headline"] in text, text
    assert setup.policy.model == "ensemble_routed" and "ensemble_routed" in text
    assert verdict.load_policy(routed_run).threshold == setup.policy.threshold
    # the chart's top bar is that verdict (calibrated P(fake), its answer), not the combined model's raw score
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [bars] = [f for f in specs if "Each model's answer" in json.dumps(f.get("layout", {}).get("title", ""))]
    ver = expected.faces[0].verdict
    word = "can't tell" if ver["verdict"] == "unsure" else ver["verdict"]
    assert bars["data"][0]["y"][0] == "verdict (ensemble_routed)"
    assert bars["data"][0]["text"][0] == f"{ver['p_fake']:.3f} · {word}"


def test_check_page_follows_a_run_whose_stability_check_is_off(monkeypatch, routed_run):
    """A run with ``[verdict] stability = false``: the Check page's switch starts off and its "How is this
    computed?" does not promise a check that does not run."""
    import dataclasses

    from dashboard import common
    from pipeline import verdict

    monkeypatch.setenv(results.ARTIFACTS_ENV, str(routed_run.parent))
    off = dataclasses.replace(verdict.load_policy(routed_run), stability=False)
    monkeypatch.setattr(common, "run_policy", lambda run: (off, None))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/check.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="check_stability").value is False
    text = " ".join(m.value for m in at.markdown)
    assert "stability check is off" in text and "flips the answer" not in text


def test_evaluate_judges_the_verdict_at_the_operating_point_of_the_kind_the_router_picks(monkeypatch, routed_run,
                                                                                          tmp_path):
    """``evaluate`` scores a routed verdict model as the check path and the run's own test table do: each image at
    the operating point of the kind its router picks, not at the pooled one (it used to drop the router's pick)."""
    import dataclasses

    from pipeline import config_load, routing, runner, store, verdict, verdict_fit

    strict = {"calibrator": {"method": "none"}, "threshold": 0.999, "band": 0.0, "n": 40, "n_real": 20}
    policy = dataclasses.replace(verdict.load_policy(routed_run), by_kind={"small": strict})
    monkeypatch.setattr(verdict, "load_policy", lambda run_dir, model=None: policy)
    sources = list(config_load.from_json_dict(store.read_run_json(routed_run)["config"]).data)
    out, summary = runner.evaluate_folders(routed_run, sources, models=[ensemble.ROUTED],
                                           artifacts_root=str(tmp_path / "art"))
    preds = pd.read_parquet(out / "predictions.parquet")
    own = _test_rows(routed_run, ensemble.ROUTED).set_index("path")
    mine = preds.set_index("path").loc[own.index]
    assert (mine[routing.ROUTED_TO] == own[routing.ROUTED_TO]).all()  # the router's pick, as in the run's table
    assert set(preds[routing.ROUTED_TO]) == {"big", "small"}
    verdict_rows = summary[summary["model"] == "verdict"].drop(columns=["model", "based_on"])
    expected = verdict_fit.policy_table(policy, preds)
    pd.testing.assert_frame_equal(verdict_rows[expected.columns].reset_index(drop=True), expected, check_dtype=False)
    routed_small = preds[routing.ROUTED_TO] == "small"
    assert not (policy.labels(preds["p_fake"].to_numpy(), preds[routing.ROUTED_TO].to_numpy())[routed_small]
                == verdict.FAKE).any()  # threshold 0.999: nothing the router takes for "small" is called fake


def test_check_page_without_ensembles_keeps_the_log_odds_verdict(monkeypatch, tiny_run, tmp_path):
    from PIL import Image

    from conftest import face_like

    assert ensemble.combiner_name(tiny_run) is None
    face = tmp_path / "face.png"
    Image.fromarray(face_like("fake", np.random.default_rng(3), 48)).save(face)
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tiny_run.parent))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/check.py")
    at.run()
    at.toggle(key="check_crop").set_value(False)
    at.toggle(key="check_cam").set_value(False)
    at.file_uploader(key="check_files").set_value(("face.png", face.read_bytes(), "image/png"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "Ensemble: **" in text and "Run verdict" not in text
    assert not at.warning, [w.value for w in at.warning]


def test_a_named_keras_model_outside_run_json_loads(routed_run, tmp_path):
    """searched_cnn (written by the search experiment) is not in run.json's "models" but is a Keras
    model the Check page lists; naming it must load it."""
    run_dir = tmp_path / routed_run.name
    shutil.copytree(routed_run, run_dir)
    shutil.copytree(run_dir / "models" / "baseline_cnn", run_dir / "models" / "searched_cnn")
    loaded = detectors.load_many(run_dir, ["searched_cnn"])
    assert list(loaded) == ["searched_cnn"] and loaded["searched_cnn"].image_size == 16
    combined = detectors.load_many(run_dir, ["ensemble_routed"])["ensemble_routed"]  # a detector like any other
    assert combined.kind == "combined" and isinstance(combined, detectors.Detector)
    with pytest.raises(KeyError, match="nope"):
        detectors.load_many(run_dir, ["nope"])


def test_compare_page_shows_the_verdict_and_calibration(monkeypatch, routed_run):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(routed_run.parent))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.tabs[0].label == "Can the verdict be trusted?"  # the first (open) tab below the curves
    run = results.load_run(routed_run)
    shown = {tuple(df.value.columns) for df in at.dataframe}
    assert tuple(run.verdict_table().columns) in shown
    from pipeline import verdict

    words = verdict.copies_words(verdict.load_policy(routed_run))  # the copies the policy makes, in words
    assert any(f"The stability check (the face {words})" in c.value for c in at.caption)
    at.session_state["compare_section"] = "Calibration per model"  # a lazy tab
    at.run()
    shown = {tuple(df.value.columns) for df in at.dataframe}
    assert tuple(run.trust_table().columns) in shown

    import dataclasses

    from dashboard import common

    off = dataclasses.replace(verdict.load_policy(routed_run), stability=False)  # a run with `stability = false`
    monkeypatch.setattr(common, "run_policy", lambda run: (off, None))
    at.session_state["compare_section"] = "Can the verdict be trusted?"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("stability check is off" in c for c in captions)
    assert not any("The stability check (the face" in c for c in captions)


def test_each_face_is_judged_at_the_operating_point_of_the_kind_the_router_takes_it_for(routed_run, combiner):
    """The check path hands the router's pick to the verdict: a face routed to a kind with its own
    operating point gets that kind's threshold; the others the pooled one."""
    import dataclasses

    from pipeline import verdict

    policy = verdict.load_policy(routed_run)
    strict = {"calibrator": {"method": "none"}, "threshold": 0.999, "band": 0.0, "n": 40, "n_real": 20}
    policy = dataclasses.replace(policy, by_kind={"small": strict}, stability=False)
    picked = _pick(routed_run)
    checks = checking.check_files(list(picked["path"]), detectors.load_many(routed_run), crop_faces=False,
                                  combiner=combiner, policy=policy)
    kinds = set()
    for check in checks:
        face = check.faces[0]
        looks = max(face.combined["looks_like"], key=face.combined["looks_like"].get)
        kinds.add(looks)
        v = face.verdict
        if looks == "small":
            assert v["kind"] == "small" and v["threshold"] == pytest.approx(0.999)
            assert v["p_fake"] == pytest.approx(face.combined["p_fake"], abs=1e-5)  # its own (identity) calibrator
        else:
            assert v["kind"] is None and v["threshold"] == pytest.approx(policy.threshold, abs=1e-6)
    assert kinds == {"big", "small"}, kinds  # both kinds were exercised


def test_fitting_the_verdict_shows_progress(routed_run, tmp_path):
    """The verdict step decodes training and validation images for its out-of-distribution score: it reports
    progress like every long step of a run."""
    from pipeline import config_load, results, verdict_fit

    import dataclasses

    cfg = config_load.from_json_dict(results.load_run(str(routed_run)).config)
    cfg = dataclasses.replace(cfg, artifacts_dir=str(tmp_path))  # an empty image cache: every image is decoded
    seen = []
    policy = verdict_fit.build_for_run(cfg, routed_run, force=True, progress=lambda *a: seen.append(a),
                                       log=lambda _: None)
    assert policy is not None and seen
    stage, done, total = seen[-1]
    assert done == total > 0 and isinstance(stage, str)


def test_the_warm_up_dry_run_builds_the_face_detector_and_scores_through_the_verdict(routed_run, monkeypatch):
    """The Check page's warm-up checks a synthetic picture through the whole check path (face finding,
    every model, the combined model, the verdict with its stability copies) so the first upload finds
    everything built and traced; the result is thrown away and nothing may raise."""
    from dashboard import common
    from pipeline import faces

    monkeypatch.setattr(faces, "_DETECTOR", None)
    calls = []
    real = checking.check_image
    monkeypatch.setattr(checking, "check_image", lambda *a, **k: calls.append(k) or real(*a, **k))
    setup = checking.load_check_setup(routed_run)
    assert setup.combiner is not None and setup.policy is not None
    common._dry_run_check(setup.models, setup.combiner, setup.policy)
    assert faces._DETECTOR is not None
    assert [(k["crop_faces"], k.get("stability")) for k in calls] == [(True, None), (False, True)]
    whole = real("warm-up", np.full((64, 64, 3), 128, np.uint8), setup.models, crop_faces=False,
                 combiner=setup.combiner, policy=setup.policy, stability=True)
    assert whole.faces[0].verdict["verdict"] in ("real", "fake", "unsure")

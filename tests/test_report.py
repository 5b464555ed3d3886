"""The run report and model cards (pipeline.report), on a synthetic run folder (no TensorFlow).

What must hold: the report's comparison tables equal the run's summary.csv (parsed back out of the
HTML), nothing in it points outside the file, building it never imports TensorFlow, and the
calibration, operating-point and worst-mistake numbers are the ones the definitions give.
"""
from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from synthetic_run import write_routed_ensemble, write_synthetic_run, write_verdict_policy

from pipeline import evaluation
from pipeline.report import model_card, reliability, render, run_data, run_report
from pipeline.results import load_run


# --------------------------------------------------------------------------- helpers


class Tables(HTMLParser):
    """Every ``<table id=...>`` of a page as a list of rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._id = attrs["id"]
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._id = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._id].append(self._row)
            self._row = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def html_tables(text: str) -> dict[str, pd.DataFrame]:
    parser = Tables()
    parser.feed(text)
    return {k: pd.DataFrame(rows[1:], columns=rows[0]) for k, rows in parser.tables.items() if rows}


def cell_number(text: str) -> float:
    return float("nan") if text == "n/a" else float(text.replace(",", ""))


def add_experiments(run_dir: Path, models: list[str], datasets: list[str]) -> None:
    """A finished robustness sweep and cross-dataset matrix in the run folder, laid out as
    pipeline.experiments writes them (numbers made up, shapes and columns real)."""
    rows = []
    for i, m in enumerate(models):
        for pert, level in (("none", 0.0), ("jpeg", 50.0), ("blur", 2.0), ("normalise", 90.0)):
            for d in ["all", *datasets]:
                clean = 0.9 - 0.1 * i
                auc = clean if pert == "none" else clean - (0.05 if pert == "jpeg" else 0.2) * (i + 1)
                if m == models[-1] and pert == "blur":
                    auc = 0.2  # an inversion
                rows.append({"model": m, "perturbation": pert, "level": level, "dataset": d, "n": 200,
                             "roc_auc": auc, "accuracy": auc - 0.05, "balanced_accuracy": auc - 0.05,
                             "auc_drop": clean - auc, "flip_rate": 0.0 if pert == "none" else 0.1 * (i + 1),
                             "mean_abs_change": 0.0 if pert == "none" else 0.05})
    folder = run_dir / "experiments" / "robustness" / "abc123"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "robustness.csv", index=False)
    (folder / "settings.json").write_text(json.dumps({"n_test": 200, "models": models, "combined_model": None}))
    (folder / "done.json").write_text(json.dumps({"finished": "2025-01-01T12:00:00+00:00"}))
    matrix = [{"train_on": a, "test_on": b, "in_domain": a == b, "n": 300, "roc_auc": 0.95 if a == b else 0.52,
               "accuracy": 0.9 if a == b else 0.5, "balanced_accuracy": 0.9 if a == b else 0.5, "threshold": 0.5,
               "n_train": 1000, "train_seconds": 10.0} for a in datasets for b in datasets]
    folder = run_dir / "experiments" / "crossdataset" / "def456"
    folder.mkdir(parents=True)
    pd.DataFrame(matrix).to_csv(folder / "matrix.csv", index=False)
    (folder / "settings.json").write_text(json.dumps({"model": "baseline_cnn", "spec": {"image_size": 64}}))
    (folder / "done.json").write_text(json.dumps({"finished": "2025-01-01T12:00:00+00:00"}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-artifacts")
    run_dir = write_synthetic_run(root)
    write_routed_ensemble(run_dir)
    write_verdict_policy(run_dir)
    add_experiments(run_dir, ["baseline_cnn", "mobilenet"], ["faces140k", "lfw_faceswap"])
    return run_dir


@pytest.fixture(scope="module")
def report_html(run_dir) -> str:
    return run_report.build_run_report(load_run(run_dir))


# --------------------------------------------------------------------------- the run report


def test_comparison_tables_equal_summary_csv(run_dir, report_html):
    summary = pd.read_csv(run_dir / "summary.csv")
    tables = {k: v for k, v in html_tables(report_html).items() if k.startswith("summary-")}
    assert set(tables) == {f"summary-{s}" for s in summary["scope"].unique()}
    for key, table in tables.items():
        scope = key.removeprefix("summary-")
        expected = summary[summary["scope"] == scope].set_index("model")
        assert sorted(table["model"]) == sorted(expected.index)
        for _, row in table.iterrows():
            for col in expected.columns.drop("scope"):
                want, got = expected.loc[row["model"], col], cell_number(row[col])
                if pd.isna(want):
                    assert np.isnan(got), (scope, row["model"], col)
                else:
                    # cells are rounded for reading: 4 decimals, fewer for sizes and times (SUMMARY_DIGITS)
                    digits = run_report.SUMMARY_DIGITS.get(col, 4)
                    assert got == pytest.approx(want, abs=0.5 * 10 ** -digits + 1e-12), (scope, row["model"], col)
        band = evaluation.chance_auc_band(int(expected["n"].max()))
        above = [evaluation.above_chance(expected.loc[m, "roc_auc"], expected.loc[m, "n"]) for m in table["model"]]
        assert table["above chance"].tolist() == ["yes" if a else "no" for a in above]
        assert f"chance band 0.5 ± {band:.3f}" in report_html


def test_report_is_self_contained(report_html):
    # one inlined plotly.js, no external script, stylesheet, image or font
    assert report_html.count("<script>") >= 1
    big = [s for s in report_html.split("<script")[1:] if len(s) > 1_000_000]
    assert len(big) == 1, "plotly.js must be inlined exactly once"
    # outside plotly.js itself (whose code names URLs it never loads here; the browser test watches requests)
    page = report_html.replace(big[0], "")
    for needle in ('src="http', "src='http", "<link", "@import", "url(", 'src="//', "cdn.plot.ly", "https://"):
        assert needle not in page, needle
    assert 'src="data:image/jpeg;base64,' in report_html
    assert report_html.count('class="plotly-graph-div"') >= 8


def test_report_sections_and_findings(run_dir, report_html):
    for anchor in ("data", "comparison", "calibration", "training", "robustness", "generalisation", "mistakes",
                   "cards", "reproduce"):
        assert f'id="{anchor}"' in report_html
    # data: counts and skipped files
    tables = html_tables(report_html)
    counts = tables["counts"].set_index("dataset")
    assert counts.loc["all datasets", "total"] == "112"
    assert "cannot decode image (truncated file)" in report_html
    # robustness: the page's own findings
    assert "Most robust: <strong>baseline_cnn</strong>" in report_html
    assert "<strong>mobilenet</strong> is inverted on" in report_html
    assert tables["robustness-drop"]["model"].tolist()[0] == "baseline_cnn"
    # generalisation: transfer_findings, bold rendered, text escaped
    assert "Trained on <strong>faces140k</strong> (AUC 0.950 on its own test split), it carries over to none" \
        in report_html
    # the verdict model is the routed ensemble; its operating point in words
    assert "The run's verdict model" in report_html and "<strong>ensemble_routed</strong>" in report_html
    assert "real photos are wrongly called fake" in report_html
    # the router of ensemble_routed: its test accuracy, per dataset
    preds = load_run(run_dir).predictions("ensemble_routed")
    test = preds[preds["split"] == "test"]
    share = (test["routed_to"] == test["dataset"]).mean()
    assert f"The router sent {100 * share:.1f}% of the {len(test)} test images" in report_html
    assert tables["router"]["dataset"].tolist() == ["faces140k", "lfw_faceswap"]
    # reproduce: config and versions
    assert tables["versions"]["package"].tolist()[:3] == ["tensorflow-cpu", "keras", "numpy"]
    assert "Config <code>synthetic</code> is not one of the repository" in report_html  # no configs/synthetic.toml


def test_model_card_sections(run_dir, report_html):
    for m in ("baseline_cnn", "mobilenet", "ensemble_routed"):
        assert f'id="card-{m.replace("_", "-")}"' in report_html or f'id="card-{m}"' in report_html
    for heading in ("Model details", "Intended use", "Out-of-scope uses", "Factors", "Metrics (test split)",
                    "Evaluation data", "Training data", "Operating point", "Robustness", "Where it fails", "Caveats"):
        assert report_html.count(f"<h4>{heading}</h4>") == 3, heading
    assert report_html.count("Not proof; never the sole basis for accusing a person.") == 3


def test_model_card_metrics_table_has_n_and_chance_band(run_dir):
    metrics = load_run(run_dir).metrics("baseline_cnn")
    table = model_card.metrics_table(metrics)
    assert table["dataset"].tolist() == ["all (pooled)", "faces140k", "lfw_faceswap"]
    for _, row in table.iterrows():
        assert row["chance ±"] == pytest.approx(evaluation.chance_auc_band(int(row["n"])))
        assert row["above chance"] == evaluation.above_chance(row["ROC-AUC"], int(row["n"]))
        scope = metrics["scopes"]["all" if row["dataset"] == "all (pooled)" else row["dataset"]]
        assert row["n"] == scope["n"]
        assert row["false-positive rate"] == pytest.approx(scope["at_threshold"]["fp"] / scope["n_real"])


def test_model_card_files(run_dir, tmp_path):
    paths = model_card.write_model_cards(load_run(run_dir), tmp_path / "cards")
    assert sorted(p.name for p in paths) == ["baseline_cnn.html", "ensemble_routed.html", "mobilenet.html"]
    text = (tmp_path / "cards" / "mobilenet.html").read_text()
    assert "Model card: mobilenet" in text and "<h4>Where it fails</h4>" in text
    assert "<script" not in text  # a card has no figure: no plotly.js needed
    assert not list((tmp_path / "cards").glob(".*tmp"))


def test_report_builds_without_tensorflow(run_dir, tmp_path):
    out = tmp_path / "r.html"
    code = ("import sys; from pipeline.results import load_run; from pipeline.report import write_run_report; "
            f"write_run_report(load_run({str(run_dir)!r}), {str(out)!r}); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
    assert out.stat().st_size > 1_000_000


def test_missing_images_and_experiments_are_named_not_fatal(tmp_path):
    run_dir = write_synthetic_run(tmp_path)
    for png in (tmp_path / "images" / "faces140k" / "real").glob("*.png"):
        png.unlink()
    text = run_report.build_run_report(load_run(run_dir))
    assert "missing or unreadable" in text
    assert "The run has no combined model" in text and 'id="router"' not in text
    assert "python -m pipeline experiment robustness --run" in text
    assert "python -m pipeline experiment crossdataset --run" in text


def test_text_from_the_run_is_escaped(tmp_path):
    run_dir = write_synthetic_run(tmp_path)
    skipped = pd.read_csv(run_dir / "skipped.csv")
    skipped.loc[0, "reason"] = "<script>alert(1)</script>"
    skipped.to_csv(run_dir / "skipped.csv", index=False)
    text = run_report.build_run_report(load_run(run_dir))
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# --------------------------------------------------------------------------- calibration and operating point


def test_reliability_of_calibrated_and_overconfident_scores():
    # 10 images at p=0.3 with 3 fakes, 10 at p=0.8 with 8 fakes: calibrated, ECE 0
    y = np.array([1] * 3 + [0] * 7 + [1] * 8 + [0] * 2)
    p = np.array([0.3] * 10 + [0.8] * 10)
    r = reliability.reliability("m", y, p)
    assert r.ece == pytest.approx(0.0)
    assert r.count == [10, 10] and r.mean_predicted == [0.3, 0.8] and r.fraction_fake == [0.3, 0.8]
    assert r.brier == pytest.approx(np.mean((p - y) ** 2))
    # every real image at p=0.9: off by 0.9
    r = reliability.reliability("m", np.zeros(5, int), np.full(5, 0.9))
    assert r.ece == pytest.approx(0.9)
    with pytest.raises(ValueError, match="0..1"):
        reliability.reliability("m", np.zeros(2, int), np.array([0.2, 1.5]))
    assert reliability.reliability("m", np.zeros(0, int), np.zeros(0)).ece is None


def test_operating_point_in_words():
    metrics = {"threshold": 0.42, "threshold_rule": "youden",
               "scopes": {"all": {"n": 2000, "n_real": 1000, "n_fake": 1000,
                                  "at_threshold": {"fp": 34, "tp": 912, "tn": 966, "fn": 88}}}}
    op = reliability.operating_point("m", metrics)
    assert op.fpr == pytest.approx(0.034) and op.tpr == pytest.approx(0.912)
    text = op.in_words()
    assert "threshold 0.420" in text and "Youden" in text
    assert "about 34 in 1,000 real photos are wrongly called fake (34 of 1000)" in text
    assert "about 912 in 1,000 fakes are caught" in text
    assert reliability.per_thousand(0, 50) == "no"
    assert reliability.per_thousand(1, 5000) == "about 0.2 in 1,000"
    assert reliability.operating_point("m", metrics, "nope") is None


def test_worst_mistakes_are_the_surest_errors():
    preds = pd.DataFrame({"path": list("abcdefgh"), "dataset": "d", "y": [0, 0, 0, 0, 1, 1, 1, 1],
                          "p_fake": [0.9, 0.6, 0.2, 0.99, 0.1, 0.45, 0.8, 0.05]})
    fp, fn = run_report.worst_mistakes(preds, 0.5, k=2)
    assert fp["path"].tolist() == ["d", "a"]  # real, highest P(fake) first
    assert fn["path"].tolist() == ["h", "e"]  # fake, lowest P(fake) first


def test_number_and_inline_markdown():
    assert render.number(None) == "n/a" and render.number(float("nan")) == "n/a"
    assert render.number(12345) == "12,345" and render.number(0.123456) == "0.1235"
    assert render.number(True) == "yes"
    assert str(render.inline_markdown("**a<b** and `c` *d*")) == "<strong>a&lt;b</strong> and <code>c</code> <em>d</em>"


def test_model_card_names_where_a_model_fails(run_dir):
    rd = run_data.load(load_run(run_dir))
    m = dict(rd.metrics["baseline_cnn"])
    scopes = {k: dict(v) for k, v in m["scopes"].items()}
    n = 400
    scopes["all"] = {**scopes["all"], "n": n, "n_real": n // 2, "n_fake": n // 2, "roc_auc": 0.3,
                     "at_threshold": {**scopes["all"]["at_threshold"], "tp": 0, "fn": n // 2, "fp": 0, "tn": n // 2}}
    rd.metrics["baseline_cnn"] = {**m, "scopes": scopes}
    failures = model_card.card(rd, "baseline_cnn")["failures"]
    assert failures[0].startswith("Pooled over all datasets it ranks **the wrong way round** (ROC-AUC 0.300 on 400")
    assert "At its threshold it calls every test image real: it catches **no fake at all**." in failures
    calm = model_card.card(run_data.load(load_run(run_dir)), "mobilenet")["failures"]
    assert not any("wrong way round" in f or "no fake at all" in f for f in calm)


def test_a_robustness_table_of_an_older_format_is_named_not_fatal(tmp_path):
    run_dir = write_synthetic_run(tmp_path)
    add_experiments(run_dir, ["baseline_cnn", "mobilenet"], ["faces140k", "lfw_faceswap"])
    table = run_dir / "experiments" / "robustness" / "abc123" / "robustness.csv"
    pd.read_csv(table).drop(columns=["n"]).to_csv(table, index=False)
    text = run_report.build_run_report(load_run(run_dir))
    assert "lacks the column(s) n (written by an older pipeline)" in text
    assert text.count("The run's robustness sweep cannot be read: The run's robustness table lacks") == 2


def test_model_card_of_a_specialist_says_which_failures_are_outside_its_training(tmp_path):
    run_dir = write_synthetic_run(tmp_path)
    run_json = json.loads((run_dir / "run.json").read_text())
    for m in run_json["config"]["models"]:
        if m["name"] == "baseline_cnn":
            m["datasets"] = ["faces140k"]
    (run_dir / "run.json").write_text(json.dumps(run_json))
    card = model_card.card(run_data.load(load_run(run_dir)), "baseline_cnn")
    assert "A specialist: trained on faces140k only." in card["training_data"]
    unseen = [f for f in card["failures"] if "not trained on" in f]
    assert unseen and all(f.startswith("On **lfw_faceswap**") for f in unseen)


def test_run_report_shows_the_three_way_verdict(run_dir, report_html):
    from pipeline import verdict

    expected = load_run(run_dir).verdict_table().set_index("scope")
    shown = html_tables(report_html)["verdict"].set_index("scope")
    assert list(shown.index) == list(expected.index)
    for scope in expected.index:
        assert int(shown.loc[scope, "n"]) == expected.loc[scope, "n"]
        assert float(shown.loc[scope, "coverage"]) == pytest.approx(expected.loc[scope, "coverage"], abs=1e-3)
    import html as html_mod

    assert verdict.error_rate_words(load_run(run_dir).verdict_policy()) in html_mod.unescape(report_html)


def test_a_run_fitted_on_old_clip_embeddings_says_so_at_the_top(tmp_path, report_html):
    """A run whose CLIP heads were fitted before the int8 fix (no clip_embeddings in run.json) carries the
    same warning as `info` and the dashboard; a run without CLIP models carries none."""
    run_dir = write_synthetic_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["config"]["models"].append({"name": "clip", "kind": "clip_linear"})
    meta.pop("clip_embeddings", None)
    (run_dir / "run.json").write_text(json.dumps(meta))
    text = run_report.build_run_report(load_run(run_dir))
    assert "<strong>Warning:</strong> its CLIP models (clip) were fitted on CLIP embeddings made before" in text
    assert "python -m pipeline train --config" in text
    assert "<strong>Warning:</strong>" not in report_html

"""The check report (pipeline.report.check_report) and the CLI: ``report`` and ``predict --report``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, face_like
from synthetic_run import write_synthetic_run
from test_report import html_tables

from pipeline import checking
from pipeline.__main__ import main
from pipeline.report import check_report

SCORES = [{"model": "a", "p_fake": 0.8, "threshold": 0.5, "verdict": "fake"},
          {"model": "b", "p_fake": 0.3, "threshold": 0.4, "verdict": "real"}]
COMBINED = {"model": "ensemble_routed", "p_fake": 0.62, "threshold": 0.6, "verdict": "fake",
            "members": {"a": 0.8, "b": 0.3}, "looks_like": {"faces140k": 0.9, "lfw_faceswap": 0.1}}


def checks() -> list[checking.FileCheck]:
    rgb = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    one = checking.FaceCheck(1, (50, 40, 120, 150), 0.99, rgb[40:190, 50:170], SCORES, checking.ensemble(SCORES),
                             COMBINED)
    two = checking.FaceCheck(2, (250, 60, 100, 120), 0.95, rgb[60:180, 250:350], SCORES[1:],
                             checking.ensemble(SCORES[1:]))
    return [checking.FileCheck("photo <1>.jpg", rgb, faces=[one, two]),
            checking.FileCheck("bad.jpg", error="bad.jpg is not an image (it starts like a PDF document)")]


def test_check_report_verdicts_reasons_and_maps():
    overlay = np.full((64, 64, 3), 200, np.uint8)
    text = check_report.check_report_html(checks(), explanations={("photo <1>.jpg", 1): [("a: Grad-CAM", overlay)]})
    summary = html_tables(text)["check-summary"]
    assert summary.values.tolist() == [
        ["photo <1>.jpg", "face 1", "fake", "0.6200", "ensemble_routed"],
        ["photo <1>.jpg", "face 2", "real", f"{checking.ensemble(SCORES[1:])['p_fake']:.4f}",
         "the models' log-odds vote"],
        ["bad.jpg", "", "n/a", "n/a", "could not be checked"]]
    assert "photo &lt;1&gt;.jpg" in text and "photo <1>" not in text  # names are escaped
    # reasons: the deciding score against its threshold, borderline, the router, the vote and the disagreement
    assert "gives P(fake) 0.620, at or above its threshold 0.600: <strong>fake</strong>" in text
    assert "a borderline case" in text
    assert "faces140k 90%, lfw_faceswap 10%" in text
    assert "1 of 2 model(s) say fake" in text
    assert "One model only (b, threshold 0.400)" in text
    assert "a: Grad-CAM" in text
    assert text.count('src="data:image/jpeg;base64,') == 1 + 2 + 1  # photo, two crops, one map
    assert "could not be checked: bad.jpg is not an image" in text.lower()
    assert "not proof" in text and "<script" not in text


def test_reasons_say_when_the_combined_model_and_the_vote_disagree():
    combined = {**COMBINED, "p_fake": 0.9, "verdict": "fake"}
    face = checking.FaceCheck(1, None, None, np.zeros((8, 8, 3), np.uint8), SCORES[1:],
                              checking.ensemble(SCORES[1:]), combined)
    out = check_report.reasons(face)
    assert out[-1] == "The combined model and the models' vote disagree: treat this verdict as uncertain."
    assert not any("borderline" in r for r in out)


def test_reasons_of_a_face_without_a_combined_model():
    face = checking.FaceCheck(0, None, None, np.zeros((8, 8, 3), np.uint8), SCORES, checking.ensemble(SCORES))
    out = check_report.reasons(face)
    assert out == [f"1 of 2 model(s) say fake at their own thresholds; their log-odds vote gives P(fake) "
                   f"{face.ensemble['p_fake']:.3f}: **{face.ensemble['verdict']}**."]


# --------------------------------------------------------------------------- the command line


def test_report_command_writes_report_and_cards_without_tensorflow(tmp_path):
    run_dir = write_synthetic_run(tmp_path / "art")
    out, cards = tmp_path / "out" / "r.html", tmp_path / "cards"
    code = ("import sys; from pipeline.__main__ import main; "
            f"rc = main(['report', '--artifacts', {str(tmp_path / 'art')!r}, '--run', {run_dir.name!r}, "
            f"'--out', {str(out)!r}, '--model-cards', {str(cards)!r}, '--quiet']); "
            "print(rc, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "False"]
    assert f"wrote {out}" in done.stdout and "wrote 2 model card(s)" in done.stdout
    assert out.stat().st_size > 1_000_000
    assert sorted(p.name for p in cards.iterdir()) == ["baseline_cnn.html", "mobilenet.html"]


def test_report_command_without_a_run_says_what_to_do(tmp_path, capsys):
    assert main(["report", "--artifacts", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "python -m pipeline train" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_report_command_to_an_unwritable_place_is_a_clear_error(tmp_path, capsys):
    run_dir = write_synthetic_run(tmp_path / "art")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code = main(["report", "--artifacts", str(tmp_path / "art"), "--run", run_dir.name, "--out",
                 str(blocker / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write {blocker / 'r.html'}" in err and "Traceback" not in err


@pytest.mark.slow
def test_predict_report(tiny_run, tmp_path, capsys):
    rng = np.random.default_rng(4)
    good = tmp_path / "face.png"
    Image.fromarray(face_like("fake", rng, 64)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    report = tmp_path / "check.html"
    code = main(["predict", str(good), str(bad), "--artifacts", str(Path(tiny_run).parent), "--run",
                 Path(tiny_run).name, "--explain", "gradcam", "--out", str(tmp_path / "maps"), "--report",
                 str(report), "--quiet", "--whole-image"])
    captured = capsys.readouterr()
    assert code == 1  # one file could not be scored
    assert f"wrote {report}" in captured.err
    text = report.read_text()
    rows = html_tables(text)["check-summary"]
    assert rows["file"].tolist() == [good.name, bad.name]
    assert rows["verdict"].iloc[0] in ("real", "fake", "unsure") and rows["by"].iloc[1] == "could not be checked"
    assert "Explanation maps" in text and "baseline_cnn: gradcam" in text
    assert "<script" not in text


def test_check_report_shows_the_three_way_verdict_and_the_file_facts():
    from pipeline import forensics, verdict

    face = checking.FaceCheck(1, (0, 0, 8, 8), 0.99, np.zeros((8, 8, 3), np.uint8), SCORES, checking.ensemble(SCORES),
                              COMBINED, {"model": "ensemble_routed", "verdict": "unsure", "p_fake": 0.41,
                                         "p_raw": 0.6, "threshold": 0.5, "reasons": [verdict.BAND_REASON],
                                         "unstable_under": [], "headline": "Can't tell: " + verdict.BAND_REASON})
    check = checking.FileCheck(name="x.jpg", rgb=np.zeros((8, 8, 3), np.uint8), faces=[face])
    import html as html_mod

    html = check_report.check_report_html([check], forensic_facts={"x.jpg": ["**JPEG** quality ~90"]})
    text = html_mod.unescape(html)
    assert "Can't tell: " + verdict.BAND_REASON in text and f"Unsure because {verdict.BAND_REASON}." in text
    assert "What the file itself says" in text and "<strong>JPEG</strong> quality ~90" in text
    assert forensics.MAGNIFYING_GLASS in text
    rows = html_tables(html)["check-summary"]
    assert rows["verdict"].tolist() == ["unsure"]

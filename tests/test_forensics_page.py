"""The Forensics page and the compact forensic panel through AppTest; the panel's figures directly."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import forensic_samples as fs
from pipeline import forensics, results
from synthetic_run import write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    write_synthetic_run(root, seed=1, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    return root


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success", "error", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_forensics_page_on_a_test_image(monkeypatch, artifacts):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(artifacts))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/forensics.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Forensics"
    text = _texts(at)
    assert forensics.MAGNIFYING_GLASS in text
    for view in ("ela", "noise", "noise_variance", "spectrum", "radial", "metadata", "provenance"):
        assert forensics.CAPTIONS[view] in text, view
    assert "not a JPEG" in text  # the synthetic run's images are PNGs
    assert "No Content Credentials" in text and "not downloaded" in text
    files = at.selectbox(key="forensics_file").options
    assert files and all(f.endswith(".png") for f in files)
    at.selectbox(key="forensics_file").set_value(files[-1])
    at.slider(key="forensics_quality").set_value(70).run()
    assert not at.exception
    assert "Error level analysis (quality 70)" in _texts(at)
    uploader_page = at.radio(key="forensics_source").set_value("Upload a photo").run()
    assert not uploader_page.exception and "Pick a photo to inspect" in _texts(uploader_page)


def _panel_script(path: str) -> None:
    from pathlib import Path

    from dashboard.forensic_panel import render_panel

    for i, p in enumerate(sorted(Path(path).iterdir())):
        render_panel(p.name, p.read_bytes(), key=f"panel{i}")


def test_render_panel_for_good_signed_and_bad_files(tmp_path):
    photo = fs.texture(3, 128)
    (tmp_path / "a_signed.jpg").write_bytes(fs.c2pa_signed(fs.jpeg(photo, 90))[0])
    thumb = fs.jpeg(255 - photo[::4, ::4], 90)
    (tmp_path / "b_thumb.jpg").write_bytes(fs.jpeg(photo, 90, exif=fs.exif_with_thumbnail(thumb)))
    (tmp_path / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    at = AppTest.from_function(_panel_script, args=(str(tmp_path),), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.label for e in at.expander] == [f"Forensic bench: {n}" for n in ("a_signed.jpg", "b_thumb.jpg", "c_broken.jpg")]
    # lazy expanders: nothing is inspected or drawn until one is opened
    assert forensics.MAGNIFYING_GLASS not in _texts(at) and not at.error
    for i in range(3):
        at.session_state[f"panel{i}_open"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert "validation: Valid" in text and "Declared AI generation" in text
    assert "**disagrees** with the image" in text
    assert "c_broken.jpg is truncated or corrupt" in at.error[0].value
    assert forensics.CAPTIONS["ela"] in text and forensics.MAGNIFYING_GLASS in text


def test_panel_figures():
    from dashboard import forensic_panel

    r = forensics.inspect_image(fs.jpeg(fs.decode(fs.jpeg(fs.texture(2), 60)), 90))
    fig = forensic_panel.ghost_figure(r.jpeg.ghosts, r.jpeg.quality)
    assert list(fig.data[0].x) == r.jpeg.ghosts.qualities
    assert any("ghost 6" in (a.text or "") for a in fig.layout.annotations)
    fig = forensic_panel.radial_spectrum_figure(r.spectrum)
    assert len(fig.data[0].y) == len(r.spectrum.frequency) and max(fig.data[0].x) <= 0.5
    frame = forensic_panel.quantization_frame(r.jpeg.quantization[0])
    assert frame.shape == (8, 8) and int(frame.iloc[0, 0]) == r.jpeg.quantization[0][0]
    lines = forensics.fact_lines(r)
    assert any("quality ~90" in x for x in lines) and any("compressed at least twice" in x for x in lines)


def test_overview_shows_the_shortcut_audit(monkeypatch, artifacts):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(artifacts))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "File shortcut audit" in [s.value for s in at.subheader]
    run = results.load_run(None, artifacts)
    verdicts = [e.value for e in at.success] + [e.value for e in at.warning] + [e.value for e in at.error]
    for dataset in run.manifest()["dataset"].unique():
        assert any(v.startswith(f"{dataset}: ") or f"{dataset} (0." in v for v in verdicts), dataset
    table = next(d.value for d in at.dataframe if "roc_auc" in d.value.columns)
    assert set(table["dataset"]) == set(run.manifest()["dataset"])
    at.selectbox(key="overview_audit_fact").set_value("jpeg_table").run()
    assert not at.exception


def test_audit_figures():
    from dashboard import audit_panel
    from pipeline.forensics import audit

    facts = pd.DataFrame({"dataset": ["d"] * 4, "label": ["real", "real", "fake", "fake"], "y": [0, 0, 1, 1],
                          "path": list("abcd"), "format": ["JPEG"] * 4, "jpeg_quality_text": ["90", "90", "95", "95"],
                          "jpeg_table": ["t1", "t1", "t2", "t2"], "subsampling": ["4:2:0"] * 4,
                          "progressive": [False] * 4, "size": ["8x8"] * 4, "has_exif": [False] * 4})
    fig = audit_panel.distribution_figure(audit.distributions(facts), "jpeg_quality")
    by_name = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert by_name["real"] == {"d · 90": 1.0, "d · 95": 0.0} and by_name["fake"]["d · 95"] == 1.0

"""The Video page (AppTest) and its figures (pipeline.video.figures), on a tiny trained run."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from pipeline import results
from pipeline.video import decode, figures as vfig, scoring
from video_clips import face_frames, shared_faces, write_clip

APP = str(REPO / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    faces = shared_faces(2)
    if faces is None:
        pytest.skip("../shared/data/faces140k not found (a clone without the shared face images)")
    root = tmp_path_factory.mktemp("page_clips")
    write_clip(root / "two_faces.mp4", face_frames(faces, n_frames=12, step=3), fps=6)
    (root / "sub").mkdir()
    (root / "sub" / "broken.mov").write_text("this is not a video")
    return root


@pytest.fixture(scope="module")
def result(tiny_run, clips):
    from pipeline import detectors

    models = detectors.load_many(tiny_run)
    return scoring.analyse_video(clips / "two_faces.mp4", models, None, sampling=decode.Sampling(n_frames=6))


def test_timeline_figure(result):
    fig = vfig.timeline_figure(result, selected_time=result.frames[2].time)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == len(result.tracks) == 2
    for trace, tr in zip(lines, result.tracks):
        assert list(trace.x) == pytest.approx(tr.times) and list(trace.y) == pytest.approx(tr.p_fakes)
    rings = next(t for t in fig.data if t.name == "most suspicious frames")
    assert len(rings.x) == len(result.deciding_frames)
    shapes = fig.layout.shapes
    assert any(s.type == "line" and s.y0 == pytest.approx(result.threshold) for s in shapes)  # threshold
    assert any(s.type == "rect" and s.y0 == pytest.approx(result.threshold - result.band) for s in shapes)  # band
    assert any(s.type == "line" and s.x0 == pytest.approx(result.frames[2].time) for s in shapes)  # scrubber
    assert tuple(fig.layout.xaxis.range) == pytest.approx((0, result.info.duration))


def test_frame_with_boxes_and_track_table(result):
    import copy

    drawn = vfig.frame_with_boxes(result, 0)
    assert drawn.shape == result.frames[0].rgb.shape and not np.array_equal(drawn, result.frames[0].rgb)
    small = scoring.shrink_frames(copy.deepcopy(result), 320)  # 640x360 -> 320x180, boxes follow
    assert small.frames[0].rgb.shape == (180, 320, 3) and small.frames[0].scale == pytest.approx(0.5)
    drawn_small = vfig.frame_with_boxes(small, 0)
    boxes = [f.detection.crop_box for tr in result.tracks for f in tr.faces if f.detection.frame_index == 0]
    changed = np.argwhere((drawn_small != small.frames[0].rgb).any(axis=2))
    assert abs(changed[:, 1].min() - min(b[0] for b in boxes) / 2) <= 2  # left edge of the leftmost box, halved
    assert abs(changed[:, 0].max() - max(b[1] + b[3] for b in boxes) / 2) <= 2  # bottom edge of the lowest box
    table = vfig.track_table(result)
    assert table["track"].tolist() == [t.track_id for t in result.tracks]
    assert table["deciding"].sum() == 1 and {"baseline_cnn", "custom_cnn"} <= set(table.columns)


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "success", "error")
                     for e in getattr(at, kind))


def test_video_page_checks_a_clip_from_a_folder(monkeypatch, tiny_run, clips):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tiny_run.parent))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/video.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Check a video"
    at.radio(key="video_source").set_value("Pick from a folder").run()
    at.text_input(key="video_folder").set_value(str(clips)).run()
    assert at.selectbox(key="video_pick").options == ["sub/broken.mov", "two_faces.mp4"]
    assert at.selectbox(key="video_pick").value is None and "Upload a clip or pick one" in _texts(at)  # nothing runs
    at.selectbox(key="video_pick").set_value(clips / "two_faces.mp4")
    at.slider(key="video_n").set_value(6).run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert any(w in text for w in ("**Likely fake**", "**Likely real**", "**Unsure**")) and "face track" in text
    assert "6 frames sampled" in text and "2 tracks" in text
    scrub = at.select_slider(key="video_scrub")
    assert len(scrub.options) == 6
    scrub.set_value(3).run()
    assert not at.exception
    assert "Sampled frame 4 of 6 at" in _texts(at) and "2 faces" in _texts(at)
    # a broken clip: its message, nothing else breaks
    at.selectbox(key="video_pick").set_value(clips / "sub" / "broken.mov").run()
    assert not at.exception
    assert any("plain text" in e.value for e in at.error)

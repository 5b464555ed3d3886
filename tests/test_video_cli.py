"""``python -m pipeline predict CLIP`` and ``python -m pipeline evaluate --data VIDEO_FOLDER``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.video import evaluate as video_eval
from video_clips import blank_frames, face_frames, shared_faces, shared_videos, write_clip


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    """real/ (two one-face clips, one faceless clip) and fake/ (two one-face clips, a text file named .mp4)."""
    reals, fakes = shared_faces(2, "faces140k/real"), shared_faces(2, "faces140k/fake")
    if reals is None or fakes is None:
        pytest.skip("../shared/data/faces140k not found (a clone without the shared face images)")
    root = tmp_path_factory.mktemp("videos")
    for label, faces in (("real", reals), ("fake", fakes)):
        (root / label).mkdir()
        for i, face in enumerate(faces):
            write_clip(root / label / f"{label}{i}.mp4",
                       face_frames([face], n_frames=8, size=(240, 320), side=120, spots=[(60, 60)]), fps=4)
    write_clip(root / "real" / "no_face.webm", blank_frames(8, size=(64, 96)), fps=4)
    (root / "fake" / "broken.mp4").write_text("not a video at all")
    return root


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_predict_prints_one_record_per_track_and_one_per_video(tiny_run, video_folder, capsys):
    clips = [str(video_folder / "real" / "real0.mp4"), str(video_folder / "fake" / "broken.mp4")]
    code = main(["predict", *clips, "--run", str(tiny_run), "--frames", "4", "--quiet"])
    records = _lines(capsys.readouterr().out)
    assert code == 1  # one clip could not be read
    tracks = [r for r in records if r["kind"] == "track"]
    videos = [r for r in records if r["kind"] == "video"]
    assert [v["file"] for v in videos] == clips
    assert len(tracks) == 1 and tracks[0]["file"] == clips[0] and tracks[0]["n_faces"] == 4
    assert set(tracks[0]["model_scores"]) == {"baseline_cnn", "custom_cnn"}
    ok, bad = videos
    assert ok["verdict"] in ("real", "fake", "unsure") and ok["deciding_track"] == tracks[0]["track"]
    assert ok["score"] == pytest.approx(np.mean(tracks[0]["p_fake"]), abs=1e-5)
    assert ok["sampled_frames"] == 4 and len(ok["deciding_frames"]) == 3
    assert "plain text" in bad["error"]


def test_predict_mixes_images_and_videos_and_takes_the_rule(tiny_run, video_folder, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    clip = str(video_folder / "fake" / "fake1.mp4")
    code = main(["predict", str(tmp_path / "photo.png"), clip, "--run", str(tiny_run), "--every", "0.5",
                 "--rule", "max", "--quiet"])
    records = _lines(capsys.readouterr().out)
    assert code == 0
    assert {r["file"] for r in records if "kind" not in r} == {str(tmp_path / "photo.png")}  # image records as before
    video = next(r for r in records if r.get("kind") == "video")
    track = next(r for r in records if r.get("kind") == "track")
    assert video["rule"] == "max" and video["sampled_frames"] == 4  # 2 s clip, one frame every 0.5 s
    assert track["score"] == pytest.approx(max(track["p_fake"]), abs=1e-6)


def test_evaluate_a_labelled_folder_of_videos(tiny_run, video_folder, capsys):
    code = main(["evaluate", "--data", str(video_folder), "--run", str(tiny_run), "--frames", "4", "--quiet", "--json"])
    assert code == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["n_videos"] == 6 and report["n_no_face"] == 1 and report["n_errors"] == 1
    for name in ("default", "deepfakebench"):
        m = report["conventions"][name]
        assert m["n"] == 4 and m["n_real"] == 2 and m["n_fake"] == 2
        assert 0 <= m["roc_auc"] <= 1 and 0 <= m["accuracy"] <= 1 and m["recall_real"] is not None
    written = list((tiny_run / "evaluations").glob("videos-*"))
    assert written and (written[0] / "videos.csv").is_file() and (written[0] / "report.json").is_file()
    code = main(["evaluate", "--data", str(video_folder), "--run", str(tiny_run), "--frames", "4", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "deepfakebench" in out and "roc_auc" in out and "left out" in out and "broken.mp4" in out


def test_evaluate_refuses_a_mix_of_image_and_video_folders(tiny_run, video_folder, synthetic_data, capsys):
    code = main(["evaluate", "--data", str(video_folder), "--data", str(synthetic_data / "alpha"),
                 "--run", str(tiny_run)])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_bad_video_options_are_refused(tiny_run, video_folder, capsys):
    with pytest.raises(SystemExit):
        main(["predict", str(video_folder / "real" / "real0.mp4"), "--face-confidence", "2"])
    assert "probability" in capsys.readouterr().err
    code = main(["predict", str(video_folder / "real" / "real0.mp4"), "--run", str(tiny_run), "--every", "0",
                 "--quiet"])
    (record,) = _lines(capsys.readouterr().out)
    assert code == 1 and "every_seconds must be a positive number" in record["error"]


def test_metrics_match_sklearn_definitions():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.7, 0.4, 0.9])
    m = video_eval.metrics(y, s, 0.5)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["recall_real"] == pytest.approx(1 / 2) and m["recall_fake"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    one_class = video_eval.metrics(np.array([1, 1]), np.array([0.2, 0.8]), 0.5)
    assert one_class["roc_auc"] is None and one_class["recall_real"] is None


def test_find_videos(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        video_eval.find_videos(tmp_path / "missing")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="no labelled video"):
        video_eval.find_videos(tmp_path)
    (tmp_path / "ai").mkdir()
    (tmp_path / "ai" / "b.MKV").write_bytes(b"x")
    found = video_eval.find_videos(tmp_path)
    assert found["label"].tolist() == ["fake"] and found["y"].tolist() == [1]


def test_evaluate_on_the_shared_videos(tiny_run, capsys):
    if not shared_videos():
        pytest.skip("../shared/videos not found (a clone without the shared clips)")
    from video_clips import SHARED_VIDEOS

    code = main(["evaluate", "--data", str(SHARED_VIDEOS), "--run", str(tiny_run), "--frames", "2", "--quiet",
                 "--json"])
    (report,) = json.loads(capsys.readouterr().out)
    assert code == 0 and report["n_videos"] == 11 and report["n_errors"] == 0

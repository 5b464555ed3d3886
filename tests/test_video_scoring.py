"""pipeline.video.scoring: per-face scores through the run's models, per-track aggregates, the
three-way video verdict, and the bad clips that must give a message instead of breaking."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.video import decode, scoring
from video_clips import blank_frames, face_frames, shared_faces, shared_videos, write_clip


@pytest.fixture(scope="module")
def two_face_clip(tmp_path_factory):
    faces = shared_faces(2)
    if faces is None:
        pytest.skip("../shared/data/faces140k not found (a clone without the shared face images)")
    folder = tmp_path_factory.mktemp("clips")
    return write_clip(folder / "two_faces.mp4", face_frames(faces, n_frames=16, step=3), fps=8)


@pytest.fixture(scope="module")
def run_models(tiny_run):
    from pipeline import detectors
    from pipeline.detectors import combined as ensemble

    models = detectors.load_many(tiny_run)
    return models, ensemble.load_combiner(tiny_run, keras_models=models)


def test_aggregation_rules():
    p = [0.1, 0.2, 0.3, 0.9]
    assert scoring.aggregate(p, "mean") == pytest.approx(0.375)
    assert scoring.aggregate(p, "max") == 0.9
    assert scoring.aggregate(p, "p90") == pytest.approx(np.percentile(p, 90))
    with pytest.raises(ValueError):
        scoring.aggregate(p, "median")
    with pytest.raises(ValueError):
        scoring.aggregate([], "mean")


@pytest.mark.parametrize("p, n, expected", [
    (0.80, 5, "fake"), (0.60, 5, "fake"), (0.59, 5, "unsure"), (0.41, 5, "unsure"), (0.40, 5, "unsure"),
    (0.39, 5, "real"), (0.95, 2, "unsure"), (None, 0, "unsure")])
def test_three_way_band_and_too_few_faces(p, n, expected):
    verdict, reason = scoring.three_way(p, 0.5, n, band=0.1, min_faces=3)
    assert verdict == expected and reason


def test_score_faces_gives_every_model_and_the_verdict_model(run_models):
    models, combiner = run_models
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (40 + 10 * i, 40 + 10 * i, 3), dtype=np.uint8) for i in range(3)]
    records = scoring.score_faces(crops, models, combiner)
    assert len(records) == 3
    for rec in records:
        assert [r["model"] for r in rec["models"]] == list(models)
        assert all(0 <= r["p_fake"] <= 1 for r in rec["models"])
        v = rec["verdict"]
        assert 0 <= v["p_fake"] <= 1 and v["verdict"] == ("fake" if v["p_fake"] >= v["threshold"] else "real")
        assert v["model"] == (combiner.name if combiner is not None else scoring.VOTE_NAME)
    assert scoring.score_faces([], models, combiner) == []


def test_a_clip_with_two_faces_scored_end_to_end(two_face_clip, run_models):
    models, combiner = run_models
    seen = []
    res = scoring.analyse_video(two_face_clip, models, combiner, sampling=decode.Sampling(n_frames=8),
                                progress=lambda stage, done, total: seen.append(stage))
    assert res.ok and len(res.frames) == 8 and len(res.tracks) == 2
    assert {"decoding frames", "finding faces", "scoring faces"} <= set(seen)
    for t in res.tracks:
        assert len(t.faces) == 8
        assert t.score == pytest.approx(np.mean(t.p_fakes))
        assert set(t.model_scores) == set(models)
        assert t.verdict == scoring.three_way(t.score, res.threshold, len(t.faces))[0]
    deciding = res.track(res.deciding_track)
    assert deciding.score == max(t.score for t in res.tracks)
    assert res.verdict == deciding.verdict and res.deciding_frames == deciding.top_frames
    assert res.frame_mean_score is not None and 0 <= res.frame_mean_score <= 1
    tracks, video = scoring.track_records(res), scoring.video_record(res)
    json.dumps(tracks), json.dumps(video)  # JSON-ready
    assert video["n_tracks"] == 2 and video["n_faces"] == 16 and video["deciding_track"] == res.deciding_track
    assert scoring.verdict_text(res).startswith({"fake": "**Likely fake**", "real": "**Likely real**", "unsure": "**Unsure**"}[res.verdict])


def test_the_most_suspicious_track_decides(two_face_clip, monkeypatch):
    """Scores made up per face position (left face 0.1, right face 0.9): the verdict must follow
    the right-hand track whatever the rule, and name its frames."""
    from pipeline.video import tracks as tracks_mod

    real_link = tracks_mod.link_tracks

    def link_left_first(per_frame, **kw):  # tracks in left-right order so that odd positions are the right face
        out = real_link(per_frame, **kw)
        return sorted(out, key=lambda t: t.detections[0].box[0])

    monkeypatch.setattr(scoring.tracks_mod, "link_tracks", link_left_first)
    monkeypatch.setattr(scoring, "score_faces", lambda crops, m, c=None, policy=None: [  # left track's faces come first
        {"models": [], "verdict": {"model": "m", "p_fake": p, "threshold": 0.5, "verdict": ""}}
        for p in [0.1] * (len(crops) // 2) + [0.9] * (len(crops) - len(crops) // 2)])
    for rule in scoring.RULES:
        res = scoring.analyse_video(two_face_clip, {}, None, sampling=decode.Sampling(n_frames=6), rule=rule)
        assert [round(t.score, 3) for t in res.tracks] == [0.1, 0.9]
        assert res.verdict == "fake" and res.deciding_track == res.tracks[1].track_id
        assert res.tracks[0].verdict == "real"
        assert len(res.deciding_frames) == scoring.TOP_FRAMES
        assert "**Likely fake**: face track 2" in scoring.verdict_text(res)


def test_a_clip_without_a_face(tmp_path, run_models):
    models, combiner = run_models
    clip = write_clip(tmp_path / "empty_room.mp4", blank_frames(20, size=(96, 128)), fps=10)
    res = scoring.analyse_video(clip, models, combiner, sampling=decode.Sampling(n_frames=5))
    assert res.ok and res.tracks == [] and res.verdict == "unsure"
    assert res.reason == "no face found in 5 sampled frames"
    assert "no face found in 5 sampled frames" in scoring.verdict_text(res)
    assert scoring.video_record(res)["n_faces"] == 0


def test_bad_clips_come_back_with_their_message(tmp_path, run_models):
    models, combiner = run_models
    (tmp_path / "fake.mp4").write_text("not a video")
    res = scoring.analyse_video(tmp_path / "fake.mp4", models, combiner)
    assert not res.ok and "plain text" in res.error
    assert scoring.video_record(res) == {"file": "fake.mp4", "kind": "video", "error": res.error}
    assert scoring.track_records(res) == []
    with pytest.raises(ValueError):
        scoring.analyse_video(tmp_path / "fake.mp4", models, combiner, rule="median")


def test_an_8k_clip_is_downscaled_before_detection(tmp_path, run_models):
    faces = shared_faces(1)
    if faces is None:
        pytest.skip("../shared/data/faces140k not found")
    from PIL import Image

    H, W = 4320, 7680
    luma = np.asarray(Image.fromarray(faces[0]).convert("L").resize((1400, 1400)))
    yuv = np.full((H * 3 // 2, W), 128, np.uint8)
    yuv[:H] = 200
    yuv[1400:2800, 3000:4400] = luma  # a grey face, 1400 px: 117 px after the 640 px downscale
    clip = write_clip(tmp_path / "8k.mp4", [yuv, yuv], fps=2)
    models, combiner = run_models
    res = scoring.analyse_video(clip, models, combiner, sampling=decode.Sampling(n_frames=2), min_faces=1)
    assert res.ok and (res.info.width, res.info.height) == (7680, 4320)
    assert max(res.frames[0].rgb.shape[:2]) == decode.DEFAULT_MAX_SIDE
    assert len(res.tracks) == 1 and len(res.tracks[0].faces) == 2
    x, y, w, h = res.tracks[0].faces[0].detection.box  # in the decoded frame's pixels (1/6 of 8K)
    assert 3000 / 6 <= x and x + w <= 4400 / 6 and 1400 / 6 <= y and y + h <= 2800 / 6  # inside the pasted photo
    assert w > 60


def test_shared_videos_each_get_a_verdict(run_models):
    clips = shared_videos()
    if not clips:
        pytest.skip("../shared/videos not found (a clone without the shared clips)")
    models, combiner = run_models
    for clip in clips[:2]:
        res = scoring.analyse_video(clip, models, combiner, sampling=decode.Sampling(n_frames=4))
        assert res.ok and res.tracks, f"{clip.name}: {res.reason}"
        assert res.verdict in ("real", "fake", "unsure")


def test_score_faces_gives_the_check_pages_verdict_with_a_combined_model(tmp_path_factory):
    """On a run with ensemble_routed, the video's per-face verdict is the very record the Check an image
    path gives for the same crop (pipeline.checking.check_image with the run's combiner)."""
    from conftest import assert_same_scores, write_images
    from pipeline import checking, config_load, detectors, runner
    from pipeline.detectors import combined as ensemble

    root = tmp_path_factory.mktemp("kinds")
    for dataset, n, seed in (("big", 16, 3), ("small", 10, 4)):
        write_images(root / dataset / "real", "real", n, seed, size=32)
        write_images(root / dataset / "fake", "fake", n, seed + 1000, size=32)
    cfg = config_load.from_dict({
        "name": "routed", "data": [str(root)], "seed": 1, "artifacts_dir": str(tmp_path_factory.mktemp("artifacts")),
        "training": {"batch_size": 16, "epochs": 1, "early_stopping_patience": 0},
        "models": [{"name": "baseline_cnn", "image_size": 16},
                   {"name": "small_only", "architecture": "baseline_cnn", "image_size": 16, "datasets": ["small"]}],
        "verdict": {"members": ["baseline_cnn", "small_only"]},
    })
    run_dir = runner.train_run(cfg, log=lambda _: None)
    models = detectors.load_many(run_dir)
    combiner = ensemble.load_combiner(run_dir, keras_models=models)
    assert combiner is not None and combiner.name == "ensemble_routed"
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(3)]
    records = scoring.score_faces(crops, models, combiner)
    for crop, rec in zip(crops, records):
        check = checking.check_image("crop.png", crop, models, crop_faces=False, combiner=combiner)
        # the same record; a batch of 3 and a batch of 1 may differ in the 7th digit
        assert_same_scores(rec["verdict"], check.faces[0].combined, where="verdict")
        assert_same_scores(rec["models"], check.faces[0].scores, where="models")

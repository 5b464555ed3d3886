"""pipeline.video.tracks: faces on sampled frames linked into one track per person."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.video import decode, tracks
from pipeline.video.tracks import Detection
from video_clips import face_frames, shared_faces, write_clip


def _det(frame: int, box, conf: float = 0.99) -> Detection:
    return Detection(frame, frame * 0.5, tuple(box), conf, np.zeros((4, 4, 3), np.uint8), tuple(box))


def test_iou():
    assert tracks.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert tracks.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert tracks.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_two_people_moving_apart_get_one_track_each():
    a = [(10 + 8 * k, 50, 60, 60) for k in range(6)]  # moving right
    b = [(300 - 8 * k, 60, 64, 64) for k in range(6)]  # moving left
    per_frame = [[_det(k, b[k]), _det(k, a[k])] for k in range(6)]
    out = tracks.link_tracks(per_frame)
    assert len(out) == 2
    assert sorted(len(t.detections) for t in out) == [6, 6]
    for t in out:
        xs = [d.box[0] for d in t.detections]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)  # each track follows one person


def test_gap_and_a_jump_too_far_for_overlap_are_bridged_by_the_fallback():
    per_frame = [[_det(0, (100, 100, 50, 50))], [], [], [_det(3, (140, 100, 50, 50))]]  # missed twice, moved 40 px
    out = tracks.link_tracks(per_frame)
    assert len(out) == 1 and out[0].frame_indices == [0, 3]
    # beyond max_gap a reappearing face starts a new track
    far = [[_det(0, (100, 100, 50, 50))]] + [[] for _ in range(6)] + [[_det(7, (100, 100, 50, 50))]]
    assert len(tracks.link_tracks(far, max_gap=2)) == 2
    # a face of another size elsewhere is a new person, not the old one
    other = [[_det(0, (100, 100, 50, 50))], [_det(1, (400, 300, 150, 150))]]
    assert len(tracks.link_tracks(other)) == 2


def test_no_detection_no_track():
    assert tracks.link_tracks([[], [], []]) == []


def test_two_real_faces_in_a_clip_make_two_tracks(tmp_path):
    faces = shared_faces(2)
    if faces is None:
        pytest.skip("../shared/data/faces140k not found (a clone without the shared face images)")
    clip = write_clip(tmp_path / "two.mp4", face_frames(faces, n_frames=12, step=4), fps=6)
    video = decode.sample_video(clip, decode.Sampling(n_frames=6))
    per_frame = tracks.detect_in_frames(video.frames)
    assert [len(d) for d in per_frame] == [2] * 6
    out = tracks.link_tracks(per_frame)
    assert len(out) == 2 and all(len(t.detections) == 6 for t in out)
    lefts = sorted(out, key=lambda t: t.detections[0].box[0])
    assert all(d.box[0] < 320 for d in lefts[0].detections) and all(d.box[0] >= 320 for d in lefts[1].detections)
    crop = out[0].detections[0].crop
    assert crop.ndim == 3 and crop.shape[0] == crop.shape[1] > 100  # squared, with margin, from the full frame


def test_one_person_in_a_shared_clip_is_one_track_across_missed_frames():
    """The DFDC clip of ../shared/videos: one person in a dark room, whose face MTCNN misses on most
    sampled frames (a 5-frame gap): still one track."""
    from video_clips import SHARED_VIDEOS

    clip = SHARED_VIDEOS / "fake" / "3d96706a7e6b.mp4"
    if not clip.is_file():
        pytest.skip("../shared/videos not found (a clone without the shared clips)")
    per_frame = tracks.detect_in_frames(decode.sample_video(clip).frames)
    seen = [i for i, d in enumerate(per_frame) if d]
    assert len(seen) >= 4 and max(b - a for a, b in zip(seen, seen[1:])) > 4  # a gap of more than 4 sampled frames
    out = tracks.link_tracks(per_frame)
    assert len(out) == 1 and out[0].frame_indices == seen

"""pipeline.video.decode: containers, rotation, variable frame rate, sampling and bad files (clips
made here with PyAV; the ../shared/videos clips when present)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.video import container, decode
from pipeline.video.container import VideoError
from pipeline.video.decode import Sampling
from video_clips import blank_frames, shared_videos, write_audio_only, write_clip, write_song_with_cover, yuv_frames


def _grey_frames(n: int, size=(32, 48)):
    for i in range(n):
        yield np.full((*size, 3), 10 + i * 10, np.uint8)


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".webm", ".avi", ".mkv"])
def test_every_container_is_read_by_time(tmp_path, ext):
    clip = write_clip(tmp_path / f"clip{ext}", _grey_frames(20), fps=10)
    assert decode.is_video_file(clip)
    video = decode.sample_video(clip, Sampling(n_frames=4))
    assert video.info.duration == pytest.approx(2.0, abs=0.15)
    assert video.info.fps == pytest.approx(10)
    assert [f.rgb.shape for f in video.frames] == [(32, 48, 3)] * 4
    # evenly: the centres of four 0.5 s slices, each met by the nearest frame (0.1 s apart; a tie takes
    # the earlier one); frame i has grey level 10 + 10 i
    assert video.requested == [0.25, 0.75, 1.25, 1.75]
    assert [f.time for f in video.frames] == pytest.approx([0.2, 0.7, 1.2, 1.7], abs=1e-6)
    for f in video.frames:
        assert abs(float(f.rgb.mean()) - (10 + 10 * round(f.time * 10))) < 4
    assert not video.notes


@pytest.mark.parametrize("angle", [90, -90, 180])
def test_rotation_metadata_gives_upright_frames(tmp_path, angle):
    upright = np.zeros((64, 48, 3), np.uint8)  # portrait: red top half, blue bottom half
    upright[:32, :, 0] = 255
    upright[32:, :, 2] = 255
    stored = np.ascontiguousarray(np.rot90(upright, k=-angle // 90))  # as the camera stored it
    clip = write_clip(tmp_path / "phone.mp4", [stored] * 6, rotation=angle)
    info = container.probe(clip)
    assert (info.width, info.height) == (48, 64) and info.rotation == angle % 360
    rgb = decode.sample_video(clip, Sampling(n_frames=1)).frames[0].rgb
    assert rgb.shape == (64, 48, 3)
    assert rgb[8, 24, 0] > 200 and rgb[8, 24, 2] < 50  # red on top
    assert rgb[56, 24, 2] > 200 and rgb[56, 24, 0] < 50  # blue below


def test_variable_frame_rate_uses_timestamps_not_indices(tmp_path):
    times = [0, 0.1, 0.2, 1.5, 1.6, 3.0, 3.05, 3.1, 5.0]
    frames = [np.full((32, 32, 3), 20 + i * 25, np.uint8) for i in range(len(times))]
    clip = write_clip(tmp_path / "vfr.mkv", frames, times=times)
    video = decode.sample_video(clip, times=[0.0, 1.4, 3.04, 4.9])
    # nearest frame by time: 0.0, 1.5, 3.05, 5.0 (frame indices 0, 3, 6, 8; a constant-rate guess would pick 0, 2, 5, 8)
    assert [f.time for f in video.frames] == pytest.approx([0.0, 1.5, 3.05, 5.0], abs=1e-3)
    assert [round((float(f.rgb.mean()) - 20) / 25) for f in video.frames] == [0, 3, 6, 8]


def test_sampling_rules():
    assert decode.sample_times(10.0, Sampling(n_frames=4)) == [1.25, 3.75, 6.25, 8.75]
    assert decode.sample_times(5.0, Sampling(every_seconds=2)) == [0.0, 2.0, 4.0]
    capped = decode.sample_times(600.0, Sampling(every_seconds=1, max_frames=8))
    assert len(capped) == 8 and capped[0] > 0 and capped[-1] < 600
    # the default costs a 10-minute clip what it costs a 30-second one
    assert len(decode.sample_times(600.0)) == len(decode.sample_times(30.0)) == decode.DEFAULT_FRAMES
    with pytest.raises(ValueError):
        Sampling(every_seconds=0)
    with pytest.raises(ValueError):
        Sampling(n_frames=0)
    with pytest.raises(ValueError):
        decode.sample_times(0.0)


def test_a_ten_minute_clip_costs_what_the_sample_needs(tmp_path):
    # 10 minutes at 1 frame/s, tiny frames, a keyframe every 10 s (phones: every 1-2 s)
    clip = write_clip(tmp_path / "long.mp4", blank_frames(600, size=(32, 48)), fps=1, gop=10)
    video = decode.sample_video(clip)
    assert video.info.duration == pytest.approx(600, abs=1.5)
    assert len(video.frames) == decode.DEFAULT_FRAMES
    assert [f.time for f in video.frames] == pytest.approx(video.requested, abs=0.51)
    assert video.decoded <= decode.DEFAULT_FRAMES * 12  # seeks: at most a keyframe interval per sample, not 600


def test_a_clip_shorter_than_the_sample_gives_each_frame_once(tmp_path):
    clip = write_clip(tmp_path / "short.mp4", _grey_frames(3), fps=10)
    video = decode.sample_video(clip, Sampling(n_frames=16))
    assert len(video.frames) == 3
    assert len({f.time for f in video.frames}) == 3


def test_huge_frames_are_downscaled_while_decoding(tmp_path):
    clip = write_clip(tmp_path / "8k.mp4", yuv_frames(2), fps=2)
    info = container.probe(clip)
    assert (info.width, info.height) == (7680, 4320)
    video = decode.sample_video(clip, Sampling(n_frames=2), max_side=640)
    assert video.frames[0].rgb.shape == (360, 640, 3)
    assert video.frames[0].scale == pytest.approx(1 / 12)


def _message(source, **kw) -> str:
    with pytest.raises(VideoError) as err:
        decode.sample_video(source, **kw)
    return str(err.value)


def test_bad_files_get_clear_messages(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty" in _message(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    assert "plain text" in _message(tmp_path / "notes.mp4")
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp_path / "photo.mp4", format="JPEG")
    msg = _message(tmp_path / "photo.mp4")
    assert "photo.mp4" in msg and "JPEG image" in msg
    assert "no such file" in _message(tmp_path / "missing.mp4")
    assert "folder" in _message(tmp_path)
    assert "audio only" in _message(write_audio_only(tmp_path / "sound.mp4"))
    assert "audio and a cover picture" in _message(write_song_with_cover(tmp_path / "song.mp4"))
    assert "not a readable video" in _message(b"\x00\x01garbage" * 100, name="upload.mp4")


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_zero_frames(tmp_path, ext):
    import av

    with av.open(str(tmp_path / f"zero{ext}"), "w") as out:  # a header, a video track, no frame
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()
    msg = _message(tmp_path / f"zero{ext}")
    assert f"zero{ext}" in msg and "0 frames" in msg


def test_truncated_files(tmp_path):
    # MP4 keeps its index at the end: cut, the file cannot be opened at all
    mp4 = write_clip(tmp_path / "cut.mp4", blank_frames(40, size=(64, 96)), fps=10)
    data = mp4.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    msg = _message(tmp_path / "cut.mp4")
    assert "damaged or truncated" in msg
    # Matroska streams its frames: cut, the frames before the cut are kept and the reader says so
    mkv = write_clip(tmp_path / "cut.mkv", blank_frames(80, size=(64, 96)), fps=10, gop=5)
    data = mkv.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    video = decode.sample_video(tmp_path / "cut.mkv", Sampling(n_frames=8))
    assert 1 <= len(video.frames) < 8
    assert any("truncated" in n for n in video.notes)
    # cut inside the header: nothing readable
    (tmp_path / "head.mkv").write_bytes(data[:40])
    assert "cut.mkv" not in _message(tmp_path / "head.mkv") and "head.mkv" in _message(tmp_path / "head.mkv")


def test_bytes_and_file_objects_are_read(tmp_path):
    import io

    data = write_clip(tmp_path / "c.webm", _grey_frames(10), fps=10).read_bytes()
    assert len(decode.sample_video(data, Sampling(n_frames=2), name="c.webm").frames) == 2
    assert len(decode.sample_video(io.BytesIO(data), Sampling(n_frames=2), name="c.webm").frames) == 2


def test_shared_videos_are_read():
    clips = shared_videos()
    if not clips:
        pytest.skip("../shared/videos not found (a clone without the shared clips)")
    for clip in clips[:3] + [c for c in clips if c.name.startswith("3d96")]:
        video = decode.sample_video(clip, Sampling(n_frames=4), max_side=640)
        assert len(video.frames) == 4 and not video.notes
        assert 9 < video.info.duration < 18
        assert max(video.frames[0].rgb.shape[:2]) <= 640


def test_ten_bit_hevc_as_phones_record_it_decodes_to_8_bit_rgb(tmp_path):
    import av

    path = tmp_path / "hdr.mov"
    with av.open(str(path), "w") as out:  # HEVC 10-bit 4:2:0, portrait rotation: an iPhone-like clip
        stream = out.add_stream("libx265", rate=10, options={"log-level": "error"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        stream.set_display_rotation(-90)
        for grey in _grey_frames(10, size=(48, 64)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    video = decode.sample_video(path, Sampling(n_frames=2))
    assert video.info.codec == "hevc" and video.info.rotation == 270
    assert [(f.rgb.dtype, f.rgb.shape) for f in video.frames] == [(np.dtype("uint8"), (64, 48, 3))] * 2
    assert [round((float(f.rgb.mean()) - 10) / 10) for f in video.frames] == [round(f.time * 10) for f in video.frames]

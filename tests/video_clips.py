"""Small video clips for the video tests, written with PyAV (the library the pipeline reads with).

``write_clip`` encodes (H, W, 3) uint8 RGB frames into any container PyAV writes (MP4, MOV, WebM, AVI,
MKV), optionally with a display-matrix rotation (as phones store portrait clips) or with explicit
per-frame timestamps (variable frame rate). ``face_frames`` pastes ../shared face photos onto a
plain background, moving a little from frame to frame, so the MTCNN detector and the face tracker
have something real to find.
"""
from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np

from conftest import SHARED_DATA

SHARED_VIDEOS = SHARED_DATA.parent / "videos"
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def write_clip(path: Path, frames, fps: float = 10, rotation: int | None = None, times=None, codec: str | None = None,
               audio_seconds: float = 0.0, gop: int | None = None) -> Path:
    """Encode ``frames`` (iterable of equally sized RGB uint8 arrays, even sides) to ``path``.
    ``times``: presentation time of each frame in seconds (variable frame rate); ``rotation``:
    display-matrix angle, degrees counter-clockwise; ``audio_seconds``: also a silent AAC track;
    ``gop``: frames between keyframes (phones: about one second)."""
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    if first.ndim == 2:  # planar YUV 4:2:0 rows (H * 3 / 2, W): no RGB conversion (fast for 8K)
        h = h * 2 // 3
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec or CODECS[path.suffix.lower()], rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "ultrafast"}
        if times is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio = None
        if audio_seconds:
            audio = out.add_stream("aac", rate=16000)
            audio.layout = "mono"
        for i, rgb in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8),
                                               format="yuv420p" if rgb.ndim == 2 else "rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            _write_silence(out, audio, audio_seconds)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        _write_silence(out, audio, seconds)
    return path


def write_song_with_cover(path: Path, seconds: float = 1.0) -> Path:
    """An MP3 (whatever ``path``'s extension) with a cover picture: FFmpeg shows the picture as a
    video stream with the ``attached_pic`` disposition."""
    import av

    with av.open(str(path), "w", format="mp3") as out:
        audio = out.add_stream("mp3", rate=16000)
        audio.layout = "mono"
        cover = out.add_stream("png", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        for packet in cover.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24")):
            out.mux(packet)
        for packet in cover.encode():
            out.mux(packet)
        _write_silence(out, audio, seconds)
    return path


def _write_silence(out, audio, seconds: float) -> None:
    import av

    n = int(16000 * seconds)
    for start in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, min(1024, n - start)), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 16000, start
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)


def _chain(first, rest):
    yield first
    yield from rest


def shared_faces(n: int = 2, folder: str = "faces140k/real"):
    """``n`` RGB face photos from ../shared/data (None when it is absent)."""
    from PIL import Image

    files = sorted((SHARED_DATA / folder).glob("*.jpg"))[:n]
    if len(files) < n:
        return None
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def face_frames(faces, n_frames: int = 12, size=(360, 640), side: int = 150, spots=None, step: int = 3,
                background: int = 205):
    """Frames of ``size`` (H, W) with each face (RGB array) pasted at ``side`` px, drifting ``step``
    px right per frame from its spot (default spots: left and right halves)."""
    from PIL import Image

    H, W = size
    spots = spots or [(40 + i * (W // 2), (H - side) // 2) for i in range(len(faces))]
    pasted = [np.asarray(Image.fromarray(f).resize((side, side))) for f in faces]
    for k in range(n_frames):
        canvas = np.full((H, W, 3), background, np.uint8)
        for face, (x, y) in zip(pasted, spots):
            x = min(W - side, x + k * step)
            canvas[y:y + side, x:x + side] = face
        yield canvas


def yuv_frames(n_frames: int, size=(4320, 7680)):
    """Planar YUV 4:2:0 frames (for :func:`write_clip`) of ``size`` (H, W): a dark left half, grey right."""
    H, W = size
    for k in range(n_frames):
        yuv = np.full((H * 3 // 2, W), 128, np.uint8)
        yuv[:H, : W // 2] = 40 + k
        yield yuv


def blank_frames(n_frames: int, size=(64, 96), seed: int = 0):
    """Faceless frames (smooth gradients that change over time)."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W]
    for k in range(n_frames):
        yield np.stack([(xx * 255 // max(1, W - 1) + k * 7) % 256, yy * 255 // max(1, H - 1),
                        np.full_like(xx, (seed * 40 + k * 3) % 256)], axis=2).astype(np.uint8)


def shared_videos() -> list[Path]:
    """The clips of ../shared/videos (real/ and fake/), sorted; [] when absent."""
    return sorted(SHARED_VIDEOS.glob("*/*.mp4"))

"""Decoding video clips with PyAV (FFmpeg's libraries, bundled in the ``av`` wheel): the clip's facts,
the sampling timestamps and the sampled frames as upright RGB arrays.

Why PyAV: see :mod:`pipeline.video` (per-frame timestamps, the display matrix, seeking, swscale).

* **Containers**: anything FFmpeg demuxes; the supported list (:data:`VIDEO_EXTENSIONS`: MP4, MOV, M4V,
  WebM, AVI, MKV) is what the CLI's folder scan and the dashboard's uploader accept.
* **Time, not frame numbers**: a frame's time is its presentation timestamp in seconds
  (``frame.time`` = ``pts * time_base``), so a variable-frame-rate phone clip is sampled where the
  timestamps say, not where a frame index times a nominal rate would guess.
* **Rotation**: ``VideoFrame.rotation`` (PyAV >= 14) is the display matrix's angle, counter-clockwise
  in degrees (FFmpeg's ``av_display_rotation_get``); each frame is turned by it (``np.rot90``), so a
  portrait phone clip stored landscape comes out upright. Mirrored matrices (rare) are not undone.
* **Cost bounded by the sample, not by the clip**: for a timestamp more than :data:`SEEK_GAP_SECONDS`
  ahead the reader seeks (to the keyframe before it) and decodes forward to it; otherwise it decodes
  on. Only chosen frames are converted to RGB, and they are converted straight to at most
  ``max_side`` pixels on their longer side by swscale (area filter), so an 8K frame never exists at
  full size in RGB.

Errors: :class:`VideoError` (a ``ValueError``) with a sentence a user can act on, for a missing,
empty, corrupt or truncated file, a file that is not a video (text, an image named ``.mp4``), an
audio-only file (or a song whose cover picture FFmpeg lists as a video stream), a clip without a
decodable frame and a frame size above :data:`MAX_PIXELS`.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np

from pipeline.progress import ProgressFn, report

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv")
DEFAULT_FRAMES = 16  # sampled frames per clip, evenly over its duration
DEFAULT_MAX_FRAMES = 64  # cap of the "one every k seconds" rule
DEFAULT_MAX_SIDE = 1280  # longer side of a decoded frame, pixels (face crops come from this size)
MAX_PIXELS = 16384 * 16384 // 2  # frame size refused above this (8K UHD is 33 MP; this is 134 MP)
SEEK_GAP_SECONDS = 2.0  # seek when the next timestamp is further ahead than this; decode on otherwise

Source = Union[str, Path, bytes, BinaryIO]


class VideoError(ValueError):
    """A clip that cannot be read; the message says why and names the file."""


@dataclass(frozen=True)
class Sampling:
    """Which frames to score. ``n_frames``: that many timestamps evenly over the duration (the
    default); or ``every_seconds``: one every k seconds, capped at ``max_frames`` (spread evenly over
    the clip when the cap bites), so a long clip costs at most ``max_frames`` frames either way."""

    n_frames: int = DEFAULT_FRAMES
    every_seconds: float | None = None
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self):
        if self.every_seconds is None and not 1 <= int(self.n_frames) <= 10_000:
            raise ValueError(f"n_frames must be between 1 and 10000, got {self.n_frames}")
        if self.every_seconds is not None and not (math.isfinite(self.every_seconds) and self.every_seconds > 0):
            raise ValueError(f"every_seconds must be a positive number of seconds, got {self.every_seconds}")
        if not 1 <= int(self.max_frames) <= 10_000:
            raise ValueError(f"max_frames must be between 1 and 10000, got {self.max_frames}")

    @property
    def rule(self) -> str:
        if self.every_seconds is not None:
            return f"one frame every {self.every_seconds:g} s (at most {self.max_frames})"
        return f"{self.n_frames} frames evenly over the duration"


@dataclass
class VideoInfo:
    """Facts of a clip. ``width``/``height``: pixels of the upright (rotated) picture; ``rotation``:
    degrees counter-clockwise applied to stored frames; ``duration``: seconds (None if unknown);
    ``fps``: the stream's average frame rate (frames per second; None if unknown); ``n_frames``: the
    container's frame count (0 when it does not say)."""

    name: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    duration: float | None
    fps: float | None
    n_frames: int
    has_audio: bool
    start_time: float = 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "container", "codec", "width", "height", "rotation", "duration",
                                              "fps", "n_frames", "has_audio")}


@dataclass
class SampledFrame:
    """One decoded frame. ``index``: 0-based position in the sample; ``time``: presentation time in
    seconds from the clip's start; ``rgb``: (H, W, 3) uint8, upright, longer side at most the reader's
    ``max_side``; ``scale``: ``rgb`` pixels per pixel of the full-size upright frame (<= 1)."""

    index: int
    time: float
    rgb: np.ndarray
    scale: float = 1.0


@dataclass
class SampledVideo:
    info: VideoInfo
    frames: list[SampledFrame]
    requested: list[float]  # the sampling timestamps, seconds
    notes: list[str] = field(default_factory=list)  # things the user should know (truncated file, ...)
    decoded: int = 0  # frames the decoder produced to get these (the cost: bounded by the sample, not the clip)


# --------------------------------------------------------------------------- sampling


def sample_times(duration: float, sampling: Sampling = Sampling()) -> list[float]:
    """Sampling timestamps in seconds for a clip of ``duration`` seconds (> 0).

    Evenly: the centres of ``n_frames`` equal slices, ``(i + 0.5) * duration / n`` (never the very
    first frame, often black, nor past the end). Every k seconds: ``0, k, 2k, ... < duration``; when
    that is more than ``max_frames`` timestamps, ``max_frames`` evenly instead."""
    if not (duration and math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    if sampling.every_seconds is not None:
        k = float(sampling.every_seconds)
        count = int(math.floor(duration / k - 1e-9)) + 1
        if count <= sampling.max_frames:
            return [round(i * k, 6) for i in range(count)]
        n = int(sampling.max_frames)
    else:
        n = int(sampling.n_frames)
    return [round((i + 0.5) * duration / n, 6) for i in range(n)]


# --------------------------------------------------------------------------- opening


def _label(source: Source, name: str | None) -> str:
    if name:
        return str(name)
    if isinstance(source, (str, Path)):
        return Path(source).name
    return str(getattr(source, "name", "upload"))


def _open(source: Source, label: str):
    import av

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise VideoError(f"{label}: no such file ({path})")
        if path.is_dir():
            raise VideoError(f"{label}: is a folder, not a video file")
        if path.stat().st_size == 0:
            raise VideoError(f"{label}: the file is empty (0 bytes)")
        target: Any = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise VideoError(f"{label}: the file is empty (0 bytes)")
        target = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        target = source
    else:
        raise VideoError(f"{label}: cannot read a {type(source).__name__} as a video")
    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except av.error.EOFError as exc:
        raise VideoError(f"{label}: the file ends before its first frame (0 frames, or a truncated file)") from exc
    except av.error.FFmpegError as exc:
        raise VideoError(f"{label}: not a readable video ({_what_is_it(source)}; FFmpeg: {_ffmpeg_text(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise VideoError(f"{label}: could not be opened ({exc})") from exc


def _refuse_still_images(container, source: Source, label: str) -> None:
    """FFmpeg opens a JPEG/PNG/... as a one-frame "video" (its image demuxers): a file named .mp4 that
    holds a photo is refused here with what it is."""
    fmt = str(container.format.name)
    if fmt.endswith("_pipe") or fmt in ("image2", "gif", "apng"):
        what = _what_is_it(source)
        what = what if "image" in what else f"it is a still image ({fmt.replace('_pipe', '')})"
        raise VideoError(f"{label}: not a video: {what}; check photos on the Check an image page "
                         f"or with `python -m pipeline predict --crop-faces`")


def _head(source: Source) -> bytes:
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as fp:
                return fp.read(64)
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source[:64])
    except OSError:
        pass
    return b""


def _what_is_it(source: Source) -> str:
    """A guess at what a file that FFmpeg cannot open is, from its first bytes."""
    head = _head(source)
    if head.startswith(b"\xff\xd8\xff"):
        return "it is a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "it is a PNG image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a WebP image"
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it holds plain text"
    if head[4:8] in (b"ftyp", b"moov", b"mdat") or head[:4] == b"\x1a\x45\xdf\xa3" or head[:4] == b"RIFF":
        return "its header looks like a video container, so it is probably damaged or truncated"
    return "its content is not a known video format"


def _ffmpeg_text(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".") or type(exc).__name__


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        import av

        return float(container.duration) / av.time_base
    return None


def _scan_duration(container, stream) -> float | None:
    """The clip's length by demuxing its packets (no decoding): for containers whose header does not
    say (some WebM/MKV written live). Seconds, or None when no packet has a timestamp."""
    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = t if end is None else max(end, t)
    except Exception:  # noqa: BLE001 - a damaged tail ends the scan; what was read counts
        pass
    try:
        container.seek(0, stream=stream)
    except Exception:  # noqa: BLE001
        pass
    return end


def _rotation(frame) -> int:
    """The display matrix's rotation of a frame, degrees counter-clockwise, snapped to 0/90/180/270."""
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(angle / 90.0)) % 4 * 90


def _info(container, stream, label: str) -> VideoInfo:
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(name=label, container=str(container.format.name), codec=str(stream.codec_context.name),
                     width=int(stream.codec_context.width or 0), height=int(stream.codec_context.height or 0),
                     rotation=0, duration=_stream_duration(container, stream),
                     fps=float(rate) if rate else None, n_frames=int(stream.frames or 0),
                     has_audio=bool(container.streams.audio), start_time=start)


def probe(source: Source, name: str | None = None) -> VideoInfo:
    """The facts of a clip (:class:`VideoInfo`) from its header and first frame (for the rotation).
    Raises :class:`VideoError`."""
    label = _label(source, name)
    with _open(source, label) as container:
        stream = _video_stream(container, label, source)
        info = _info(container, stream, label)
        frame = _first_frame(container, stream, label)
        _apply_rotation_to_info(info, frame)
        if info.duration is None:
            info.duration = _scan_duration(container, stream)
        return info


def _video_stream(container, label: str, source: Source = None):
    import av

    _refuse_still_images(container, source, label)
    pictures = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails
    moving = [s for s in container.streams.video if not (int(s.disposition) & int(pictures))]
    if not moving:
        kinds = sorted({s.type for s in container.streams})
        if "audio" in kinds and container.streams.video:
            raise VideoError(f"{label}: holds audio and a cover picture, no video stream")
        if "audio" in kinds:
            raise VideoError(f"{label}: holds audio only, no video stream")
        raise VideoError(f"{label}: holds no video stream, so no frame (0 frames)"
                         + (f" (streams: {', '.join(kinds)})" if kinds else ""))
    stream = moving[0]
    w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if w * h > MAX_PIXELS:
        raise VideoError(f"{label}: frames of {w}x{h} pixels are larger than this reader accepts "
                         f"({MAX_PIXELS / 1e6:.0f} megapixels)")
    stream.thread_type = "AUTO"
    return stream


def _first_frame(container, stream, label: str):
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"{label}: no frame could be decoded; the file is damaged or truncated "
                         f"(FFmpeg: {_ffmpeg_text(exc)})") from exc
    raise VideoError(f"{label}: the video stream holds no frame (0 frames)")


def _apply_rotation_to_info(info: VideoInfo, frame) -> None:
    info.rotation = _rotation(frame)
    if info.rotation in (90, 270):
        info.width, info.height = info.height, info.width


# --------------------------------------------------------------------------- decoding


def _to_rgb(frame, rotation: int, max_side: int) -> tuple[np.ndarray, float]:
    """(upright RGB (H, W, 3) uint8 with longer side <= max_side, scale vs the full-size frame)."""
    w, h = int(frame.width), int(frame.height)
    scale = min(1.0, float(max_side) / max(w, h))
    if scale < 1.0:
        tw, th = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
        rgb = frame.to_ndarray(format="rgb24", width=tw, height=th, interpolation="AREA")
        scale = tw / w
    else:
        rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    return np.ascontiguousarray(rgb, dtype=np.uint8), scale


def _frame_time(frame, count: int, fps: float | None, start: float) -> float:
    t = frame.time
    if t is None:  # no timestamp (rare raw streams): position by the nominal rate
        return count / fps if fps else float(count)
    return float(t) - start


def sample_video(source: Source, sampling: Sampling = Sampling(), *, name: str | None = None,
                 max_side: int = DEFAULT_MAX_SIDE, times: list[float] | None = None,
                 progress: ProgressFn = None) -> SampledVideo:
    """Decode the frames nearest to the sampling timestamps of a clip (a path, bytes or a binary file).

    ``times`` (seconds) overrides ``sampling``. Each timestamp takes the decoded frame whose time is
    nearest to it; two timestamps that land on one frame (a clip with fewer frames than asked) give
    it once. A clip that ends early (truncated, or a header claiming more than the data holds) keeps
    the frames read and says so in ``notes``. Raises :class:`VideoError` when not one frame can be
    decoded. ``progress(stage, done, total)`` is called per sampled frame."""
    import av

    label = _label(source, name)
    with _open(source, label) as container:
        stream = _video_stream(container, label, source)
        info = _info(container, stream, label)
        first = _first_frame(container, stream, label)
        _apply_rotation_to_info(info, first)
        if info.duration is None or info.duration <= 0:
            info.duration = _scan_duration(container, stream)
        if times is None:
            if not info.duration:  # a single picture, or no timestamps at all: the first frame only
                times = [0.0]
            else:
                times = sample_times(info.duration, sampling)
        times = sorted(float(t) for t in times)
        notes: list[str] = []
        frames: list[SampledFrame] = []
        tb = stream.time_base
        start = info.start_time

        def restart(at: float):
            """A fresh decode generator, after seeking to the keyframe at or before ``at`` seconds."""
            try:
                container.seek(max(0, int((at + start) / tb)) if tb else 0, stream=stream, backward=True)
            except (av.error.FFmpegError, OverflowError, ValueError):
                container.seek(0, stream=stream)
            return container.decode(stream)

        decoder = restart(0.0)
        prev = None  # (time, frame) of the last decoded frame
        count = 0
        emitted_pts: set = set()
        ended = False
        error: str | None = None
        for k, target in enumerate(times):
            if ended:
                break
            if prev is None and target > SEEK_GAP_SECONDS or prev is not None and target - prev[0] > SEEK_GAP_SECONDS:
                decoder, prev = restart(target), None
            chosen = prev[1] if prev is not None and prev[0] >= target else None  # already decoded past it
            while chosen is None:
                try:
                    frame = next(decoder)
                except StopIteration:
                    ended = True
                    chosen = prev[1] if prev is not None else None
                    break
                except av.error.FFmpegError as exc:
                    ended = True
                    error = _ffmpeg_text(exc)
                    chosen = prev[1] if prev is not None else None
                    break
                count += 1
                t = _frame_time(frame, count - 1, info.fps, start)
                if t >= target:
                    if prev is not None and abs(prev[0] - target) <= abs(t - target):  # a tie: the earlier frame
                        chosen = prev[1]
                    else:
                        chosen = frame
                prev = (t, frame)
            if chosen is None:
                continue
            key = chosen.pts if chosen.pts is not None else id(chosen)
            if key in emitted_pts:
                continue
            emitted_pts.add(key)
            rgb, scale = _to_rgb(chosen, info.rotation, max_side)
            frames.append(SampledFrame(index=len(frames), time=round(_frame_time(chosen, count - 1, info.fps, start), 6),
                                       rgb=rgb, scale=scale))
            report(progress, "decoding frames", k + 1, len(times))
        if not frames:
            raise VideoError(f"{label}: no frame could be decoded" + (f" (FFmpeg: {error})" if error else "")
                             + "; the file is damaged or truncated")
        if error:
            notes.append(f"Decoding stopped at {frames[-1].time:.2f} s with an error (FFmpeg: {error}); the file "
                         f"is damaged or truncated, so only {len(frames)} of {len(times)} sampled frames were read.")
        elif ended and times and info.duration and times[-1] - frames[-1].time > max(1.0, SEEK_GAP_SECONDS):
            notes.append(f"The clip's frames end at {frames[-1].time:.2f} s although its header says "
                         f"{info.duration:.2f} s (truncated?); {len(frames)} of {len(times)} sampled frames were read.")
        report(progress, "decoding frames", len(times), len(times))
        return SampledVideo(info=info, frames=frames, requested=times, notes=notes, decoded=count)


def is_video_file(path: str | Path) -> bool:
    """True for a file name with a video extension of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS

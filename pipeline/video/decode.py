"""Decoding video clips with PyAV (FFmpeg's libraries, bundled in the ``av`` wheel): the sampling
timestamps and the sampled frames as upright RGB arrays.

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

Opening the clip, its facts (:func:`~pipeline.video.container.probe`) and the errors
(:class:`~pipeline.video.container.VideoError`, a ``ValueError`` with a sentence a user can act on, for a
missing, empty, corrupt, truncated or oversized file and for what is not a video) are
:mod:`pipeline.video.container`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.progress import ProgressFn, report
from pipeline.video.container import Source, VideoError, VideoInfo, clip_label, ffmpeg_text, open_clip, read_header

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv")
DEFAULT_FRAMES = 16  # sampled frames per clip, evenly over its duration
DEFAULT_MAX_FRAMES = 64  # cap of the "one every k seconds" rule
DEFAULT_MAX_SIDE = 1280  # longer side of a decoded frame, pixels (face crops come from this size)
SEEK_GAP_SECONDS = 2.0  # seek when the next timestamp is further ahead than this; decode on otherwise


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

    label = clip_label(source, name)
    with open_clip(source, label) as container:
        stream, info, first = read_header(container, source, label)
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
                    error = ffmpeg_text(exc)
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

"""Opening a video clip with PyAV: the container, its video stream and the clip's facts (:class:`VideoInfo`,
:func:`probe`), and a :class:`VideoError` with a sentence a user can act on for everything that is not a
readable video.

Refused with what the file is: a missing, empty, corrupt or truncated file, a file that is not a video
(text, an image named ``.mp4``: FFmpeg's image demuxers would open it as a one-frame "video"), an
audio-only file (or a song whose cover picture FFmpeg lists as a video stream), a clip without a
decodable frame and a frame size above :data:`MAX_PIXELS`. Rotation: ``VideoFrame.rotation`` (PyAV >= 14)
is the display matrix's angle, counter-clockwise in degrees, snapped to 0/90/180/270.
:mod:`pipeline.video.decode` samples and decodes the frames.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union

MAX_PIXELS = 16384 * 16384 // 2  # frame size refused above this (8K UHD is 33 MP; this is 134 MP)

Source = Union[str, Path, bytes, BinaryIO]


class VideoError(ValueError):
    """A clip that cannot be read; the message says why and names the file."""


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


def clip_label(source: Source, name: str | None) -> str:
    """The name messages use for a clip: ``name``, else the file name, else the file object's name or "upload"."""
    if name:
        return str(name)
    if isinstance(source, (str, Path)):
        return Path(source).name
    return str(getattr(source, "name", "upload"))


def open_clip(source: Source, label: str):
    """The PyAV container of a path, bytes or binary file object (the caller closes it); :class:`VideoError`
    saying what the file is when FFmpeg cannot open it."""
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
        raise VideoError(f"{label}: not a readable video ({_what_is_it(source)}; FFmpeg: {ffmpeg_text(exc)})") from exc
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


def ffmpeg_text(exc: BaseException) -> str:
    """An FFmpeg error as a short phrase for a message."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".") or type(exc).__name__


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        import av

        return float(container.duration) / av.time_base
    return None


def scan_duration(container, stream) -> float | None:
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


def clip_info(container, stream, label: str) -> VideoInfo:
    """The :class:`VideoInfo` of ``stream`` from the header alone (rotation 0 until the first frame is read)."""
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
    label = clip_label(source, name)
    with open_clip(source, label) as container:
        return read_header(container, source, label)[1]


def read_header(container, source: Source, label: str):
    """(video stream, :class:`VideoInfo`, first decoded frame) of an open clip: the facts from its header,
    the rotation from its first frame, and the duration scanned when the header has none. Raises
    :class:`VideoError`."""
    stream = video_stream(container, label, source)
    info = clip_info(container, stream, label)
    first = first_frame(container, stream, label)
    apply_rotation_to_info(info, first)
    if info.duration is None or info.duration <= 0:
        info.duration = scan_duration(container, stream)
    return stream, info, first


def video_stream(container, label: str, source: Source = None):
    """The clip's first moving-picture stream (not a cover picture), set to threaded decoding; :class:`VideoError`
    for a still image, audio only, no video stream or frames above :data:`MAX_PIXELS`."""
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


def first_frame(container, stream, label: str):
    """The first decoded frame of ``stream``; :class:`VideoError` when none can be decoded."""
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"{label}: no frame could be decoded; the file is damaged or truncated "
                         f"(FFmpeg: {ffmpeg_text(exc)})") from exc
    raise VideoError(f"{label}: the video stream holds no frame (0 frames)")


def apply_rotation_to_info(info: VideoInfo, frame) -> None:
    """Set ``info.rotation`` from ``frame``'s display matrix and swap width and height for 90/270 degrees."""
    info.rotation = _rotation(frame)
    if info.rotation in (90, 270):
        info.width, info.height = info.height, info.width

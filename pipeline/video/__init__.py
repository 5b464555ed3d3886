"""Video: score a clip frame by frame and face by face, with a video-level verdict.

Modules (one idea each):

* :mod:`pipeline.video.container` - open a clip with PyAV, refuse what is not a readable video with a
  clear message, and read its facts (duration, frame rate, rotation).
* :mod:`pipeline.video.decode` - pick the sampling timestamps and decode only those frames (seek, then
  decode forward) as upright RGB arrays.
* :mod:`pipeline.video.tracks` - link the faces found on each sampled frame into face tracks
  (IoU of boxes between consecutive sampled frames, with a gap fallback).
* :mod:`pipeline.video.scoring` - score every face crop with the run's models and combined model
  (one small function, :func:`~pipeline.video.scoring.score_faces`), aggregate per track, and give the
  video's three-way verdict (real / fake / unsure) with the track and frames that decided it.
* :mod:`pipeline.video.evaluate` - video-level metrics on a labelled folder of clips.
* :mod:`pipeline.video.figures` - the plotly figures of the dashboard's Video page.

Why PyAV (``av`` on PyPI) rather than imageio-ffmpeg or OpenCV: its wheels bundle FFmpeg's libraries
(no ffmpeg binary is run in a subprocess, nothing is downloaded), it exposes what a correct reader
needs - each frame's presentation timestamp (so variable frame rate clips are sampled by time, not by
frame index), the display matrix (``VideoFrame.rotation``, so phone videos come out upright), seeking
to a timestamp (so a 10-minute clip costs what a 30-second one does) and swscale resizing during the
colour conversion (so an 8K frame is never held at full size in RGB) - and it raises typed errors
(``av.error.InvalidDataError`` ...) that become clear messages. imageio-ffmpeg pipes raw frames from an
ffmpeg process (no timestamps per frame, no side data); OpenCV's reader ignores the display matrix in
some builds and reports frame counts that are estimates.
"""

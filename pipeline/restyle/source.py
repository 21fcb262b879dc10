"""The source video: probed at the door, then decoded as a stream of RGB frames at the output's rate.

Both ask the ffmpeg bundled with imageio-ffmpeg (the one the encoder runs; no ffprobe needed).
:func:`probe_video` reads only the container's header and decodes one frame at the start and one
near the end, so a file that is not a video, has no video stream, lasts nothing, is longer or larger
than the server allows, is cut short or uses a codec ffmpeg cannot decode is refused with one
StoryboardError naming the file (its name only, never its folder) before any work starts.

:func:`decode_frames` pipes raw RGB frames out of ffmpeg: its ``fps`` filter resamples any rate
(variable-frame-rate phone footage included) to the storyboard's, frames are scaled and centre-cropped
to the output size, and ffmpeg applies the rotation metadata itself (it autorotates when decoding).
Only one frame is held at a time.
"""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..audio.probe import ffmpeg_exe
from ..contract.errors import RenderCancelled, StoryboardError

FIELD = "source_video"
MAX_WIDTH, MAX_HEIGHT = 4096, 2160  # "4K": the longer side at most 4096, the shorter at most 2160
_PROBE_TIMEOUT_S = 30
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{1,6})x(\d{1,6})")
_RATE = re.compile(r"Stream #\S+.*?: Video: .*?, (\d+(?:\.\d+)?) (?:fps|tbr)")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: ")
_PAD_FRAMES = 3  # frames a decode may come up short (rounding at the very end) and be padded by repeating


@dataclass(frozen=True)
class VideoInfo:
    """What the door and the render need to know of a source video.

    ``width`` x ``height`` is the picture as shown (after its rotation metadata); ``fps`` its
    nominal rate (0 when the container does not say).
    """

    duration: float
    width: int
    height: int
    fps: float
    codec: str
    rotation: int = 0
    has_audio: bool = False


def probe_video(path: str | Path, max_seconds: float | None = None) -> VideoInfo:
    """Check ``path`` is a video the render can use; raise StoryboardError naming the file otherwise."""
    path = Path(path)
    shown = _short(path.name)
    if not path.is_file():
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' was not found.")
    log = _ffmpeg_log(["-i", str(path)], shown)
    video = _VIDEO.search(log)
    if video is None:
        if "Stream #" in log:
            raise StoryboardError(f"Storyboard: {FIELD} '{shown}' has no video stream.")
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' is not a video file ffmpeg can read.")
    codec, width, height = video.group(1), int(video.group(2)), int(video.group(3))
    rotation = _rotation(log)
    if rotation % 180:
        width, height = height, width
    if max(width, height) > MAX_WIDTH or min(width, height) > MAX_HEIGHT:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' is {width}x{height}; the largest video accepted is "
                              f"4K ({MAX_WIDTH}x{MAX_HEIGHT}).")
    duration = _seconds(_DURATION.search(log)) or 0.0
    if duration <= 0:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' has no frames (its length is 0 seconds).")
    if max_seconds is not None and duration > max_seconds + 1e-9:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' lasts {duration:.0f} seconds; the longest video "
                              f"accepted lasts {max_seconds:g} seconds.")
    _check_decodes(path, shown, codec, 0.0)
    _check_decodes(path, shown, codec, max(0.0, duration - 0.5))  # a file cut short fails here
    rate = _RATE.search(log)
    return VideoInfo(duration, width, height, float(rate.group(1)) if rate else 0.0, codec, rotation,
                     _AUDIO.search(log) is not None)


def decode_frames(path: str | Path, fps: float, width: int, height: int, start: float = 0.0,
                  count: int | None = None, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
    """The source's frames from ``start`` seconds at ``fps``, scaled and centre-cropped to ``width`` x ``height``.

    Exactly ``count`` frames when given (a decode a few frames short at the very end repeats its last
    frame; more than that is a StoryboardError: the file is cut short), else until the file ends.
    Each frame is a fresh ``height x width x 3`` uint8 array. Closing the generator (or setting
    ``cancel``, which raises RenderCancelled) kills ffmpeg.
    """
    path = Path(path)
    scale = (f"fps={fps:.6g},scale={width}:{height}:force_original_aspect_ratio=increase:flags=area,"
             f"crop={width}:{height},setsar=1")
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-ss", f"{start:.6f}", "-i", str(path),
            "-map", "0:v:0", "-vf", scale, "-an", "-sn"]
    if count is not None:
        args += ["-frames:v", str(count)]
    args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    size = width * height * 3
    made, last = 0, None
    try:
        while count is None or made < count:
            if cancel is not None and cancel.is_set():
                raise RenderCancelled()
            data = _read_exactly(process.stdout, size)
            if data is None:
                break
            last = np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
            made += 1
            yield last
        if count is not None and made < count:
            if last is None or count - made > _PAD_FRAMES:
                raise StoryboardError(f"Storyboard: {FIELD} '{_short(path.name)}' ends after {made} of the "
                                      f"{count} frames asked for (is the file cut short?).")
            for _ in range(count - made):
                yield last.copy()
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_exactly(pipe, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = pipe.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _check_decodes(path: Path, shown: str, codec: str, at: float) -> None:
    """One frame decoded at ``at`` seconds, or StoryboardError (an unknown codec, a file cut short)."""
    log = _ffmpeg_log(["-v", "error", "-ss", f"{at:.3f}", "-i", str(path), "-map", "0:v:0", "-frames:v", "1",
                       "-f", "null", "-"], shown, want_frames=True)
    if log is None:
        return
    lowered = log.lower()
    if codec == "none" or "no decoder" in lowered or ("decoder" in lowered and "not found" in lowered):
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' uses a codec ({_short(codec, 20)}) ffmpeg cannot "
                              "decode.")
    raise StoryboardError(f"Storyboard: {FIELD} '{shown}' cannot be decoded (is the file cut short or damaged?).")


def _ffmpeg_log(arguments: list[str], shown: str, want_frames: bool = False) -> str | None:
    """ffmpeg's log for ``arguments``; with ``want_frames``: None when it decoded a frame cleanly."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", *arguments]
    if want_frames:
        command[-1:-1] = ["-stats_period", "1000"]
    try:
        result = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' took too long to read.") from None
    log = result.stderr.decode("utf-8", "replace")
    if want_frames:
        return None if result.returncode == 0 and not log.strip() else log or "no frame"
    return log


def _rotation(log: str) -> int:
    match = _ROTATION.search(log)
    return round(float(match.group(1))) % 360 if match else 0


def _seconds(match: re.Match | None) -> float | None:
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _short(name: str, limit: int = 40) -> str:
    name = " ".join(name.split())
    return name if len(name) <= limit else name[: limit - 1] + "…"

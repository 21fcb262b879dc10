"""Is this file audio, and how long is it? Asked of imageio-ffmpeg's bundled ffmpeg (no ffprobe needed).

Used at the door (``parse_storyboard``) so a bad file fails with one message that
names the ``audio`` field, before any work starts.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..contract.errors import StoryboardError

_PROBE_TIMEOUT_S = 30
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)[^\n]*?(\d+) Hz")
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")


@dataclass(frozen=True)
class AudioInfo:
    """What the encoder and the fitting need to know about an audio file."""

    duration: float  # seconds
    codec: str
    sample_rate: int


def probe_audio(path: str | Path, field: str = "audio") -> AudioInfo:
    """Check that ``path`` is a readable file with an audio stream; raise StoryboardError naming ``field``.

    The message names the file by its base name only (never a server folder).
    """
    path = Path(path)
    shown = _short(path.name)
    if not path.is_file():
        raise StoryboardError(f"Storyboard: {field} file '{shown}' was not found.")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError:
        raise StoryboardError(f"Storyboard: {field} file '{shown}' cannot be read.") from None
    log = _ffmpeg_log(["-i", str(path)])
    stream = _AUDIO.search(log)
    if "Invalid data found" in log or ("Stream #" not in log and stream is None):
        raise StoryboardError(f"Storyboard: {field} file '{shown}' is not an audio file ffmpeg can read.")
    if stream is None:
        raise StoryboardError(f"Storyboard: {field} file '{shown}' has no audio stream.")
    duration = _seconds(_DURATION.search(log))
    if duration is None:  # e.g. a raw stream without a header: decode it once to measure
        duration = _seconds(_last(_TIME.finditer(_ffmpeg_log(["-i", str(path), "-map", "0:a:0", "-f", "null", "-"]))))
    if not duration:
        raise StoryboardError(f"Storyboard: {field} file '{shown}' has no sound (its length is 0 seconds).")
    return AudioInfo(duration=duration, codec=stream.group(1), sample_rate=int(stream.group(2)))


def ffmpeg_exe() -> str:
    """The ffmpeg that ships inside imageio-ffmpeg (the same one the encoder runs)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_log(arguments: list[str]) -> str:
    try:
        result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *arguments], capture_output=True,
                                timeout=_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise StoryboardError("Storyboard: the audio file took too long to read.") from None
    return result.stderr.decode("utf-8", "replace")


def _seconds(match: re.Match | None) -> float | None:
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _last(matches) -> re.Match | None:
    last = None
    for last in matches:
        pass
    return last


def _short(name: str, limit: int = 40) -> str:
    name = " ".join(name.split())
    return name if len(name) <= limit else name[: limit - 1] + "…"

"""H.264 encoding: frames in, ~2 s MPEG-TS segments out, joined at the end into one MP4.

We run imageio-ffmpeg's bundled ffmpeg ourselves (``get_ffmpeg_exe``) rather than
through ``imageio_ffmpeg.write_frames`` because Stop must kill ffmpeg at once;
``write_frames`` waits for it to finish the file when closed.

Every segment is its own closed H.264 stream (it starts on an IDR frame), so it can
be streamed to the browser the moment it is written, and the final MP4 is the
segments concatenated without re-encoding: the download is exactly what was streamed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import StoryboardError
from .events import Segment


def ffmpeg_exe() -> str:
    """The ffmpeg that ships inside imageio-ffmpeg (no system install needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class EncodeSettings:
    width: int
    height: int
    fps: int
    crf: int = 23
    x264_preset: str = "fast"


class _FfmpegPipe:
    """One ffmpeg process that reads raw RGB frames on stdin and writes one file."""

    def __init__(self, settings: EncodeSettings, path: Path):
        s = settings
        args = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{s.width}x{s.height}", "-r", str(s.fps),
            "-i", "pipe:0",
            "-an", "-c:v", "libx264", "-preset", s.x264_preset, "-crf", str(s.crf),
            "-pix_fmt", "yuv420p", "-profile:v", "high",
            "-f", "mpegts", str(path),
        ]
        self.path = path
        self.frames = 0
        self._frame_bytes = s.width * s.height * 3
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(frame, dtype=np.uint8)).cast("B")
        if len(data) != self._frame_bytes:
            raise ValueError(f"frame has {len(data)} bytes, expected {self._frame_bytes}")
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            raise RuntimeError(f"ffmpeg stopped early: {self._stderr()}") from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file; raises if ffmpeg failed."""
        self._proc.stdin.close()
        code = self._proc.wait()
        if code != 0:
            raise RuntimeError(f"ffmpeg failed with exit code {code}: {self._stderr()}")
        self._proc.stderr.close()

    def kill(self) -> None:
        """Stop ffmpeg now and remove its partial file."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stderr):
            try:
                stream.close()
            except (BrokenPipeError, OSError):
                pass
        self.path.unlink(missing_ok=True)

    def _stderr(self) -> str:
        try:
            return self._proc.stderr.read().decode("utf-8", "replace").strip()[-500:]
        except (OSError, ValueError):
            return ""


class SegmentedEncoder:
    """Takes frames one at a time; hands back a Segment every ``segment_frames`` frames.

    Use ``write`` for each frame, then ``finish(mp4_path)``; call ``abort()`` on any
    error or cancellation (it kills ffmpeg and deletes every file it made).
    """

    def __init__(self, settings: EncodeSettings, work_dir: Path, segment_seconds: float = 2.0):
        self.settings = settings
        self.work_dir = work_dir
        self.segment_frames = max(1, round(segment_seconds * settings.fps))
        self.segments: list[Segment] = []
        self._pipe: _FfmpegPipe | None = None
        self._first_frame = 0

    def write(self, frame: np.ndarray) -> Segment | None:
        """Encode one frame; returns the Segment that this frame completed, if any."""
        if self._pipe is None:
            path = self.work_dir / f"segment_{len(self.segments):05d}.ts"
            self._pipe = _FfmpegPipe(self.settings, path)
        self._pipe.write(frame)
        if self._pipe.frames >= self.segment_frames:
            return self._close_segment()
        return None

    def finish(self, mp4_path: Path) -> Segment | None:
        """Close the last segment and join all segments into ``mp4_path`` (+faststart).

        Returns the last (shorter) segment if one was still open, so it can be streamed too.
        """
        last = self._close_segment() if self._pipe is not None else None
        if not self.segments:
            raise StoryboardError("Nothing to encode: the storyboard produced no frames.")
        concat_segments([segment.path for segment in self.segments], mp4_path, self.work_dir)
        return last

    def abort(self) -> None:
        """Kill ffmpeg and remove every segment written so far."""
        if self._pipe is not None:
            self._pipe.kill()
            self._pipe = None
        for segment in self.segments:
            segment.path.unlink(missing_ok=True)

    def _close_segment(self) -> Segment:
        pipe = self._pipe
        assert pipe is not None
        self._pipe = None
        pipe.close()
        segment = Segment(index=len(self.segments), path=pipe.path, first_frame=self._first_frame, frames=pipe.frames)
        self._first_frame += pipe.frames
        self.segments.append(segment)
        return segment


def concat_segments(paths: list[Path], mp4_path: Path, work_dir: Path) -> None:
    """Join MPEG-TS segments into one MP4 without re-encoding, moov atom first."""
    listing = work_dir / "segments.txt"
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in paths), encoding="utf-8")
    partial = mp4_path.with_name(mp4_path.name + ".part.mp4")
    args = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(listing),
        "-c", "copy", "-movflags", "+faststart", str(partial),
    ]
    result = subprocess.run(args, capture_output=True, check=False)
    listing.unlink(missing_ok=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not join the segments: {result.stderr.decode('utf-8', 'replace')[-500:]}")
    partial.replace(mp4_path)  # atomic: a reader never sees a half-written MP4

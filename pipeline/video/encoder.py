"""H.264 encoding: frames in, ~2 s MPEG-TS segments out, joined at the end into one MP4.

We run imageio-ffmpeg's bundled ffmpeg ourselves (``get_ffmpeg_exe``) rather than
through ``imageio_ffmpeg.write_frames`` because Stop must kill ffmpeg at once;
``write_frames`` waits for it to finish the file when closed.

One ffmpeg process encodes the whole render and cuts it into segments itself
(the ``segment`` muxer), with an IDR frame forced at every segment start: each
segment is a closed H.264 stream that can be streamed to the browser the moment
ffmpeg lists it as complete, and the final MP4 is the segments concatenated
without re-encoding, so the download is exactly what was streamed. (One process
per segment would cost ~20 % more CPU: x264 starts, fills its lookahead and
drains it again every two seconds; measured in bench/RESULTS.md.)

A soundtrack (``pipeline.audio.track.AudioTrack``) is a second input of that same
process: each segment carries its stretch of one continuous audio stream (as PCM,
which decodes exactly segment by segment), and a second output of the process
encodes it to AAC for the MP4 as it goes; the join copies both streams.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.track import AudioTrack
from ..contract.errors import PublicError, StoryboardError, one_line, without_paths
from ..contract.events import Segment

SEGMENT_PATTERN = "segment_%05d.ts"  # ffmpeg's name for segment n
_SEGMENT_GLOB = SEGMENT_PATTERN.replace("%05d", "*")
_SEGMENT_LIST = "segments.csv"
_AUDIO_NAME = "soundtrack.m4a"  # the AAC track for the MP4, written beside the segments


def ffmpeg_exe() -> str:
    """The ffmpeg that ships inside imageio-ffmpeg (no system install needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class EncodeError(PublicError):
    """ffmpeg failed or was killed; the message is one line without server paths."""


def ffmpeg_failure(code: int | None, stderr: str) -> EncodeError:
    """What to tell the user when ffmpeg ended with ``code`` and wrote ``stderr``."""
    if "No space left on device" in stderr:
        return EncodeError("the server ran out of disk space while writing the video.")
    if code is not None and code < 0:
        return EncodeError(f"the video encoder (ffmpeg) was stopped by signal {-code} before it finished.")
    lines = [line for line in stderr.splitlines() if line.strip()]
    detail = one_line(without_paths(lines[-1]), 120) if lines else ""
    return EncodeError(f"the video encoder (ffmpeg) failed with exit code {code}" + (f": {detail}" if detail else "."))


@dataclass(frozen=True)
class EncodeSettings:
    width: int
    height: int
    fps: int
    crf: int = 23
    x264_preset: str = "fast"


def raw_input_arguments(settings: EncodeSettings) -> list[str]:
    """ffmpeg arguments that read raw RGB frames of ``settings``' size and rate from stdin."""
    s = settings
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{s.width}x{s.height}", "-r", str(s.fps), "-i", "pipe:0"]


def x264_arguments(settings: EncodeSettings, audio: bool = False) -> list[str]:
    """ffmpeg output arguments for browser-ready H.264 (libx264, yuv420p, High profile) at ``settings``.

    ``audio`` False drops every audio stream; True leaves the audio to the caller's own options.
    """
    s = settings
    return [*([] if audio else ["-an"]), "-c:v", "libx264", "-preset", s.x264_preset, "-crf", str(s.crf),
            "-pix_fmt", "yuv420p", "-profile:v", "high",
            # With audio, no B-frames: see pipeline.audio.track (segments are cut at decode times).
            *(["-bf", "0"] if audio else [])]


class SegmentedEncoder:
    """Takes frames one at a time; hands back each Segment as soon as ffmpeg has finished it.

    Use ``write`` for each frame, then ``finish(mp4_path)``; call ``abort()`` on any
    error or cancellation (it kills ffmpeg and deletes every file it made). Every
    segment but the last has exactly ``segment_frames`` frames. With ``audio`` the
    segments (PCM) and the MP4 (AAC) also carry that soundtrack, exactly as long as the video.
    """

    def __init__(self, settings: EncodeSettings, work_dir: Path, segment_seconds: float = 2.0,
                 audio: AudioTrack | None = None):
        self.settings = settings
        self.audio = audio
        self.work_dir = work_dir
        self.segment_frames = max(1, round(segment_seconds * settings.fps))
        self.segments: list[Segment] = []
        self.frames_written = 0
        self._list_path = work_dir / _SEGMENT_LIST
        self._audio_path = work_dir / _AUDIO_NAME
        self._frame_bytes = settings.width * settings.height * 3
        self._list_size = 0  # bytes of the segment list already read
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start ffmpeg now rather than at the first frame (idempotent).

        A render calls this before its first frame exists: the process starts (~40 ms of loading
        the bundled ffmpeg) while the first picture or clip is still being made, not after it.
        """
        if self._proc is None:
            self._start()

    def write(self, frame: np.ndarray) -> list[Segment]:
        """Encode one frame; returns the segments ffmpeg completed since the last call (often none)."""
        data = memoryview(np.ascontiguousarray(frame, dtype=np.uint8)).cast("B")
        if len(data) != self._frame_bytes:
            raise ValueError(f"frame has {len(data)} bytes, expected {self._frame_bytes}")
        proc = self._proc or self._start()
        try:
            proc.stdin.write(data)
        except OSError:  # a broken pipe: ffmpeg ended (killed, disk full, bad arguments)
            raise self._failure() from None
        self.frames_written += 1
        # A segment is listed once ffmpeg has the first packet of the next one, so checking
        # once per segment's worth of frames would lag; a stat per frame costs microseconds.
        return self._collect(final=False)

    def poll(self) -> list[Segment]:
        """The segments ffmpeg completed since the last call, without writing a frame.

        For a caller that waits for its next frame: ffmpeg finishes segments on its own time.
        """
        return self._collect(final=False) if self._proc is not None else []

    def finish(self, mp4_path: Path) -> list[Segment]:
        """Flush ffmpeg, join all segments into ``mp4_path`` (+faststart) and return the
        segments not handed back yet (the last ones), so they can be streamed too."""
        if self._proc is None or self.frames_written == 0:
            self.abort()  # a process started early, with nothing to encode
            raise StoryboardError("Nothing to encode: the storyboard produced no frames.")
        proc = self._proc
        try:
            proc.stdin.close()
        except OSError:  # the last frames' flush hit a dead ffmpeg
            raise self._failure() from None
        self._proc = None
        code = proc.wait()
        error = self._read_stderr(proc)
        if code != 0:
            raise ffmpeg_failure(code, error)
        last = self._collect(final=True)
        done = sum(segment.frames for segment in self.segments)
        if done != self.frames_written:
            raise RuntimeError(f"ffmpeg wrote {done} of {self.frames_written} frames into its segments")
        concat_segments([segment.path for segment in self.segments], mp4_path, self.work_dir,
                        self._audio_path if self.audio else None)
        self._list_path.unlink(missing_ok=True)
        self._audio_path.unlink(missing_ok=True)
        return last

    def abort(self) -> None:
        """Kill ffmpeg and remove every segment written so far."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stderr):
                try:
                    stream.close()
                except (BrokenPipeError, OSError):
                    pass
        for path in self.work_dir.glob(_SEGMENT_GLOB):
            path.unlink(missing_ok=True)
        self._list_path.unlink(missing_ok=True)
        self._audio_path.unlink(missing_ok=True)

    def _start(self) -> subprocess.Popen:
        seconds = self.segment_frames / self.settings.fps
        args = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            *raw_input_arguments(self.settings), *self._audio_inputs(),
            *x264_arguments(self.settings, audio=self.audio is not None), *self._audio_outputs(),
            # An IDR frame exactly every segment_frames frames, and a cut at each of them:
            # the half-frame tolerance makes the cut land on it despite float rounding.
            "-force_key_frames", f"expr:eq(mod(n,{self.segment_frames}),0)", "-forced-idr", "1",
            "-f", "segment", "-segment_format", "mpegts",
            "-segment_time", f"{seconds:.6f}", "-segment_time_delta", f"{0.5 / self.settings.fps:.6f}",
            "-segment_list", str(self._list_path), "-segment_list_type", "csv",
            str(self.work_dir / SEGMENT_PATTERN),
            *(self.audio.aac_output_arguments(self._audio_path) if self.audio else []),
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        return self._proc

    def _audio_inputs(self) -> list[str]:
        return self.audio.input_arguments() if self.audio else []

    def _audio_outputs(self) -> list[str]:
        return self.audio.output_arguments(input_index=1) if self.audio else []

    def _collect(self, final: bool) -> list[Segment]:
        """Segments that ffmpeg has listed as complete and we have not handed back yet."""
        try:
            size = self._list_path.stat().st_size
            if size == self._list_size and not final:
                return []  # nothing new listed: the usual case, answered by one stat
            text = self._list_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        self._list_size = size
        lines = text.split("\n")[:-1]  # only whole lines: ffmpeg may be halfway through the next
        new: list[Segment] = []
        for number in range(len(self.segments), len(lines)):
            name = lines[number].split(",", 1)[0]
            first = number * self.segment_frames
            is_last = final and number == len(lines) - 1
            frames = self.frames_written - first if is_last else self.segment_frames
            new.append(Segment(index=number, path=self.work_dir / name, first_frame=first, frames=frames))
        self.segments += new
        return new

    def _failure(self) -> EncodeError:
        """The error for an ffmpeg that stopped taking frames (waits for it to exit; abort() cleans up)."""
        proc = self._proc
        if proc is None:
            return ffmpeg_failure(None, "")
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        return ffmpeg_failure(code, self._read_stderr(proc))

    @staticmethod
    def _read_stderr(proc: subprocess.Popen) -> str:
        try:
            text = proc.stderr.read().decode("utf-8", "replace").strip()[-500:]
            proc.stderr.close()
            return text
        except (OSError, ValueError):
            return ""


def concat_segments(paths: list[Path], mp4_path: Path, work_dir: Path, audio: Path | None = None) -> None:
    """Join MPEG-TS segments into one MP4 without re-encoding, moov atom first.

    The segments are cuts of one continuous MPEG-TS stream, so they are read back as
    that stream (ffmpeg's ``concat:`` protocol, bytes end to end) and keep their own
    timestamps; the concat demuxer would re-time each file from its guessed
    duration, which leaves gaps once an audio track makes a file's end ragged.
    With ``audio`` (an .m4a), the MP4 takes its sound from there instead (both start at 0).
    """
    names = [path.resolve().relative_to(work_dir.resolve()).as_posix() for path in paths]
    partial = mp4_path.with_name(mp4_path.name + ".part.mp4")
    args = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-i", "concat:" + "|".join(names), *(["-i", str(audio.resolve())] if audio else []),
        *(["-map", "0:v", "-map", "1:a"] if audio else ["-map", "0"]), "-c", "copy", "-movflags", "+faststart",
        str(partial.resolve()),
    ]
    result = subprocess.run(args, capture_output=True, check=False, cwd=work_dir)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ffmpeg_failure(result.returncode, result.stderr.decode("utf-8", "replace")[-2000:])
    partial.replace(mp4_path)  # atomic: a reader never sees a half-written MP4

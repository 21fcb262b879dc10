"""A storyboard's soundtrack, made ready for one render: the scenes fitted to it, and the track to encode.

Called by the renderer before the timeline is planned: ``fit: audio`` scales the
scenes to the audio's length, ``cut_on_beats`` moves each cut onto a beat, and the
resulting storyboard (same scenes, new durations) is what the timeline and the
encoder see. Without audio the storyboard passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..contract.errors import StoryboardError
from ..contract.storyboard import Limits, Storyboard, scene_frame_bounds
from .fit import Fitted, scale_to_total, snap_to_beats
from .probe import probe_audio
from .track import AudioTrack


@dataclass(frozen=True)
class Soundtrack:
    """The storyboard with its fitted durations, the audio's length from ``audio_start``, and the beats used."""

    storyboard: Storyboard
    available: float = 0.0
    beats_used: tuple[float, ...] = ()

    def track(self, video_seconds: float) -> AudioTrack | None:
        """The track the encoder mixes under a video of ``video_seconds``; None for a silent video."""
        board = self.storyboard
        if not board.audio:
            return None
        return AudioTrack(Path(board.audio), board.audio_start, board.audio_volume, video_seconds, self.available)


def prepare_soundtrack(storyboard: Storyboard, limits: Limits | None = None,
                       check: Callable[[], None] | None = None) -> Soundtrack:
    """Fit ``storyboard``'s scenes to its audio (see the module); slow only with ``cut_on_beats`` (beat tracking).

    ``check`` is called now and then while beats are tracked (raise from it to stop).
    """
    if not storyboard.audio:
        return Soundtrack(storyboard)
    limits = limits or Limits()
    low, high = limits.min_scene_seconds, limits.max_scene_seconds
    fps = storyboard.output_fps
    available = probe_audio(storyboard.audio).duration - storyboard.audio_start
    durations = [scene.duration for scene in storyboard.scenes]
    if storyboard.fit == "audio":
        durations = scale_to_total(durations, available, low, high)
    fitted = Fitted(tuple(durations))
    if storyboard.cut_on_beats:
        from .beats import detect_beats  # librosa: imported only when beats are asked for

        beats = detect_beats(storyboard.audio, storyboard.audio_start, min(sum(durations), available), check)
        # 1.5 frames at least: a scene that short still gets a frame once boundaries are rounded to frames.
        fitted = snap_to_beats(durations, [float(b) for b in beats], max(low, 1.5 / fps), high,
                               song_end=available)
    _check_frames(fitted.durations, fps)
    scenes = tuple(replace(scene, duration=length) for scene, length in zip(storyboard.scenes, fitted.durations))
    return Soundtrack(replace(storyboard, scenes=scenes), available, tuple(round(b, 4) for b in fitted.beats_used))


def _check_frames(durations: tuple[float, ...], fps: int) -> None:
    """Every fitted scene must still be on screen for a frame (only a very low fps can break this)."""
    bounds = scene_frame_bounds(list(durations), fps)
    for number, (start, end) in enumerate(zip(bounds, bounds[1:]), start=1):
        if end <= start:
            raise StoryboardError(f"Scene {number}: fitted to the audio it lasts {durations[number - 1]:.2f} seconds, "
                                  f"which gives no frame at {fps} fps; raise fps or lengthen the scenes.")

"""A video's shots, and the storyboard they make: one scene per shot, with its source span.

Shots are found by PySceneDetect's content detector (``scenedetect-headless``, so OpenCV stays
headless: changes of hue, saturation and brightness between frames above a threshold are cuts).
It is fed the frames the render will use, decoded at the storyboard's rate (small, for speed), so a
cut lands on the very frame where the restyled video cuts. A clip without cuts is one shot; a shot
shorter than the shortest scene allowed is joined to the one before, and one longer than the longest
is split into equal parts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.storyboard import Limits
from .source import decode_frames, probe_video

DETECT_WIDTH = 160  # frames are analysed this wide: cuts are global changes, no detail is needed
THRESHOLD = 27.0  # PySceneDetect's default for the content detector


@dataclass(frozen=True)
class Shot:
    """Frames ``[start, end)`` of the source at the storyboard's rate."""

    start: int
    end: int

    def seconds(self, fps: int) -> tuple[float, float]:
        return self.start / fps, self.end / fps


def find_shots(path: str | Path, fps: int, limits: Limits | None = None,
               cancel: threading.Event | None = None) -> list[Shot]:
    """The shots of the video at ``path`` as frame spans at ``fps`` (the whole video, end to end)."""
    from scenedetect import ContentDetector, FrameTimecode  # imported when a video is imported

    limits = limits or Limits()
    info = probe_video(path, limits.max_source_seconds)
    min_frames = max(1, math.ceil(limits.min_scene_seconds * fps))
    detector = ContentDetector(threshold=THRESHOLD, min_scene_len=min_frames)
    width = min(DETECT_WIDTH, info.width) // 2 * 2
    height = max(2, round(width * info.height / info.width) // 2 * 2)
    cuts: list[int] = []
    count = 0
    for count, frame in enumerate(decode_frames(path, fps, width, height, cancel=cancel), start=1):
        found = detector.process_frame(FrameTimecode(count - 1, fps=float(fps)), frame[..., ::-1])  # BGR
        cuts += [cut.frame_num for cut in found]
    return _shots(sorted(set(c for c in cuts if 0 < c < count)), count, min_frames,
                  math.floor(limits.max_scene_seconds * fps))


def _shots(cuts: list[int], total: int, min_frames: int, max_frames: int) -> list[Shot]:
    bounds = [0, *cuts, total]
    shots = [Shot(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    if len(shots) > 1 and shots[-1].end - shots[-1].start < min_frames:  # a short tail joins the shot before
        shots[-2:] = [Shot(shots[-2].start, shots[-1].end)]
    split: list[Shot] = []
    for shot in shots:
        parts = max(1, math.ceil((shot.end - shot.start) / max_frames))
        edges = [shot.start + round(i * (shot.end - shot.start) / parts) for i in range(parts + 1)]
        split += [Shot(a, b) for a, b in zip(edges, edges[1:])]
    return split


def storyboard_from_video(path: str | Path, prompt: str, fps: int, limits: Limits | None = None,
                          board: dict[str, Any] | None = None, cancel: threading.Event | None = None) -> dict:
    """A storyboard document restyling the video at ``path``: one scene per shot, each with ``prompt``.

    ``board`` adds board fields (quality, style, coherence …). Cuts between shots stay cuts. The
    result is for :func:`~pipeline.contract.storyboard.parse_storyboard` (which checks it).
    """
    shots = find_shots(path, fps, limits, cancel)
    scenes = []
    for shot in shots:
        start, end = shot.seconds(fps)
        scenes.append({"prompt": prompt, "duration": round(end - start, 6), "source_start": round(start, 6),
                       "source_end": round(end, 6)})
    return {"transition": "cut", **(board or {}), "fps": fps, "source_video": str(path), "scenes": scenes}

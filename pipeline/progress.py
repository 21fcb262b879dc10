"""One progress bar and time-left estimate for a render, from the work it has left at measured rates.

The work of a render is counted in units whose cost is measured as it runs:

- denoising: every AI scene's steps (a scene is one unit, split by its steps as previews arrive);
  the rate is the seconds of generation per scene unit so far;
- frames composed and encoded: the rate is the seconds per frame while composing was not waiting
  for a keyframe;
- cached and placeholder scenes cost (almost) nothing and are counted as done when they arrive.

Composing overlaps the keyframes: frames of scenes whose keyframe exists are made while later
scenes are denoised. So the time left is the longer of (keyframes left, then the frames that wait
for them) and (every frame left). Before any rate is measured there is no estimate (``None``).
The bar shows the stages' own fractions (keyframes weighted by ``share``) and never goes back.
"""

from __future__ import annotations

import time
from typing import Callable

from .contract.events import Event, KeyframeReady, Preview, Progress, Segment
from .contract.storyboard import Storyboard

# Before both rates are known, the bar is split between the stages by these shares.
_KEYFRAME_SHARE_AI = 0.5
_KEYFRAME_SHARE_PLACEHOLDER = 0.05
_MIN_FRACTION_FOR_ESTIMATE = 0.02


class RenderProgress:
    """Turns a render's stage events into Progress for the whole render (other events pass unchanged).

    ``ai``: the keyframes come from a model (else placeholders only). ``total_frames``: the
    video's frames. Keyframe-stage Progress has the stage's own fraction; composing Progress has
    the fraction of frames composed.
    """

    def __init__(self, storyboard: Storyboard, total_frames: int, ai: bool,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.started = clock()
        self.scenes = len(storyboard.scenes)
        fps = storyboard.output_fps
        self.scene_frames = [scene.duration * fps for scene in storyboard.scenes]
        self.total_frames = max(total_frames, 1)
        self.share = _KEYFRAME_SHARE_AI if ai else _KEYFRAME_SHARE_PLACEHOLDER
        self.ready: dict[int, str] = {}  # scene index -> source
        self.keyframes = 0.0  # the keyframe stage's own fraction
        self.generating_since = self.started  # when the model started (after loading and cache hits)
        self.denoising = False
        self.frames_done = 0.0
        self.frame_seconds = 0.0  # measured composing time, and the frames it made
        self.frames_measured = 0.0
        self.last_compose: float | None = None
        self.keyframe_since_compose = True
        self.frames_encoded = 0  # frames in the segments ffmpeg has finished
        self.first_compose: float | None = None
        self.throughput: float | None = None  # seconds per encoded frame since composing started
        self.first_segment: tuple[float, int] | None = None  # when the first segment came, and its last frame
        self.encode_seconds = 0.0  # measured time between recent segments, and the frames they held
        self.encode_frames = 0
        self.last_segment: float | None = None
        self.keyframe_since_segment = True
        self.fraction = 0.0
        self.stage, self.message = "keyframes", "Starting"

    # -- events ---------------------------------------------------------------------------------

    def update(self, event: Event) -> Event:
        """The render-wide Progress for a stage's Progress; any other event, unchanged (after noting it)."""
        now = self.clock()
        if isinstance(event, Segment):
            self._encoded(event, now)
            return event
        if isinstance(event, KeyframeReady):
            self.ready[event.scene_index] = event.source
            self.keyframe_since_compose = self.keyframe_since_segment = True
            self.denoising = self.denoising or event.source == "ai"
            if not self.denoising:
                self.generating_since = now  # cached scenes and placeholders come before the model works
            return event
        if isinstance(event, Preview):
            self.denoising = True
        if not isinstance(event, Progress):
            return event
        if event.stage in ("composing", "encoding"):
            self._composed(event.fraction if event.stage == "composing" else 1.0, now)
            if self.keyframes < 1.0:  # keep saying which scene is being made; the bar still moves
                return self._event(self.stage, self.message, now)
        else:
            if event.stage == "loading" and not self.denoising:
                self.generating_since = now
            else:
                self.keyframes = event.fraction
        self.stage, self.message = event.stage, event.message
        return self._event(event.stage, event.message, now)

    def finished(self) -> Progress:
        """The last Progress of a render that is done."""
        self.fraction = 1.0
        return Progress("encoding", 1.0, "Done", None)

    def _composed(self, fraction: float, now: float) -> None:
        frames = fraction * self.total_frames
        if self.first_compose is None:
            self.first_compose = now
        else:  # composing's pace since its first frame (it arrives in bursts: only the sum means something)
            self.frame_seconds = now - self.first_compose
            self.frames_measured = frames
        self.frames_done = max(self.frames_done, frames)
        self.last_compose = now
        self.keyframe_since_compose = False

    def _encoded(self, segment: Segment, now: float) -> None:
        if self.first_segment is None:
            self.first_segment = (now, segment.first_frame + segment.frames)
        else:  # ffmpeg's pace from its first segment to its latest (start-up and look-ahead left out)
            self.encode_seconds = now - self.first_segment[0]
            self.encode_frames = segment.first_frame + segment.frames - self.first_segment[1]
        self.frames_encoded = max(self.frames_encoded, segment.first_frame + segment.frames)
        self.last_segment = now
        if self.first_compose is not None and self.frames_encoded:
            # Whole frames-stage throughput: start-up, waits and ffmpeg's look-ahead included.
            self.throughput = (now - self.first_compose) / self.frames_encoded
        self.keyframe_since_segment = False

    def _per_frame(self) -> float | None:
        """Seconds per frame: ffmpeg's pace between segments once measured, else composing's."""
        if self.encode_frames >= 1:
            return self.encode_seconds / self.encode_frames
        return self.frame_seconds / self.frames_measured if self.frames_measured >= 1 else None

    def _unblocked_share(self) -> float:
        """The share of composing's measured time that was work, not waiting for keyframes (rough)."""
        waited = sum(1 for source in self.ready.values() if source == "ai")
        return 1.0 / (1 + waited) if waited else 1.0

    # -- the estimate ---------------------------------------------------------------------------

    def _cheap_scenes(self) -> int:
        return sum(source != "ai" for source in self.ready.values())

    def _ai_units_done(self) -> float:
        return max(self.keyframes * self.scenes - self._cheap_scenes(), 0.0)

    def seconds_left(self, now: float) -> float | None:
        """The estimated seconds until the render is done, or None while a needed rate is unknown."""
        # Frames are done when ffmpeg has encoded them (it lags composing by its look-ahead).
        frames_left = max(self.total_frames - self.frames_encoded, 0.0)
        per_frame = self._per_frame()
        overall = per_frame
        # Counted from the last segment: the frames since then are under way.
        since_segment = now - self.last_segment if self.last_segment is not None else 0.0
        if self.keyframes >= 1.0 or len(self.ready) == self.scenes:
            return max(frames_left * overall - since_segment, 0.0) if overall is not None else None
        ai_done = self._ai_units_done()
        ai_left = max(self.scenes - self._cheap_scenes() - ai_done, 0.0)
        if ai_done <= 0:
            return None
        per_scene = (now - self.generating_since) / ai_done
        # While the model works, composing mostly waits for it: its measured pace includes those waits,
        # so only the frames of scenes still to come are added, at that pace (none measured yet: none).
        waiting = sum(frames for index, frames in enumerate(self.scene_frames) if index not in self.ready)
        return ai_left * per_scene + min(waiting, frames_left) * (per_frame or 0.0) * self._unblocked_share()

    def _event(self, stage: str, message: str, now: float) -> Progress:
        left = self.seconds_left(now)
        fraction = self.share * self.keyframes + (1 - self.share) * self.frames_done / self.total_frames
        self.fraction = max(self.fraction, min(max(fraction, 0.0), 0.99))
        eta = left if left is not None and self.fraction > _MIN_FRACTION_FOR_ESTIMATE else None
        return Progress(stage, self.fraction, message, eta)

"""One progress bar and time-left estimate for a render, from the work it has left at measured rates.

Two rates are measured as the render runs:

- the model's: seconds per AI scene (a scene is one unit, split by its steps as previews arrive),
  counted from when the model started (after loading, cache hits and placeholders, which cost
  almost nothing and count as done when they arrive);
- the frames': seconds per frame over the stretches when composing did not wait for a keyframe,
  recent frames weighing most; once ffmpeg hands on segments steadily, its own pace between them
  if that is slower (it finishes a few hundredths of a second after the last frame).

With clips (animated scenes, generated transitions) a third rate is measured: the video model's
seconds per clip step, from its first step on. The clip stage runs after every keyframe exists,
and composing waits for each scene's clip, so while clips are made the time left is the clips'
remaining steps at that rate plus the frames that can only follow the last clip; the bar gives
the clips the largest share. Restyled scenes (shots of an uploaded video redrawn by the image
model) are the same kind of stage, between the keyframes and the clips: their own fraction (of
the shots' frames), their own pace from their first redrawn frame on, and a share of the bar.

Composing overlaps the keyframes: a scene's frames are made once its keyframe exists, while later
scenes are denoised in scene order. The time left plays that out: each missing keyframe is due at
the model's rate, each scene's frames start when both its keyframe and the previous frames are
done. Before a needed rate is measured there is no estimate (``None``). The bar shows the stages'
own fractions (keyframes weighted by ``share``) and never goes back. Measured against real renders
in tests/test_progress.py and bench/time_left.py.
"""

from __future__ import annotations

import time
from typing import Callable

from .contract.events import ClipReady, Event, KeyframeReady, Preview, Progress, Segment
from .contract.storyboard import Storyboard

# Before both rates are known, the bar is split between the stages by these shares.
_KEYFRAME_SHARE_AI = 0.5
_KEYFRAME_SHARE_PLACEHOLDER = 0.05
_KEYFRAME_SHARE_WITH_CLIPS = 0.15  # clips cost many times a keyframe: they get most of the bar
_CLIP_SHARE = 0.6
_RESTYLE_SHARE = 0.4  # a restyled shot redraws many keyframes: more than a board's keyframes, less than clips
_MIN_FRACTION_FOR_ESTIMATE = 0.02
_FRAME_STAGES = ("composing", "encoding")
_PACE_HALF_LIFE_FRAMES = 48.0  # recent frames weigh most (see _composed); tried on bench/time_left.py


class RenderProgress:
    """Turns a render's stage events into Progress for the whole render (other events pass unchanged).

    ``ai``: the keyframes come from a model (else placeholders only). ``total_frames``: the
    video's frames. Keyframe-stage Progress has the stage's own fraction; composing Progress has
    the fraction of frames composed.
    """

    def __init__(self, storyboard: Storyboard, total_frames: int, ai: bool,
                 clock: Callable[[], float] = time.monotonic, clips: bool = False):
        """``clips``: a video model makes clips in this render (animated scenes, generated transitions)."""
        self.clock = clock
        self.started = clock()
        self.scenes = len(storyboard.scenes)
        fps = storyboard.output_fps
        self.scene_frames = [scene.duration * fps for scene in storyboard.scenes]
        self.total_frames = max(total_frames, 1)
        self.share = _KEYFRAME_SHARE_AI if ai else _KEYFRAME_SHARE_PLACEHOLDER
        restyle = ai and any(scene.restyled for scene in storyboard.scenes)
        self.clip_share = _CLIP_SHARE if clips else 0.0
        self.restyle_share = _RESTYLE_SHARE * (0.5 if clips else 1.0) if restyle else 0.0
        if clips or restyle:
            self.share = _KEYFRAME_SHARE_WITH_CLIPS
        if clips and restyle:
            self.clip_share -= self.restyle_share
        self.clips = 1.0 if not clips else 0.0  # the clip stage's own fraction (of its steps)
        self.clips_since: float | None = None  # when the video model began its first step
        self.restyled = 1.0 if not restyle else 0.0  # the restyle stage's own fraction (of its frames)
        self.restyle_since: float | None = None  # when the restyle stage began
        self.frames_at_model_event: float | None = None  # frames composed at the clip or restyle stage's last event
        self.keyframes_done_at: float | None = None  # when the last keyframe was made
        self.last_scene_frames = self.scene_frames[-1] if self.scene_frames else 0.0
        self.ready: dict[int, str] = {}  # scene index -> source
        self.keyframes = 0.0  # the keyframe stage's own fraction
        self.generating_since = self.started  # when the model started (after loading and cache hits)
        self.denoising = False
        self.frames_done = 0.0
        self.compose_seconds = 0.0  # composing time with no keyframe awaited, and the frames it made
        self.compose_frames = 0.0
        self.last_compose: float | None = None
        self.keyframe_since_compose = True
        self.encode_seconds = 0.0  # ffmpeg's pace between segments with no keyframe awaited
        self.encode_frames = 0.0
        self.last_segment: tuple[float, int] | None = None  # when, and the frames encoded by then
        self.keyframe_since_segment = True
        self.fraction = 0.0
        self.stage, self.message = "keyframes", "Starting"

    # -- events ---------------------------------------------------------------------------------

    def update(self, event: Event) -> Event:
        """The render-wide Progress for a stage's Progress; any other event, unchanged (after noting it)."""
        now = self.clock()
        if isinstance(event, Segment):
            self._encoded(event.first_frame + event.frames, now)
            return event
        if isinstance(event, KeyframeReady):
            self.ready[event.scene_index] = event.source
            self.keyframe_since_compose = self.keyframe_since_segment = True
            self.denoising = self.denoising or event.source == "ai"
            if not self.denoising:
                self.generating_since = now  # cached scenes and placeholders come before the model works
            return event
        if isinstance(event, ClipReady):  # composing may have waited for it: not a frame's cost
            self.keyframe_since_compose = self.keyframe_since_segment = True
            return event
        if isinstance(event, Preview):
            self.denoising = True
        if not isinstance(event, Progress):
            return event
        if event.stage in ("clips", "restyling"):
            if event.stage == "clips":
                self._clip_progress(event.fraction, now)
            else:
                self._restyle_progress(event.fraction, now)
            if self.stage in _FRAME_STAGES:
                # The bar stays on composing; once composing has not moved since this stage's last event, it
                # waits for this stage, and the message says what is being made (not a frozen frame count).
                if self.frames_done == self.frames_at_model_event:
                    self.message = event.message
                self.frames_at_model_event = self.frames_done
                return self._event(self.stage, self.message, now)
            self.stage, self.message = event.stage, event.message
            return self._event(event.stage, event.message, now)
        if event.stage in ("composing", "encoding"):
            self._composed(event.fraction if event.stage == "composing" else 1.0, now)
            if self.keyframes < 1.0:  # keep saying which scene is being made; the bar still moves
                return self._event(self.stage, self.message, now)
        else:
            if event.stage == "loading" and not self.denoising:
                self.generating_since = now
            else:
                self.keyframes = event.fraction
                if self.keyframes >= 1.0 and self.keyframes_done_at is None:
                    self.keyframes_done_at = now
            if self.stage in _FRAME_STAGES:  # a late keyframe does not take the bar back a stage
                return self._event(self.stage, self.message, now)
        self.stage, self.message = event.stage, event.message
        return self._event(event.stage, event.message, now)

    def _clip_progress(self, fraction: float, now: float) -> None:
        if fraction <= 0.0:  # the clip stage starts (again after loading the video model): the pace counts from here
            self.clips_since = now
            return
        if self.clips_since is None:
            self.clips_since = self.keyframes_done_at if self.keyframes_done_at is not None else now
        self.clips = max(self.clips, min(fraction, 1.0))

    def _restyle_progress(self, fraction: float, now: float) -> None:
        if self.restyle_since is None:  # its first event comes with its first frame: it began when the keyframes ended
            self.restyle_since = self.keyframes_done_at if self.keyframes_done_at is not None else now
        self.restyled = max(self.restyled, min(fraction, 1.0))

    def finished(self) -> Progress:
        """The last Progress of a render that is done."""
        self.fraction = 1.0
        return Progress("encoding", 1.0, "Done", None)

    def _composed(self, fraction: float, now: float) -> None:
        frames = fraction * self.total_frames
        # Composing's own pace: only stretches with no keyframe arriving in them count, so the
        # time spent waiting for the model is not taken for the cost of a frame.
        if self.last_compose is not None and not self.keyframe_since_compose and frames > self.frames_done:
            # Recent frames weigh most: composing slows down once ffmpeg's encoding is in full swing.
            made = frames - self.frames_done
            keep = 0.5 ** (made / _PACE_HALF_LIFE_FRAMES)
            self.compose_seconds = self.compose_seconds * keep + (now - self.last_compose)
            self.compose_frames = self.compose_frames * keep + made
        self.frames_done = max(self.frames_done, frames)
        self.last_compose = now
        self.keyframe_since_compose = False

    def _encoded(self, frames: int, now: float) -> None:
        if self.last_segment is not None and not self.keyframe_since_segment:
            self.encode_seconds += now - self.last_segment[0]
            self.encode_frames += frames - self.last_segment[1]
        self.last_segment = (now, frames)
        self.keyframe_since_segment = False

    def _pace(self) -> float | None:
        """Seconds to compose and encode one frame when no keyframe is awaited (None: not measured yet).

        Composing runs ahead of ffmpeg at first (into its pipe and look-ahead); once ffmpeg has handed
        on segments steadily, the slower of the two paces is the one the rest will go at."""
        if self.compose_frames < 2:
            return None
        composing = self.compose_seconds / self.compose_frames
        return max(composing, self.encode_seconds / self.encode_frames) if self.encode_frames >= 24 else composing

    # -- the estimate ---------------------------------------------------------------------------

    def _cheap_scenes(self) -> int:
        return sum(source != "ai" for source in self.ready.values())

    def _ai_units_done(self) -> float:
        return max(self.keyframes * self.scenes - self._cheap_scenes(), 0.0)

    def _keyframes_due(self, now: float) -> dict[int, float] | None:
        """Seconds from now until each missing keyframe exists (the model makes them in scene order),
        or None while the model's pace is unknown."""
        waiting = [index for index in range(self.scenes) if index not in self.ready]
        if not waiting or not self.denoising:  # no model at work: the rest come from the cache or are drawn
            return {index: 0.0 for index in waiting}
        done = self._ai_units_done()
        if done <= 0:
            return None
        # Since the model started, not recent steps only: the first keyframe runs alone (for a fast
        # first preview) and later ones in batches, whose last is often a short one of the same cost.
        per_scene = (now - self.generating_since) / done
        # Scenes' worth of steps already made for keyframes not yet out: under one in a batch of one,
        # up to the batch's size when a batch denoises several at once (they then come out together).
        under_way = max(done - (len(self.ready) - self._cheap_scenes()), 0.0)
        return {index: max(number + 1 - under_way, 0.0) * per_scene for number, index in enumerate(waiting)}

    def seconds_left(self, now: float) -> float | None:
        """The estimated seconds until the render is done, or None while a needed rate is unknown.

        Frames are made in scene order, each scene's once its keyframe exists, at the frames'
        measured pace (see ``_pace``)."""
        due, pace = self._keyframes_due(now), self._pace()
        if due is None or (pace is None and not any(due.values())):
            return None
        pace = pace or 0.0  # composing not measured yet: the model's time is most of what is left
        scale = self.total_frames / max(sum(self.scene_frames), 1)
        left, start = 0.0, 0.0
        for index, frames in enumerate(self.scene_frames):
            end = start + frames * scale
            remaining = end - max(start, self.frames_done)
            if remaining > 0:
                left = max(left, due.get(index, 0.0)) + remaining * pace
            start = end
        if due:
            left = max(left, max(due.values()))
        return left

    def _clips_left(self, now: float) -> float | None:
        """Seconds until the last clip exists (0 with none left), or None before the video model's pace is known."""
        return _stage_left(self.clips, self.clips_since, now)

    def _restyle_left(self, now: float) -> float | None:
        """Seconds until the last restyled shot exists (0 with none left), or None before its pace is known."""
        return _stage_left(self.restyled, self.restyle_since, now)

    def _with_clips(self, left: float | None, now: float) -> float | None:
        """The time left once the stages after the keyframes are counted: the rest of the restyled shots, then
        of the clips (made after them, in the same model thread), then the frames only they let through."""
        if self.clips >= 1.0 and self.restyled >= 1.0:
            return left
        restyle_left = self._restyle_left(now)
        # The clips' pace is only known once they run, after the restyled shots.
        clips_left = self._clips_left(now) if self.restyled >= 1.0 or self.clips >= 1.0 else None
        if restyle_left is None or clips_left is None:
            return None
        pace = self._pace() or 0.0
        return max(left or 0.0, restyle_left + clips_left + self.last_scene_frames * pace)

    def _event(self, stage: str, message: str, now: float) -> Progress:
        left = self._with_clips(self.seconds_left(now), now)
        frames_share = 1 - self.share - self.clip_share - self.restyle_share
        fraction = (self.share * self.keyframes + self.restyle_share * self.restyled + self.clip_share * self.clips
                    + frames_share * self.frames_done / self.total_frames)
        self.fraction = max(self.fraction, min(max(fraction, 0.0), 0.99))
        eta = left if left is not None and self.fraction > _MIN_FRACTION_FOR_ESTIMATE else None
        return Progress(stage, self.fraction, message, eta)


def _stage_left(fraction: float, since: float | None, now: float) -> float | None:
    """Seconds until a stage that is ``fraction`` done since ``since`` ends at its pace so far (0 when done;
    None before it has made anything)."""
    if fraction >= 1.0:
        return 0.0
    if since is None or fraction <= 0 or since >= now:
        return None
    return (1.0 - fraction) * (now - since) / fraction

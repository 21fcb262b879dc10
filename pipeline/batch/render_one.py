"""One storyboard of a batch through the project's Renderer, the same code locally and on a Ray worker.

:func:`render_storyboard` drains ``Renderer.render`` (images and composing + encoding overlap in it as
in every render), says when the storyboard's images all exist (a local batch then starts the next
storyboard's images) and which stage it is in, and returns an :class:`Outcome`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..contract.events import Done, Failed, KeyframeReady, MorphReady, Progress
from ..contract.storyboard import Storyboard
from ..images.plan import morph_frame_counts
from ..renderer import Renderer


@dataclass(frozen=True)
class Job:
    """One storyboard to render: its manifest id, the storyboard (checked), where it came from."""

    id: str
    storyboard: Storyboard
    source: str = ""


@dataclass
class Outcome:
    """How one attempt at one storyboard ended.

    ``video``/``report``: the finished files on this machine (the caller moves them); a Ray
    worker sends ``video_bytes``/``report_bytes`` instead. ``retry``: the attempt was lost to the
    machinery (an actor or worker died), not to the storyboard, so another attempt may succeed.
    """

    ok: bool
    reason: str = ""
    images_s: float = 0.0
    encode_s: float = 0.0
    where: str = ""
    video: Path | None = None
    report: Path | None = None
    video_bytes: bytes | None = None
    report_bytes: bytes | None = None
    retry: bool = False


def render_storyboard(renderer: Renderer, storyboard: Storyboard, where: str,
                      on_stage: Callable[[str], None] | None = None,
                      on_images_done: Callable[[], None] | None = None,
                      cancel: threading.Event | None = None) -> Outcome:
    """Render ``storyboard``; ``on_images_done`` is called once, when its last image exists (or it ended).
    ``cancel`` stops it (within a step or a frame), as Stop does a render."""
    started = time.monotonic()
    images_at: float | None = None
    keyframes_left = len(storyboard.scenes)
    morphs_left = len(morph_frame_counts(storyboard))
    last_stage = ""

    def images_done(now: float) -> None:
        nonlocal images_at
        if images_at is None:
            images_at = now
            if on_images_done is not None:
                on_images_done()

    try:
        for event in renderer.render(storyboard, cancel):
            if isinstance(event, (KeyframeReady, MorphReady)):
                keyframes_left -= isinstance(event, KeyframeReady)
                morphs_left -= isinstance(event, MorphReady)
                if keyframes_left <= 0 and morphs_left <= 0:
                    images_done(time.monotonic())
            elif isinstance(event, Progress) and on_stage is not None and event.stage != last_stage:
                last_stage = event.stage
                on_stage(event.stage)
            elif isinstance(event, Done):
                now = time.monotonic()
                images_done(now)
                return Outcome(True, images_s=round(images_at - started, 3), encode_s=round(now - images_at, 3),
                               where=where, video=event.video_path, report=event.report_path)
            elif isinstance(event, Failed):
                return Outcome(False, event.message, where=where)
        return Outcome(False, "The render ended without a video.", where=where)
    finally:
        images_done(time.monotonic())

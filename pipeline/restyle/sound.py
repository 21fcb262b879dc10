"""The source video's sound under a restyled video (unless the storyboard has its own soundtrack)."""

from __future__ import annotations

from dataclasses import replace

from ..contract.storyboard import Storyboard
from .source import probe_video


def with_source_sound(storyboard: Storyboard) -> Storyboard:
    """``storyboard`` with its source video as the soundtrack, when it restyles one that has sound.

    The sound plays from the first restyled scene's span start, from the video's first frame, so a
    storyboard made from a whole video (one scene per shot) keeps its sound in sync. A storyboard
    with its own ``audio`` keeps that; one without a source, or whose source is silent, is unchanged.
    """
    spans = [scene for scene in storyboard.scenes if scene.restyled]
    if storyboard.audio or not storyboard.source_video or not spans:
        return storyboard
    if not probe_video(storyboard.source_video).has_audio:
        return storyboard
    return replace(storyboard, audio=storyboard.source_video, audio_start=spans[0].source_start)

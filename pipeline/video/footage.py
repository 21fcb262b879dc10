"""A scene's footage as the timeline shows it: a still through its camera move, or moving frames.

The renderer's loader gives the timeline, per scene, either a picture (a keyframe: a *still*,
drawn through the scene's ``motion``) or a finished footage folder
(``pipeline.contract.footage.Footage``: a clip from a video model, a restyled shot, anything
made of frames at a rate). :class:`MovingSource` shows footage at the video's size and rate:
each footage frame cover-fitted to the frame (``pipeline.video.imaging``) and resampled to the
video's frame rate by motion-compensated interpolation (``pipeline.video.resample``). Time 0
is the first frame on which the scene is visible; past its end the last frame holds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..contract.footage import Footage
from .imaging import fit_cover_array
from .resample import Resampler


class MovingSource:
    """``footage`` shown at ``width`` x ``height`` and ``fps`` (the video's); frames are read lazily."""

    def __init__(self, footage: Footage, width: int, height: int, fps: float) -> None:
        self.footage, self.width, self.height, self.fps = footage, width, height, fps
        self._fitted = lru_cache(maxsize=4)(self._fit)
        self._resampler = Resampler(self._fitted, len(footage), footage.info.fps)

    def _fit(self, index: int) -> np.ndarray:
        frame = self.footage.frame(index)
        if frame.shape[:2] == (self.height, self.width):
            return np.ascontiguousarray(frame)
        return fit_cover_array(frame, self.width, self.height)

    def at(self, seconds: float) -> np.ndarray:
        """The frame ``seconds`` after the footage's first, at the video's size."""
        return self._resampler.at(seconds)

    def frame_on(self, frame: int, first: int) -> np.ndarray:
        """What video frame ``frame`` shows when the footage starts on video frame ``first``."""
        return self.at((frame - first) / self.fps)

    def spread(self, i: int, n: int) -> np.ndarray:
        """Frame ``i`` of ``n`` frames that show the whole footage evenly, from just after its first
        frame to just before its last (the frames either side are the scenes it joins)."""
        last = (len(self.footage) - 1) / self.footage.info.fps
        return self.at(last * (i + 1) / (n + 1))

    @property
    def first(self) -> np.ndarray:
        return self._fitted(0)

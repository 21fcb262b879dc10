"""A scene's footage as the timeline shows it: a still through its camera move, or moving frames.

The renderer's loader gives the timeline, per scene, either a picture (a keyframe: a *still*,
drawn through the scene's ``motion``) or a finished footage folder
(``pipeline.contract.footage.Footage``: a clip from a video model, a restyled shot, anything
made of frames at a rate). :class:`MovingSource` shows footage at the video's size and rate:
resampled to the video's frame rate by motion-compensated interpolation (``pipeline.video.resample``,
at the footage's own size, which is cheaper than the video's: a clip is made smaller than 720p)
and each resulting frame cover-fitted to the video's frame (``pipeline.video.imaging``). Time 0
is the first frame on which the scene is visible; past its end the last frame holds. On a machine
with cores to spare the frames the timeline asks for one by one are made a few ahead in worker
threads (``pipeline.video.resample_ahead``); they are the same frames.
"""

from __future__ import annotations

import numpy as np

from ..contract.footage import Footage
from .imaging import fit_cover_array
from .resample import Resampler
from .resample_ahead import FramesAhead, default_workers


class MovingSource:
    """``footage`` shown at ``width`` x ``height`` and ``fps`` (the video's); frames are read lazily.

    ``workers``: threads that make the frames :meth:`frame_on` is asked for ahead of time (None: as
    many as this machine spares, :func:`~pipeline.video.resample_ahead.default_workers`; 0: none).
    """

    def __init__(self, footage: Footage, width: int, height: int, fps: float, workers: int | None = None) -> None:
        self.footage, self.width, self.height, self.fps = footage, width, height, fps
        self._resampler = Resampler(lambda index: np.ascontiguousarray(footage.frame(index)), len(footage),
                                    footage.info.fps)
        workers = default_workers() if workers is None else workers
        self._ahead = FramesAhead(footage.frame, len(footage), footage.info.fps, self._fit, workers) \
            if workers > 0 else None

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] == (self.height, self.width):
            return frame.copy()  # the resampler keeps its recent frames: the caller gets its own
        return fit_cover_array(frame, self.width, self.height)

    def at(self, seconds: float) -> np.ndarray:
        """The frame ``seconds`` after the footage's first, at the video's size."""
        return self._fit(self._resampler.at(seconds))

    def frame_on(self, frame: int, first: int) -> np.ndarray:
        """What video frame ``frame`` shows when the footage starts on video frame ``first``."""
        if self._ahead is not None:
            return self._ahead.get(frame, first, self.fps)
        return self.at((frame - first) / self.fps)

    def spread(self, i: int, n: int) -> np.ndarray:
        """Frame ``i`` of ``n`` frames that show the whole footage evenly, from just after its first
        frame to just before its last (the frames either side are the scenes it joins)."""
        last = (len(self.footage) - 1) / self.footage.info.fps
        return self.at(last * (i + 1) / (n + 1))

    @property
    def first(self) -> np.ndarray:
        """The footage's first frame at the video's size."""
        return self._fit(np.asarray(self.footage.frame(0)))

"""The temporal warping error of Lai et al. (ECCV 2018): how much a restyled video flickers.

For each pair of consecutive output frames within a shot, the next frame is warped back to the
first along the *source* video's optical flow, and the squared difference is averaged over the
pixels the flow can be trusted on (the forward-backward check of ``pipeline.video.flow``). The
error of a video is the mean over its pairs. Pixel values are taken in 0..1, so a video of frames
that follow the source's motion exactly scores 0.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..video.flow import occlusion_mask, optical_flow, warp


def warping_error(output: Iterable[np.ndarray], source: Iterable[np.ndarray], cuts: Iterable[int] = ()) -> float:
    """The mean warping error of ``output`` against the motion of ``source`` (same frame count and size).

    ``cuts`` lists the frames that begin a new shot: the pair across a cut is skipped.
    """
    skip = set(cuts)
    errors: list[float] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for index, (out, src) in enumerate(zip(output, source)):
        if previous is not None and index not in skip:
            out_before, src_before = previous
            forward = optical_flow(src_before, src)
            backward = optical_flow(src, src_before)
            trusted = ~occlusion_mask(forward, backward)
            if trusted.any():
                back = warp(out.astype(np.float32) / 255.0, forward)
                difference = (out_before.astype(np.float32) / 255.0 - back) ** 2
                errors.append(float(difference.mean(axis=2)[trusted].mean()))
        previous = (out, src)
    return float(np.mean(errors)) if errors else 0.0

"""Footage frames made ahead of the timeline, in worker threads: interpolation on several cores.

The timeline asks a clip for its frames one after another (``MovingSource.frame_on``). Each frame
is independent once the motion of its pair of footage frames is known, and OpenCV releases the GIL,
so on a machine with cores to spare (a GPU server: the model is on the GPU, the CPU mostly idle)
the next frames are made while the encoder takes the current one. The motion of a pair is found
once, by whichever job needs it first (the others wait for it: no job waits on the pool, so the
pool cannot deadlock). Frames are the same as made one by one (the same functions, the same
inputs); only when they are made changes.

On a machine with few cores (this project's CI: 2) none is spared: ffmpeg and the model need them,
and frames are made in the caller's thread as before (:func:`default_workers` is 0).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np

from .resample import PairMotion, footage_step, interpolate, pair_flows

MAX_WORKERS = 4
"""Frames made at once at most: past about four the encoder, not interpolation, sets the pace."""

_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def default_workers() -> int:
    """Worker threads for interpolation here: cores beyond two (ffmpeg's and the caller's), at most
    :data:`MAX_WORKERS`; 0 (frames made in the caller's thread) on a machine with four cores or fewer."""
    spare = (os.cpu_count() or 1) - 4
    return max(0, min(MAX_WORKERS, spare))


def _pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool per size, for every render of the process (daemon threads, made on first use)."""
    with _pool_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="scene2video-resample")
        return pool


class _Once:
    """A value made once, by the first caller; later callers wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: PairMotion | None = None

    def get(self, make: Callable[[], PairMotion]) -> PairMotion:
        with self._lock:
            if self._value is None:
                self._value = make()
            return self._value


class FramesAhead:
    """Frames ``show(seconds)`` of a footage, made up to ``window`` frames ahead in ``workers`` threads.

    ``frame(i)``: footage frame ``i`` (read-only, safe to read from several threads); ``count``, ``fps``:
    the footage's; ``fit(frame)``: the frame at the video's size (a new array). ``get(frame, first,
    video_fps)`` is the frame the timeline asks for; asking for any other than the next one starts afresh.
    """

    def __init__(self, frame: Callable[[int], np.ndarray], count: int, fps: float,
                 fit: Callable[[np.ndarray], np.ndarray], workers: int, window: int | None = None) -> None:
        self._frame, self._count, self._fps, self._fit = frame, count, fps, fit
        self._pool = _pool(workers)
        self._window = window or 2 * workers
        self._jobs: dict[tuple[int, int], Future] = {}
        self._motions: dict[int, _Once] = {}
        self._lock = threading.Lock()
        self._video_fps = 0.0

    def get(self, frame: int, first: int, video_fps: float) -> np.ndarray:
        """Video frame ``frame`` of a footage that starts on video frame ``first``."""
        key = (frame, first)
        if key not in self._jobs or video_fps != self._video_fps:
            self._restart(video_fps)
        job = self._jobs.pop(key, None) or self._submit(key)
        for ahead in range(frame + 1, frame + 1 + self._window):
            if (ahead, first) not in self._jobs:
                self._jobs[(ahead, first)] = self._submit((ahead, first))
        return job.result()

    def _restart(self, video_fps: float) -> None:
        for job in self._jobs.values():
            job.cancel()  # not started yet: never made; running: finishes, unread
        self._jobs.clear()
        self._video_fps = video_fps

    def _submit(self, key: tuple[int, int]) -> Future:
        frame, first = key
        return self._pool.submit(self._make, (frame - first) / self._video_fps)

    def _make(self, seconds: float) -> np.ndarray:
        """The frame at ``seconds`` (clamped to the footage), at the video's size: as ``Resampler.at``."""
        index, t = footage_step(seconds, self._fps, self._count)
        if t is None:
            return self._fit(np.ascontiguousarray(self._frame(index)))
        a, b = np.ascontiguousarray(self._frame(index)), np.ascontiguousarray(self._frame(index + 1))
        return self._fit(interpolate(a, b, t, self._motion(index, a, b)))

    def _motion(self, index: int, a: np.ndarray, b: np.ndarray) -> PairMotion:
        with self._lock:
            once = self._motions.get(index)
            if once is None:
                once = self._motions[index] = _Once()
                for old in [i for i in self._motions if i < index - 1]:  # pairs the frames have passed
                    del self._motions[old]
        return once.get(lambda: pair_flows(a, b))

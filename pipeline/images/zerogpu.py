"""Hugging Face ZeroGPU support: ask for a GPU only while keyframes are generated.

On a ZeroGPU Space the ``spaces`` package is installed and ``SPACES_ZERO_GPU``
is set; a function wrapped with ``spaces.GPU(duration=...)`` gets a GPU for at
most ``duration`` seconds per call. ``duration`` may be a callable: it receives
the same arguments as the wrapped function and returns the seconds to ask for,
so a short storyboard asks for less (and waits less in the queue) than a long
one. Elsewhere ``spaces.GPU`` has no effect, and without the package the
function is returned unchanged, so the same code runs locally.

What ``spaces`` does on ZeroGPU shapes :func:`zerogpu_stream`: the wrapped
function runs in a forked worker process, its arguments and every result (each
yielded item, for a generator) are pickled across, the caller's Gradio request
(read from a context variable in the calling thread) decides whose quota pays,
and closing a wrapped generator stops it at its next ``yield``. So callbacks,
queues and ``threading.Event`` objects cannot be passed in; the GPU side gets
plain data and its own stop flag.

This module imports neither torch nor gradio (nor ``spaces``) when it is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import threading
from typing import Callable, Generator, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., object])
Arg = TypeVar("Arg")
Item = TypeVar("Item")
Result = TypeVar("Result")

# stream(arg, stop): yields items, returns a result, and ends soon after ``stop`` is set.
Stream = Callable[[Arg, threading.Event], Generator[Item, None, Result]]

# Seconds of GPU time per denoising step per megapixel of keyframe. SD-Turbo's UNet
# costs about 3.1 TFLOP per step per megapixel (bench/gpu_keyframes.py counts 0.80 TFLOP
# at 512x512); a ZeroGPU slice of an H200 sustaining 100-200 TFLOP/s in bf16 needs
# 0.015-0.03 s for that. The constant keeps a margin of 3x or more (attention grows
# faster than the pixel count at 1080p, batches may be small), because a task that runs
# over its duration is aborted. Refine it with measured GPU rows of the bench.
STEP_SECONDS_PER_MEGAPIXEL = 0.1
# Decoding one keyframe with the full VAE costs about 9.6 TFLOP per megapixel (3x one
# UNet step), once per scene whatever the step count: 0.05-0.1 s, kept with 2x margin.
DECODE_SECONDS_PER_MEGAPIXEL = 0.2
# Moving the weights onto the GPU, CUDA start-up and the first (slow) call.
OVERHEAD_SECONDS = 10.0
MIN_SECONDS = 15
DEFAULT_CAP_SECONDS = 120

# A clip: seconds per denoising step per megapixel-frame (pixels x frames). A distilled LTX-Video step
# at 768x512 x 121 frames (47 megapixel-frames, 6,144 latent tokens through a 2B transformer) is
# about 25 TFLOP plus attention: 0.2-0.5 s on a ZeroGPU slice of an H200; 0.03 keeps a 3x margin.
# Decoding the clip with the video VAE costs about a step and a half per megapixel-frame.
CLIP_STEP_SECONDS_PER_MEGAPIXEL_FRAME = 0.03
CLIP_DECODE_SECONDS_PER_MEGAPIXEL_FRAME = 0.05
CLIP_CAP_SECONDS = 300

_FALSE_VALUES = {"", "0", "false", "no", "off"}


def _spaces_importable() -> bool:
    try:
        return importlib.util.find_spec("spaces") is not None
    except (ImportError, ValueError):
        return False


def zerogpu_available() -> bool:
    """True when running on ZeroGPU: the ``spaces`` package is there and ``SPACES_ZERO_GPU`` is set."""
    flag = os.environ.get("SPACES_ZERO_GPU")
    if flag is None or flag.strip().lower() in _FALSE_VALUES:
        return False
    return _spaces_importable()


def estimate_gpu_seconds(n_scenes: int, steps: int, width: int, height: int, cap: int = DEFAULT_CAP_SECONDS) -> int:
    """GPU seconds to ask for: scenes x (steps x per-step cost + decode) x megapixels + overhead.

    At least ``MIN_SECONDS`` (so a one-scene draft is not starved) and at most ``cap``.
    """
    if n_scenes < 0 or steps < 0 or width < 0 or height < 0:
        raise ValueError("n_scenes, steps, width and height must not be negative")
    if cap <= 0:
        raise ValueError("cap must be a positive number of seconds")
    megapixels = width * height / 1_000_000
    seconds = (
        n_scenes * megapixels * (steps * STEP_SECONDS_PER_MEGAPIXEL + DECODE_SECONDS_PER_MEGAPIXEL)
        + OVERHEAD_SECONDS
    )
    return int(min(cap, max(MIN_SECONDS, math.ceil(seconds))))


def estimate_clip_gpu_seconds(steps: int, frames: int, width: int, height: int, cap: int = CLIP_CAP_SECONDS) -> int:
    """GPU seconds to ask for one clip: (steps x per-step cost + decode) x megapixel-frames + overhead,
    at least ``MIN_SECONDS`` and at most ``cap``."""
    if steps < 0 or frames < 0 or width < 0 or height < 0:
        raise ValueError("steps, frames, width and height must not be negative")
    megapixel_frames = width * height * frames / 1_000_000
    seconds = megapixel_frames * (steps * CLIP_STEP_SECONDS_PER_MEGAPIXEL_FRAME
                                  + CLIP_DECODE_SECONDS_PER_MEGAPIXEL_FRAME) + OVERHEAD_SECONDS
    return int(min(cap, max(MIN_SECONDS, math.ceil(seconds))))


def gpu_task(fn: F, duration: Callable[..., int]) -> F:
    """``spaces.GPU(duration=duration)(fn)`` when ``spaces`` can be imported, else ``fn`` itself.

    ``duration`` is called by ``spaces`` with the same arguments as ``fn`` and returns
    the seconds to reserve (see :func:`estimate_gpu_seconds`).
    """
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)


class _Finished(Generic[Result]):
    """The GPU side's return value, sent as its last item: ``spaces`` passes on yielded items only."""

    def __init__(self, value: Result) -> None:
        self.value = value


def zerogpu_stream(
    stream: Stream[Arg, Item, Result], duration: Callable[[Arg], int]
) -> Callable[[Arg, threading.Event], Generator[Item, None, Result | None]] | None:
    """``stream`` run under ``spaces.GPU(duration=duration)`` on a ZeroGPU Space; None elsewhere.

    ``stream(arg, stop)`` must take and yield picklable values (its ``arg`` and items
    cross into the GPU worker process and back) and stop soon after ``stop`` is set;
    on the GPU side it gets a fresh ``stop`` that is set when the caller closes it.

    The returned ``run(arg, cancel)`` must be called in the thread that serves the
    Gradio request (ZeroGPU reads the request from there to charge the visitor's
    quota). It yields the stream's items as they come and returns its result, or
    None when ``cancel`` was set: it then closes the GPU task, which ends at the
    stream's next item. Errors of the GPU task (quota, timeout, pickling) are raised.
    """
    if not zerogpu_available():
        return None
    on_gpu = gpu_task(_gpu_side(stream), duration)

    def run(arg: Arg, cancel: threading.Event) -> Generator[Item, None, Result | None]:
        return _consume(on_gpu(arg), cancel)

    return run


def _gpu_side(stream: Stream[Arg, Item, Result]) -> Callable[[Arg], Generator[object, None, None]]:
    """A generator function that runs ``stream`` with its own stop flag and ends with _Finished."""

    def run_on_gpu(arg: Arg) -> Generator[object, None, None]:
        # Closing this generator (spaces does when the caller closes) raises GeneratorExit in
        # ``stream``, whose cleanup sets its stop flag and waits for the model to stop.
        result = yield from stream(arg, threading.Event())
        yield _Finished(result)

    return run_on_gpu


def _consume(items: Generator[object, None, None], cancel: threading.Event) -> Generator[Item, None, Result | None]:
    """Pass items on until the GPU task ends; close it as soon as ``cancel`` is set."""
    finished: _Finished | None = None
    try:
        for item in items:
            if isinstance(item, _Finished):
                # Read on to the end rather than return now: the GPU is released when the task ends.
                finished = item
                continue
            yield item  # type: ignore[misc]
            if cancel.is_set():
                return None
    finally:
        items.close()
    if finished is None:
        raise RuntimeError("the GPU task ended without a result")
    return finished.value

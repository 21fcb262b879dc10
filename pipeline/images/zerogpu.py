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


# A clip from the video model (LTX-Video 13B distilled by default). Its transformer sees one token per
# latent voxel: (frames - 1) / 8 + 1 latent frames of (width / 32) x (height / 32). Per denoising step
# it costs about 2 x 13e9 FLOP per token (26 TFLOP per thousand tokens) plus attention, 4 x 4096
# x 48 FLOP per pair of tokens; a ZeroGPU H200 slice sustaining ~200 TFLOP/s in bf16 needs 0.13 s
# per thousand tokens and 4e-9 s per pair. A 5 s clip at 768x512 (129 frames, 6528 tokens) is then
# ~1 s a step. Kept with 1.5x margin; bench/gpu_clips.py measures the real figure on a GPU.
CLIP_STEP_SECONDS_PER_KTOKEN = 0.2
CLIP_ATTENTION_SECONDS_PER_PAIR = 6e-9
# The video VAE decodes every frame: ~0.1 s per million frame pixels (5 s for a 5 s clip at 768x512).
CLIP_DECODE_SECONDS_PER_MEGAVOXEL = 0.15
CLIP_OVERHEAD_SECONDS = 20.0  # the text encoder, weights onto the GPU, the first call's warm-up
CLIP_MIN_SECONDS = 30
CLIP_DEFAULT_CAP_SECONDS = 300


def clip_tokens(frames: int, width: int, height: int, frame_step: int = 8, side: int = 32) -> int:
    """The video transformer's tokens for one call: latent frames x latent rows x latent columns."""
    return ((max(frames, 1) - 1) // frame_step + 1) * max(1, height // side) * max(1, width // side)


def estimate_clip_gpu_seconds(frames: int, width: int, height: int, steps: int, *, max_frames: int = 161,
                              cap: int = CLIP_DEFAULT_CAP_SECONDS, frame_step: int = 8, side: int = 32) -> int:
    """GPU seconds to ask for one clip of ``frames`` frames at ``width`` x ``height``: per call (at most
    ``max_frames`` frames each), ``steps`` x (tokens + attention) plus the decode, plus the overhead.

    The defaults are LTX-Video's compression (8 in time, 32 in space); Wan's are ``frame_step=4, side=16``.
    At least ``CLIP_MIN_SECONDS`` and at most ``cap``.
    """
    if frames < 0 or width < 0 or height < 0 or steps < 0:
        raise ValueError("frames, width, height and steps must not be negative")
    if cap <= 0:
        raise ValueError("cap must be a positive number of seconds")
    calls = max(1, math.ceil((frames - 1) / max(1, max_frames - frame_step - 1)))  # continuing calls overlap
    per_call = min(frames, max_frames)
    tokens = clip_tokens(per_call, width, height, frame_step, side)
    step_seconds = tokens / 1000 * CLIP_STEP_SECONDS_PER_KTOKEN + tokens * tokens * CLIP_ATTENTION_SECONDS_PER_PAIR
    decode = frames * width * height / 1_000_000 * CLIP_DECODE_SECONDS_PER_MEGAVOXEL
    seconds = calls * steps * step_seconds + decode + CLIP_OVERHEAD_SECONDS
    return int(min(cap, max(CLIP_MIN_SECONDS, math.ceil(seconds))))


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

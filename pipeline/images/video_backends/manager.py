"""The shared video backend: one video pipeline (LTX-Video, Wan) on one device, loaded once.

:class:`VideoModelManager` implements ``pipeline.images.clip_generation.VideoModel``. It
never raises for a clip that cannot be made: the answer carries a one-line reason (no
model, failed load, out of memory, blank clip, stopped) and the scene is shown as a still.

What it does around the family's pipeline call (``family.py`` says what a family supplies):

* **Long clips.** A clip longer than the model's ``max_frames`` is made in several calls,
  each conditioned on the previous call's last frames and joined without a seam
  (``stitching.py``); frames go to the footage folder as each call decodes.
* **Pinned pictures.** Frame 0 is the start picture and a transition's last frame the end
  picture, exactly (``stitching.pin_start`` / ``pin_end``).
* **Previews.** After each denoising step, one frame (the middle latent frame, shrunk to at
  most 16 latent pixels a side) is decoded through the VAE: a small fraction of one full
  frame's decode, never the whole clip.
* **Memory.** VAE tiling is switched on for a call whose frames x pixels pass
  :data:`TILE_ABOVE_VOXELS`. Out of memory: the cache is emptied and the clip is tried once
  more with tiling on and calls of at most half the frames (more calls, same frame count);
  a second failure is the reason ``out of GPU memory``.
* **Stop.** ``should_stop`` is polled after every denoising step; once true the step callback
  raises, so the pipeline ends within that step, skipping the VAE decode, and the clip
  answers ``stopped`` (its unfinished footage folder stays undescribed).

torch and diffusers are imported inside functions only.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ...contract.errors import RenderCancelled, is_out_of_memory, short_error
from ...contract.footage import FootageWriter
from .. import hub_access
from ..batching import needs_cpu_offload
from ..clip_batches import MAX_CLIP_BATCH, auto_clip_batch, batch_key
from ..clip_generation import ClipRequest, ClipStepCallback, FrameRules, GeneratedClip
from ..generation import REASON_OUT_OF_MEMORY, REASON_STOPPED, ModelInfo, stop_requested
from ..library_logs import route_library_logs
from ..model_names import default_video_model_id, model_source
from ..resident import ResidentPipeline, empty_device_cache, pick_dtype, weights_bytes
from . import family_by_name, family_for, known_pipelines
from .family import CallInputs, VideoFamily, clip_size_picture
from .previews import PreviewBudget
from .stitching import PIN_FRAMES, ClipStitcher, pin_start, plan_calls

log = logging.getLogger(__name__)

# A call decoding more than this many frame pixels (frames x width x height) decodes in VAE tiles:
# 65 frames at 768x512. Below it the untiled decode is faster and fits beside the weights.
TILE_ABOVE_VOXELS = 65 * 768 * 512
REASON_BLANK_CLIP = "the video model returned a blank (NaN or all-black) clip"
_BLACK_LEVEL = 0.01


class _StopClip(Exception):
    """Raised from the step callback: the pipeline stops at once (no decode of a clip nobody wants)."""


class VideoModelManager(ResidentPipeline):
    """One video pipeline on one device, shared by every session (see the module doc).

    Prefer :func:`pipeline.images.registry.get_video_model`. Thread-safe: loading happens once
    under a lock, and clips are made one at a time through one lock. ``max_frames`` caps the
    frames of one model call (None: the family's own cap); ``batch_size`` how many clips one call
    may make (None: auto, see :meth:`clip_batch_size`).
    """

    kind = "video"

    def __init__(self, model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
                 allow_pickle: bool = False, max_frames: int | None = None, batch_size: int | None = None) -> None:
        super().__init__(model_id or default_video_model_id(), device)
        self.local_files_only = local_files_only
        self.allow_pickle = allow_pickle
        self.max_frames = max_frames
        self.batch_size = batch_size
        self._family: VideoFamily | None = None

    # -- state ---------------------------------------------------------------

    @property
    def family(self) -> VideoFamily:
        """The loaded checkpoint's family (before loading: a guess from the id)."""
        return self._family or family_by_name(self.model_id)

    def _forget(self) -> None:
        self._family = None

    def info(self) -> ModelInfo:
        """Model id, device, dtype and state, for the page's model line and the report."""
        state, reason, device, dtype = self._state()
        return ModelInfo(self.model_id, device, state, dtype, reason, self._offloaded, "")

    @property
    def default_steps(self) -> int:
        """Denoising steps for a clip: the loaded family's own (distilled LTX-Video 8, Wan 2.1 50, ...)."""
        return self.family.call_defaults(self._pipe, self.model_id).steps

    @property
    def default_guidance(self) -> float:
        """Guidance scale for a clip: the loaded family's own (distilled LTX-Video 1.0, Wan 2.2 3.5, ...)."""
        return self.family.call_defaults(self._pipe, self.model_id).guidance

    def frame_rules(self) -> FrameRules:
        """The model's frame rate, frame-count and size rules: read from the pipeline once loaded,
        else the family's defaults guessed from the id."""
        return self.family.frame_rules(self._pipe, self.model_id, self.max_frames)

    # -- loading -------------------------------------------------------------

    def use_pipeline(self, pipe: Any) -> None:
        """Adopt an already built pipeline (benches with random weights), placed on this device."""
        family = family_for(type(pipe).__name__)
        if family is None:
            raise ValueError(f"{type(pipe).__name__} is not a video pipeline this app drives")
        with self._load_lock, self._gpu_lock:
            self._dtype = pipe.transformer.dtype if getattr(pipe, "transformer", None) is not None else None
            self._place(pipe)
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._family, self._load_error = pipe, family, None

    def _load_once(self) -> None:
        try:
            pipe, family = self._load_pipeline()
        except Exception as exc:  # noqa: BLE001 - remembered and shown per clip
            self._load_error = self._describe_load_error(exc)
            log.warning("Could not load video model %r: %s", self.model_id, short_error(exc, 400, with_type=True))
            return
        self._pipe, self._family = pipe, family
        log.info("Loaded video model %r (%s) on %s as %s%s", self.model_id, family.name, self.device,
                 str(self._dtype).replace("torch.", ""), " with CPU offload" if self._offloaded else "")

    def _describe_load_error(self, exc: BaseException) -> str:
        name = f"Video model '{self.model_id}'"
        if isinstance(exc, _NotAVideoModel):
            return f"{name} {exc}"
        if isinstance(exc, (OSError, ValueError)):
            if model_source(self.model_id) == "hub" and not hub_access.hub_reachable():
                return f"{name} could not be loaded: {hub_access.OFFLINE_REASON}"
            return f"{name} could not be loaded (offline or not found): {short_error(exc)}"
        return f"{name} could not be loaded: {short_error(exc, with_type=True)}"

    def _model_index(self, source: str, local_only: bool) -> dict:
        if source == "folder":
            path = Path(self.model_id).expanduser() / "model_index.json"
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(self.model_id, "model_index.json", local_files_only=local_only))
        index = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(index, dict):
            raise ValueError("model_index.json is not an object")
        return index

    def _load_pipeline(self) -> tuple[Any, VideoFamily]:
        route_library_logs()
        source = model_source(self.model_id)
        if source == "single_file":
            raise _NotAVideoModel("is a single weights file: a video model loads from a diffusers folder or hub id")
        local_only = hub_access.local_only(self.local_files_only)
        index = self._model_index(source, local_only)
        pipeline_class = str(index.get("_class_name", ""))
        family = family_for(pipeline_class)
        if family is None:
            known = ", ".join(known_pipelines())
            raise _NotAVideoModel(f"is a {pipeline_class or 'unknown'} checkpoint, not a video model this app "
                                  f"drives ({known})")
        self._dtype = pick_dtype(self.device)
        kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": local_only}
        if not self.allow_pickle:
            kwargs["use_safetensors"] = True
        model = str(Path(self.model_id).expanduser()) if source == "folder" else self.model_id
        pipe = family.load(model, index, kwargs)
        self._place(pipe)
        pipe.set_progress_bar_config(disable=True)
        return pipe, family

    def _place(self, pipe: Any) -> None:
        device = self.device
        if device.startswith("cuda"):
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            if needs_cpu_offload(weights_bytes(pipe), free):
                log.warning("GPU %s is too small for the video model's weights: using CPU offload", device)
                pipe.enable_model_cpu_offload(device=device)
                self._offloaded = True
                return
        pipe.to(device)

    # -- clips ---------------------------------------------------------------

    def generate_clip(self, request: ClipRequest, folder: Path, on_step: ClipStepCallback | None = None,
                      should_stop: Callable[[], bool] | None = None) -> GeneratedClip:
        """Make ``request``'s clip into the new footage folder ``folder``; never raises for a failed clip.

        ``on_step(request, step, total, preview)`` after every denoising step (steps counted over
        all calls of a long clip); stops within one step once ``should_stop()`` is true.
        """
        if not self.load():
            return self._failed(request, self._load_error or f"Video model '{self.model_id}' could not be loaded")
        rules = self.frame_rules()
        problem = self._refuse(request, rules)
        if problem:
            return self._failed(request, problem)
        max_frames = rules.max_frames
        for attempt in (1, 2):
            if stop_requested(should_stop):
                return self._failed(request, REASON_STOPPED)
            try:
                written = self._make(request, Path(folder), rules, max_frames, attempt == 2, on_step, should_stop)
            except _StopClip:
                return self._failed(request, REASON_STOPPED)
            except _BlankClip:
                return self._failed(request, REASON_BLANK_CLIP)
            except Exception as exc:  # noqa: BLE001 - every failure becomes the clip's reason
                if not is_out_of_memory(exc):
                    return self._failed(request, f"clip generation failed: {short_error(exc, with_type=True)}")
                written = None
            if written is not None:
                log.info("Clip %s: %d frames from %s on %s (%dx%d, %d steps)", request.id or request.scene_index + 1,
                         written, self.model_id, self.device, request.width, request.height, request.steps)
                return GeneratedClip(request.scene_index, Path(folder), frames=written)
            # Out of memory (handled outside the except block, so the traceback's tensors are freed).
            empty_device_cache(self.device)
            smaller = max(2 * rules.frame_step + 1, (max_frames // 2 - 1) // rules.frame_step * rules.frame_step + 1)
            log.warning("Clip %s: out of GPU memory at %d frames a call; retrying with VAE tiling and %d",
                        request.id, max_frames, smaller)
            max_frames = smaller
        return self._failed(request, REASON_OUT_OF_MEMORY)

    def clip_batch_size(self, request: ClipRequest) -> int:
        """How many clips like ``request`` one call may make (1: one at a time).

        The server's ``--batch-size`` when set. Auto: on a GPU, as many as its free memory holds
        (:func:`pipeline.images.clip_batches.auto_clip_batch`) for clips short enough to decode
        untiled; a long clip fills the GPU alone. On a CPU 1: one clip already uses every core.
        A family whose pipeline cannot condition each clip of a batch on its own pictures (Wan) is
        always 1.
        """
        if not self.family.batches_clips:
            return 1
        if self.batch_size is not None:
            return max(1, min(MAX_CLIP_BATCH, int(self.batch_size)))
        voxels = request.num_frames * request.width * request.height
        if not self.device.startswith("cuda") or self._offloaded or voxels > TILE_ABOVE_VOXELS:
            return 1
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(self.device))
        return auto_clip_batch(free, request)

    def generate_clips(self, requests: list[ClipRequest], folders: list[Path],
                       on_step: ClipStepCallback | None = None,
                       should_stop: Callable[[], bool] | None = None) -> list[GeneratedClip]:
        """Make every clip of ``requests`` (one :func:`~pipeline.images.clip_batches.batch_key`, each one
        call long) in one pipeline call, each into its folder; one answer per request, in order.

        ``on_step`` is called for every clip after every step (the preview with the first). Clips
        that cannot share a call, or a batch out of memory, are made one at a time instead. Never
        raises for a failed clip, like :meth:`generate_clip`.
        """
        rules = self.frame_rules() if len(requests) > 1 and self.load() else None
        if rules is None or not self._batchable(requests, rules):
            return [self.generate_clip(r, f, on_step, should_stop) for r, f in zip(requests, folders)]
        if stop_requested(should_stop):
            return [self._failed(request, REASON_STOPPED) for request in requests]
        try:
            return self._make_batch(requests, [Path(f) for f in folders], rules, on_step, should_stop)
        except _StopClip:
            return [self._failed(request, REASON_STOPPED) for request in requests]
        except Exception as exc:  # noqa: BLE001 - every failure becomes the clips' reason
            if not is_out_of_memory(exc):
                reason = f"clip generation failed: {short_error(exc, with_type=True)}"
                return [self._failed(request, reason) for request in requests]
        # Out of memory (outside the except block, so the traceback's tensors are freed): one at a time.
        empty_device_cache(self.device)
        log.warning("%d clips in one call ran out of GPU memory; making them one at a time", len(requests))
        return [self.generate_clip(r, f, on_step, should_stop) for r, f in zip(requests, folders)]

    def _batchable(self, requests: list[ClipRequest], rules: FrameRules) -> bool:
        return (self.family.batches_clips and len({batch_key(request) for request in requests}) == 1
                and all(not self._refuse(request, rules) and request.num_frames <= rules.max_frames
                        for request in requests))

    def _make_batch(self, requests: list[ClipRequest], folders: list[Path], rules: FrameRules,
                    on_step: ClipStepCallback | None, should_stop: Callable[[], bool] | None) -> list[GeneratedClip]:
        starts = [clip_size_picture(request.pictures.start, request) for request in requests]
        ends = [clip_size_picture(request.pictures.end, request) if request.pictures.end is not None else None
                for request in requests]
        inputs = [CallInputs(request.num_frames, start, (), end) for request, start, end in zip(requests, starts, ends)]
        videos = self._call(requests, rules, inputs, 0, False, on_step, should_stop, (0, requests[0].steps))
        results = []
        for request, folder, start, end, frames in zip(requests, folders, starts, ends, videos):
            if frames is None:
                results.append(self._failed(request, REASON_BLANK_CLIP))
                continue
            written = self._write_one(folder, request, frames, start, end)
            log.info("Clip %s: %d frames from %s on %s (%dx%d, %d steps, one call for %d clips)", request.id,
                     written, self.model_id, self.device, request.width, request.height, request.steps,
                     len(requests))
            results.append(GeneratedClip(request.scene_index, folder, frames=written))
        return results

    def _write_one(self, folder: Path, request: ClipRequest, frames: list[np.ndarray], start: Image.Image,
                   end: Image.Image | None) -> int:
        """One call's frames as a clip's footage, its condition pictures pinned; the frames written."""
        def fill(stitcher: ClipStitcher) -> None:
            pin_start(frames, np.asarray(start))
            stitcher.add_call(frames, 0)

        return self._into_footage(folder, request, PIN_FRAMES + 1, end, fill)

    def _into_footage(self, folder: Path, request: ClipRequest, hold: int, end: Image.Image | None,
                      fill: Callable[[ClipStitcher], None]) -> int:
        """A new footage folder filled by ``fill(stitcher)`` (the calls' frames), ``end`` pinned last;
        the frames written. Nothing is left described in ``folder`` when ``fill`` raises."""
        writer = FootageWriter(folder, request.fps, made_by="clip", model=self.model_id)
        stitcher = ClipStitcher(writer.write, hold=hold)
        try:
            fill(stitcher)
            written = stitcher.finish(np.asarray(end) if end is not None else None)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        return written

    def _refuse(self, request: ClipRequest, rules: FrameRules) -> str:
        if request.num_frames < 1 or (request.num_frames - 1) % rules.frame_step:
            return f"a clip of {request.num_frames} frames does not follow the model's {rules.frame_step}k+1 rule"
        if request.width % rules.side_multiple or request.height % rules.side_multiple:
            return f"a {request.width}x{request.height} clip is not a multiple of {rules.side_multiple} a side"
        pictures = request.pictures
        if pictures is None or pictures.start is None:
            return "the clip has no first picture to start from"
        if pictures.end is not None and not rules.last_frame:
            return rules.last_frame_reason
        return ""

    def _failed(self, request: ClipRequest, reason: str) -> GeneratedClip:
        log.info("Clip %s: not made (%s)", request.id or request.scene_index + 1, reason)
        return GeneratedClip(request.scene_index, None, reason)

    def _make(self, request: ClipRequest, folder: Path, rules: FrameRules, max_frames: int, force_tiling: bool,
              on_step: ClipStepCallback | None, should_stop: Callable[[], bool] | None) -> int:
        """Run every call of the clip, streaming the joined frames into ``folder``; the frames written."""
        family, pictures = self.family, request.pictures
        assert pictures is not None and pictures.start is not None
        start = clip_size_picture(pictures.start, request)
        end = clip_size_picture(pictures.end, request) if pictures.end is not None else None
        overlap = family.overlap(rules)
        calls = plan_calls(request.num_frames, max_frames, rules.frame_step, overlap)
        total_steps = request.steps * len(calls)

        def fill(stitcher: ClipStitcher) -> None:
            for number, call in enumerate(calls):
                last = number == len(calls) - 1
                context = tuple(Image.fromarray(f) for f in stitcher.tail(overlap)) if number else ()
                inputs = CallInputs(call.frames, start if number == 0 else None, context, end if last else None)
                frames = self._call([request], rules, [inputs], number, force_tiling, on_step, should_stop,
                                    (number * request.steps, total_steps))[0]
                if frames is None:
                    raise _BlankClip()
                if number == 0:
                    pin_start(frames, np.asarray(start))
                stitcher.add_call(frames, call.overlap)

        return self._into_footage(folder, request, max(overlap, PIN_FRAMES + 1), end, fill)

    def _call(self, requests: list[ClipRequest], rules: FrameRules, inputs: list[CallInputs], number: int,
              force_tiling: bool, on_step: ClipStepCallback | None, should_stop: Callable[[], bool] | None,
              steps: tuple[int, int]) -> list[list[np.ndarray] | None]:
        """One pipeline call making every clip of ``requests`` (one ``inputs`` each): per clip its frames
        as uint8 arrays, or None for a blank one (raises _StopClip, or the pipeline's error)."""
        import torch

        pipe, family, first = self._pipe, self.family, requests[0]
        if len(requests) == 1:
            kwargs = family.call_kwargs(pipe, first, rules, inputs[0])
        else:
            kwargs = family.batch_kwargs(pipe, requests, rules, inputs)
        done, total = steps
        budget = PreviewBudget()

        def step_end(pipe_: Any, step: int, _timestep: Any, tensors: dict) -> dict:
            if on_step is not None:
                # One preview a step (of the batch's first clip), while previews stay a small share of the time.
                preview = budget.run(lambda: self._preview(first, tensors.get("latents"), inputs[0].frames))
                try:
                    for index, request in enumerate(requests):
                        on_step(request, done + step + 1, total, preview if index == 0 else None)
                except RenderCancelled:
                    raise _StopClip() from None
                except Exception:  # noqa: BLE001 - a broken preview must not cost the clip
                    log.exception("clip on_step callback failed; ignoring it")
            if stop_requested(should_stop):
                raise _StopClip()
            return tensors

        generator_device = self.device if self.device.startswith("cuda") else "cpu"
        generators = [torch.Generator(generator_device).manual_seed(int(r.seed) + number) for r in requests]
        kwargs.update(generator=generators[0] if len(generators) == 1 else generators,
                      callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=["latents"])
        kwargs["output_type"] = self.output_type
        voxels = len(requests) * inputs[0].frames * first.width * first.height
        with self._gpu_lock:
            self._set_tiling(force_tiling or voxels > TILE_ABOVE_VOXELS)
            budget.start()
            videos = pipe(**kwargs).frames
            # Converted under the lock: on a GPU the tensors are made uint8 where they are, a few at a time.
            return [_uint8_frames(video) for video in videos]

    @property
    def output_type(self) -> str:
        """How the pipeline hands its frames over: ``"pt"``, tensors, made uint8 a few frames at a time
        where they are (on a GPU a quarter of the bytes cross to the host). On the CPU too: diffusers'
        ``"np"`` gathers the channel-first floats into one channel-last float array, a strided copy of the
        whole clip: 0.3 to 1 s of a 2.5 s tiny-model call at 832x480 (bench/clip_render_overhead.py)."""
        return "pt"

    def _preview(self, request: ClipRequest, latents: Any, frames: int) -> Image.Image | None:
        if latents is None:
            return None
        try:
            import torch

            with torch.no_grad():
                return self.family.preview(self._pipe, latents, request, frames)
        except Exception as exc:  # noqa: BLE001 - a preview is a nicety, never the clip's failure
            log.debug("No clip preview: %s", short_error(exc, with_type=True))
            return None

    def _set_tiling(self, on: bool) -> None:
        vae = getattr(self._pipe, "vae", None)
        if vae is None or not hasattr(vae, "enable_tiling"):
            return
        if on:
            vae.enable_tiling()
        elif hasattr(vae, "disable_tiling"):
            vae.disable_tiling()


def _uint8_frames(video: Any) -> list[np.ndarray] | None:
    """One clip of the pipeline's output (a tensor of frames x 3 x H x W in 0..1 on any device, or frames x H x W
    x 3 float arrays) as uint8 frames; None when it is blank (NaN, or all black). Converted in place: the
    float array is ours to spend."""
    if not isinstance(video, np.ndarray) and hasattr(video, "permute"):
        return _uint8_frames_of_tensor(video)
    video = np.asarray(video, dtype=np.float32)
    if _is_blank(float(video.sum()), float(video.max())):
        return None
    np.clip(video, 0.0, 1.0, out=video)
    np.multiply(video, 255.0, out=video)
    np.rint(video, out=video)
    return list(video.astype(np.uint8))


def _is_blank(total: float, peak: float) -> bool:
    """Whether a clip whose values sum to ``total`` and peak at ``peak`` is blank: a NaN or an infinity
    anywhere makes the sum NaN or infinite (the values are bounded, so a finite clip's sum stays finite), and
    all black peaks below :data:`_BLACK_LEVEL`. Two reductions, no clip-sized mask (``isfinite`` allocated
    one of 30 M booleans for 25 frames at 832x480: 0.2 s on the CPU)."""
    return not math.isfinite(total) or not peak >= _BLACK_LEVEL


_CONVERT_FRAMES = 16  # frames made uint8 at once on the device: a bounded float32 copy, whatever the clip's length


def _uint8_frames_of_tensor(video: Any) -> list[np.ndarray] | None:
    """:func:`_uint8_frames` for a tensor (frames x 3 x H x W in 0..1): the same arithmetic in float32
    (clip, times 255, round half to even), on the tensor's device, a few frames at a time."""
    import torch

    if _is_blank(float(video.sum(dtype=torch.float32)), float(video.max())):
        return None
    frames: list[np.ndarray] = []
    for start in range(0, video.shape[0], _CONVERT_FRAMES):
        part = video[start:start + _CONVERT_FRAMES].float().clamp_(0.0, 1.0).mul_(255.0).round_()
        frames += list(part.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy())
    return frames


class _NotAVideoModel(ValueError):
    """The checkpoint is not something a video family can drive (said as is, without 'offline')."""


class _BlankClip(Exception):
    """A call decoded NaN or an all-black clip."""

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
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ...contract.errors import RenderCancelled, is_out_of_memory, short_error
from ...contract.footage import FootageWriter
from .. import hub_access
from ..batching import needs_cpu_offload
from ..clip_generation import ClipRequest, ClipStepCallback, FrameRules, GeneratedClip
from ..generation import REASON_OUT_OF_MEMORY, REASON_STOPPED, ModelInfo, stop_requested
from ..library_logs import route_library_logs
from ..model_names import default_video_model_id, model_source
from ..resident import ResidentPipeline, empty_device_cache, pick_dtype, weights_bytes
from . import family_by_name, family_for, known_pipelines
from .family import CallInputs, VideoFamily, clip_size_picture
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
    frames of one model call (None: the family's own cap).
    """

    kind = "video"

    def __init__(self, model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
                 allow_pickle: bool = False, max_frames: int | None = None) -> None:
        super().__init__(model_id or default_video_model_id(), device)
        self.local_files_only = local_files_only
        self.allow_pickle = allow_pickle
        self.max_frames = max_frames
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
        writer = FootageWriter(folder, rules.fps, made_by="clip", model=self.model_id)
        stitcher = ClipStitcher(writer.write, hold=max(overlap, PIN_FRAMES + 1))
        total_steps = request.steps * len(calls)
        try:
            for number, call in enumerate(calls):
                last = number == len(calls) - 1
                context = tuple(Image.fromarray(f) for f in stitcher.tail(overlap)) if number else ()
                inputs = CallInputs(call.frames, start if number == 0 else None, context, end if last else None)
                frames = self._call(request, rules, inputs, number, force_tiling, on_step, should_stop,
                                    (number * request.steps, total_steps))
                if number == 0:
                    pin_start(frames, np.asarray(start))
                stitcher.add_call(frames, call.overlap)
            written = stitcher.finish(np.asarray(end) if end is not None else None)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        return written

    def _call(self, request: ClipRequest, rules: FrameRules, inputs: CallInputs, number: int, force_tiling: bool,
              on_step: ClipStepCallback | None, should_stop: Callable[[], bool] | None,
              steps: tuple[int, int]) -> list[np.ndarray]:
        """One pipeline call: its frames as uint8 arrays (raises _StopClip, _BlankClip, or the pipeline's error)."""
        import torch

        pipe, family = self._pipe, self.family
        kwargs = family.call_kwargs(pipe, request, rules, inputs)
        done, total = steps

        def step_end(pipe_: Any, step: int, _timestep: Any, tensors: dict) -> dict:
            if on_step is not None:
                preview = self._preview(request, tensors.get("latents"), inputs.frames)
                try:
                    on_step(request, done + step + 1, total, preview)
                except RenderCancelled:
                    raise _StopClip() from None
                except Exception:  # noqa: BLE001 - a broken preview must not cost the clip
                    log.exception("clip on_step callback failed; ignoring it")
            if stop_requested(should_stop):
                raise _StopClip()
            return tensors

        generator_device = self.device if self.device.startswith("cuda") else "cpu"
        kwargs.update(generator=torch.Generator(generator_device).manual_seed(int(request.seed) + number),
                      callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=["latents"])
        with self._gpu_lock:
            self._set_tiling(force_tiling or inputs.frames * request.width * request.height > TILE_ABOVE_VOXELS)
            video = np.asarray(pipe(**kwargs).frames[0], dtype=np.float32)
        if not np.isfinite(video).all() or float(video.max()) < _BLACK_LEVEL:
            raise _BlankClip()
        pixels = (video.clip(0.0, 1.0) * 255.0).round().astype(np.uint8)
        return [pixels[index] for index in range(pixels.shape[0])]

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


class _NotAVideoModel(ValueError):
    """The checkpoint is not something a video family can drive (said as is, without 'offline')."""


class _BlankClip(Exception):
    """A call decoded NaN or an all-black clip."""

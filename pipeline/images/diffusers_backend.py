"""The diffusers backend: one text-to-image pipeline on one device, loaded once and shared.

:class:`ModelManager` implements ``pipeline.images.generation.ImageModel``: ``generate``
never raises for a scene that fails; the scene comes back with ``image=None`` and a
one-line ``reason``. Get instances from ``pipeline.images.registry`` so every session
shares the loaded weights. Batch sizing lives in ``pipeline.images.batching``, latent
previews and the blank-image check in ``pipeline.images.previews``.

torch and diffusers are imported inside functions only, so importing this module stays
cheap (the app can start, and the placeholder path can run, without paying for torch).
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..contract.errors import RenderCancelled, is_out_of_memory, short_error
from . import hub_access
from .batching import (
    CPU_BATCH_SIZE, GIB, MPS_BATCH_SIZE, auto_batch_size, fit_generation_size, group_requests, needs_cpu_offload,
    round8,
)
from .generation import (
    REASON_BLANK, REASON_OUT_OF_MEMORY, REASON_STOPPED, GeneratedImage, ImageRequest, ModelInfo, StepCallback,
    failed, stop_requested,
)
from .library_logs import route_library_logs
from .morph_generation import inbetween_kwargs
from .model_names import (
    default_model_id, is_distilled_model, looks_like_sdxl, model_source, native_size_for, single_file_config_dir,
)
from .decoders import FULL, TINY, TinyDecoder, step_previews, wanted_decoder
from .previews import is_blank, to_pil
from .resident import LOADING, ResidentPipeline, empty_device_cache, pick_dtype, weights_bytes

log = logging.getLogger(__name__)


class _StopSignal:
    """``should_stop`` for one generate call, remembering a stop once it has been seen."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self._should_stop = should_stop
        self._stopped = False

    def set(self) -> None:
        self._stopped = True

    def __call__(self) -> bool:
        if not self._stopped and stop_requested(self._should_stop):
            self._stopped = True
        return self._stopped


@dataclass
class _BatchState:
    """What the step callback learns about one running batch."""

    scene_indices: list[int]
    total_steps: int
    xl: bool
    on_step: StepCallback | None
    should_stop: Callable[[], bool] | None
    stopped: bool = False
    bad_latents: set[int] = field(default_factory=set)
    decoder: str = FULL


# --------------------------------------------------------------------------- ModelManager


class ModelManager(ResidentPipeline):
    """One diffusers pipeline on one device, loaded once and shared by every session.

    Prefer :func:`get_model_manager` over constructing this directly, so all
    sessions share the same loaded weights. Thread-safe: loading happens once
    under a lock, and all GPU work is serialised through one lock.
    """

    def __init__(
        self,
        model_id: str | None = None,
        device: str | None = None,
        *,
        local_files_only: bool = False,
        batch_size: int | None = None,
        decoder: str = "auto",
        tiny_decoder: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        """``decoder``: the server's choice (full, tiny, auto; a storyboard may override it);
        ``tiny_decoder``: hub id or folder of the tiny autoencoder (None: the family's known one)."""
        super().__init__(model_id or default_model_id(), device)
        self.local_files_only = local_files_only
        # Pickled weights (.bin, .ckpt) can run code when loaded: safetensors only unless the owner opts in.
        self.allow_pickle = allow_pickle
        self.batch_size = batch_size if batch_size and batch_size > 0 else None
        self.decoder = decoder
        self.tiny_decoder = tiny_decoder
        self._tiny = TinyDecoder(tiny_decoder, local_files_only, allow_pickle)

    # -- state ---------------------------------------------------------------

    @property
    def tiny_vae(self) -> Any:
        """The loaded tiny autoencoder (diffusers ``AutoencoderTiny``), or None."""
        return self._tiny.vae

    def _forget(self) -> None:
        self._tiny = TinyDecoder(self.tiny_decoder, self.local_files_only, self.allow_pickle)

    def info(self) -> ModelInfo:
        """Model id, device, dtype, state (not loaded, loading, loaded, failed with a reason), offload,
        and the decoder (the setting and the tiny decoder's id, or why only the full VAE is available)."""
        state, reason, device, dtype = self._state()
        return ModelInfo(self.model_id, device, state, dtype, reason, self._offloaded, self._describe_decoder())

    def _describe_decoder(self) -> str:
        tiny = self._tiny
        if self.decoder == FULL and not tiny.loaded and tiny.error is None:
            return "full VAE"
        return f"{self.decoder}: {tiny.describe()}"

    def decoder_for(self, requested: str | None, quality: str) -> str:
        """``"tiny"`` or ``"full"``: what ``requested`` (None: this server's setting) asks for at this
        quality on this device (see :func:`wanted_decoder`); the full VAE when the tiny decoder
        cannot be loaded (the model line then says why). Loads the tiny decoder once if needed."""
        if wanted_decoder(requested or self.decoder, quality, self.device) != TINY or not self.load():
            return FULL
        if not self._tiny.loaded and self._tiny.error is None:
            with LOADING:
                self._tiny.load(self._pipe, self.device, self._dtype)
        return TINY if self._tiny.loaded else FULL

    def is_distilled(self) -> bool:
        """True for few-step models (turbo, LCM, lightning, hyper) that want guidance 0.

        See :func:`is_distilled_model`; once loaded, the pipeline's own scheduler counts.
        """
        scheduler = getattr(self._pipe, "scheduler", None)
        return is_distilled_model(self.model_id, type(scheduler).__name__ if scheduler is not None else "")

    def native_size(self) -> int:
        """The side of the model's native square, from the loaded UNet when possible."""
        unet = getattr(self._pipe, "unet", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None)
        if isinstance(sample, (list, tuple)):
            sample = sample[0]
        if isinstance(sample, int) and sample > 0:
            return sample * int(getattr(self._pipe, "vae_scale_factor", 8) or 8)
        return native_size_for(self.model_id)

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        """A size the model handles well with the aspect ratio of ``width``x``height``."""
        return fit_generation_size(width, height, self.native_size())

    # -- loading -------------------------------------------------------------

    def use_pipeline(self, pipe: Any, tiny_vae: Any = None) -> None:
        """Adopt an already built pipeline (and tiny autoencoder) instead of loading ``model_id``:
        for benches that build an architecture with random weights. Placed on this device."""
        import torch

        with self._load_lock, self._gpu_lock:
            self._dtype = next(pipe.unet.parameters()).dtype if hasattr(pipe, "unet") else torch.float32
            self._place(pipe, self.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._load_error = pipe, None
            self._tiny = TinyDecoder(self.tiny_decoder, self.local_files_only, self.allow_pickle)
            if tiny_vae is not None:
                self._tiny.source, self._tiny.vae = "(given)", tiny_vae.to(self.device)

    def _load_once(self) -> None:
        source = model_source(self.model_id)
        try:
            pipe = self._load_pipeline(source)
        except Exception as exc:  # noqa: BLE001 - remembered and shown per scene
            self._load_error = self._describe_load_error(exc)
            # The log says what the page says (the library's own message, e.g. a missing model_index.json
            # when the hub is offline, reads as a different fault); its traceback only at debug level.
            log.warning("%s", self._load_error)
            log.debug("Loading model %r failed", self.model_id, exc_info=exc)
            return
        self._pipe = pipe
        log.info(
            "Loaded model %r (%s) on %s as %s%s", self.model_id, source, self.device,
            str(self._dtype).replace("torch.", ""), " with CPU offload" if self._offloaded else "",
        )

    def _describe_load_error(self, exc: BaseException) -> str:
        # Missing files and an unreachable hub both surface as OSError (or ValueError for a
        # missing variant); anything else, such as a CUDA error, is said as it is.
        if isinstance(exc, (OSError, ValueError)):
            hint = ""
            if model_source(self.model_id) == "single_file" and single_file_config_dir(self.model_id) is None:
                # The usual offline failure: diffusers wants the matching configs from the hub.
                hint = " (a single file needs its diffusers configs: from the hub once, or a folder beside it)"
            if model_source(self.model_id) == "hub" and not hub_access.hub_reachable():
                return f"Model '{self.model_id}' could not be loaded: {hub_access.OFFLINE_REASON}{hint}"
            return f"Model '{self.model_id}' could not be loaded (offline or not found){hint}: {short_error(exc)}"
        return f"Model '{self.model_id}' could not be loaded: {short_error(exc, with_type=True)}"

    def _load_pipeline(self, source: str) -> Any:
        route_library_logs()
        device = self.device
        self._dtype = pick_dtype(device)
        if source == "single_file":
            pipe = self._load_single_file()
        else:
            pipe = self._load_pretrained(source)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # the app renders the user's own prompts; no NSFW blanking
        self._place(pipe, device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        if self.decoder != FULL:  # loaded beside the model; a failure only means the full VAE
            self._tiny.load(pipe, device, self._dtype)
        return pipe

    def _wants_safety_kwargs(self, source: str) -> bool:
        # Only SD 1.x/2.x pipelines take safety_checker=None; others would warn about the kwarg.
        if source == "folder":
            index = Path(self.model_id).expanduser() / "model_index.json"
            try:
                return "safety_checker" in json.loads(index.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
        return not looks_like_sdxl(self.model_id)

    def _load_pretrained(self, source: str) -> Any:
        import torch
        from diffusers import AutoPipelineForText2Image

        model = str(Path(self.model_id).expanduser()) if source == "folder" else self.model_id
        kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": hub_access.local_only(self.local_files_only)}
        if not self.allow_pickle:
            kwargs["use_safetensors"] = True  # diffusers then refuses .bin weights instead of unpickling them
        if self._wants_safety_kwargs(source):
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        if source == "hub" and self._dtype != torch.float32:
            # Half-precision weight files halve the download; not every repo has them.
            try:
                return AutoPipelineForText2Image.from_pretrained(model, variant="fp16", **kwargs)
            except (OSError, ValueError) as exc:
                log.info("No fp16 variant for %r (%s); loading the default weights", model, short_error(exc))
        return AutoPipelineForText2Image.from_pretrained(model, **kwargs)

    def _load_single_file(self) -> Any:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        path = str(Path(self.model_id).expanduser())
        if not self.allow_pickle and Path(path).suffix.lower() != ".safetensors":
            raise ValueError(f"{Path(path).suffix} weights are pickles; this server loads only .safetensors")
        kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": hub_access.local_only(self.local_files_only)}
        config = single_file_config_dir(self.model_id)
        if config is not None:
            # Local configs: works offline. Without them from_single_file fetches the configs
            # of the matching base model from the hub (or finds them in its cache).
            kwargs["config"] = str(config)
        if looks_like_sdxl(self.model_id):
            return StableDiffusionXLPipeline.from_single_file(path, **kwargs)
        return StableDiffusionPipeline.from_single_file(
            path, safety_checker=None, requires_safety_checker=False, **kwargs
        )

    def _place(self, pipe: Any, device: str) -> None:
        if not device.startswith("cuda"):
            pipe.to(device)
            return
        import torch

        weights = weights_bytes(pipe)
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        vae = getattr(pipe, "vae", None)
        if needs_cpu_offload(weights, free):
            log.warning(
                "GPU %s has %.1f GiB free for %.1f GiB of weights: using CPU offload and VAE tiling",
                device, free / GIB, weights / GIB,
            )
            pipe.enable_model_cpu_offload(device=device)
            self._offloaded = True
            if vae is not None and hasattr(vae, "enable_tiling"):
                vae.enable_tiling()
        else:
            pipe.to(device)
        # Decoding one image at a time keeps the VAE's peak memory flat in batch size.
        if vae is not None and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()

    # -- generation ----------------------------------------------------------

    def _batch_size_for(self, request: ImageRequest) -> int:
        if self.batch_size:
            return self.batch_size
        device = self.device
        if device.startswith("cuda"):
            if self._offloaded:
                return 1  # a GPU too small for the weights has no room for batches either
            import torch

            try:
                free, _total = torch.cuda.mem_get_info(torch.device(device))
            except Exception as exc:  # noqa: BLE001 - a failed query must not fail the render
                log.warning("Could not read free GPU memory (%s); generating one image at a time", short_error(exc))
                return 1
            return auto_batch_size(free, request.width, request.height, request.guidance_scale)
        return MPS_BATCH_SIZE if device.startswith("mps") else CPU_BATCH_SIZE

    def generate(
        self,
        requests: list[ImageRequest],
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[GeneratedImage]:
        """Generate one image per request, in request order; never raises for a scene that fails.

        Requests with equal size, steps and guidance run as batches; each image
        has its own seeded generator, so a batch gives the same images as one
        request at a time. ``on_step(scene_indices, step, total, previews)`` is
        called after every denoising step; ``should_stop()`` is polled at every
        step and stops the batch (its scenes, and those not yet run, come back
        with reason "stopped").
        """
        requests = list(requests)
        if not requests:
            return []
        if not self.load():
            reason = self._load_error or f"Model '{self.model_id}' could not be loaded"
            for request in requests:
                log.info("Scene %d: no AI image (%s)", request.scene_index + 1, reason)
            return [GeneratedImage(r.scene_index, None, reason) for r in requests]
        stop = _StopSignal(should_stop)
        results: dict[int, GeneratedImage] = {}
        for group in group_requests(requests):
            results.update(self._run_group(requests, group, on_step, stop))
        return [results[position] for position in range(len(requests))]

    def _run_group(
        self,
        requests: list[ImageRequest],
        group: list[int],
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> dict[int, GeneratedImage]:
        results: dict[int, GeneratedImage] = {}
        pending = list(group)
        batch_size = self._batch_size_for(requests[group[0]])
        while pending:
            if stop_requested(should_stop):
                results.update(failed(pending, requests, REASON_STOPPED))
                break
            chunk = pending[:batch_size]
            try:
                results.update(self._run_batch(requests, chunk, on_step, should_stop))
                pending = pending[len(chunk):]
                continue
            except Exception as exc:  # noqa: BLE001 - every failure becomes a per-scene reason
                if not is_out_of_memory(exc):
                    if len(chunk) > 1:
                        # One bad scene must not cost its batch-mates their images: retry each alone,
                        # so every scene ends with its own image or its own reason.
                        log.warning("A batch of %d failed (%s); retrying its scenes one by one",
                                    len(chunk), short_error(exc, with_type=True))
                        results.update(self._run_alone(requests, chunk, on_step, should_stop))
                    else:
                        reason = f"generation failed: {short_error(exc, with_type=True)}"
                        log.warning("Scene %d failed: %s", requests[chunk[0]].scene_index + 1, reason)
                        results.update(failed(chunk, requests, reason))
                    pending = pending[len(chunk):]
                    continue
            # Out of memory. Handled outside the except block so the traceback's tensors are freed.
            empty_device_cache(self.device)
            if len(chunk) > 1:
                batch_size = max(1, len(chunk) // 2)
                log.warning("Out of GPU memory with a batch of %d; retrying with %d", len(chunk), batch_size)
                continue
            log.warning("Scene %d: out of GPU memory even alone", requests[chunk[0]].scene_index + 1)
            results.update(failed(chunk, requests, REASON_OUT_OF_MEMORY))
            pending = pending[1:]
        return results

    def _run_alone(
        self,
        requests: list[ImageRequest],
        chunk: list[int],
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> dict[int, GeneratedImage]:
        """Each of ``chunk`` as a batch of one (after its batch failed); each keeps its own result."""
        results: dict[int, GeneratedImage] = {}
        for position in chunk:
            results.update(self._run_group(requests, [position], on_step, should_stop))
        return results

    def _generator(self, seed: int) -> Any:
        import torch

        # CUDA generators keep the noise on the GPU; MPS and CPU draw on the CPU, which is
        # what diffusers does for MPS anyway and makes seeds reproducible across machines.
        device = self.device if self.device.startswith("cuda") else "cpu"
        return torch.Generator(device).manual_seed(int(seed))

    def _run_batch(
        self,
        requests: list[ImageRequest],
        chunk: list[int],
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> dict[int, GeneratedImage]:
        if requests[chunk[0]].guided:  # image-to-image / ControlNet (a batch is all guided or none)
            from .img2img_generation import run_guided_batch

            return run_guided_batch(self, requests, chunk, on_step, should_stop)
        batch = [requests[p] for p in chunk]
        first = batch[0]
        state = _BatchState(
            scene_indices=[r.scene_index for r in batch],
            total_steps=first.steps,
            xl="XL" in type(self._pipe).__name__,
            on_step=on_step,
            should_stop=should_stop,
            decoder=TINY if first.decoder == TINY and self._tiny.loaded else FULL,
        )
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in batch],
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance_scale,
            "width": round8(first.width),
            "height": round8(first.height),
            "generator": [self._generator(r.seed) for r in batch],
            # Float pixels, so NaN survives to be detected; latents when the tiny decoder decodes them.
            "output_type": "latent" if state.decoder == TINY else "np",
        }
        if first.negative_prompt:
            kwargs["negative_prompt"] = [r.negative_prompt for r in batch]
        if self._supports_step_callback():
            kwargs["callback_on_step_end"] = lambda pipe, step, timestep, tensors: self._on_step_end(
                state, pipe, step, tensors
            )
            kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
        # The pipeline runs under its own torch.no_grad(); inference_mode is avoided on purpose
        # because CPU-offload hooks move weights in place between calls.
        with self._gpu_lock:
            if first.between is not None:  # a morph's in-between images (batched apart: kinds never mix)
                kwargs = inbetween_kwargs(self._pipe, batch, kwargs, self._generator, self.device)
            output = self._pipe(**kwargs).images
            images = self._tiny.decode(output) if state.decoder == TINY else np.asarray(output)
        return self._collect(requests, chunk, images, state)

    def _supports_step_callback(self) -> bool:
        try:
            return "callback_on_step_end" in inspect.signature(self._pipe.__call__).parameters
        except (TypeError, ValueError):
            return False

    def _on_step_end(self, state: _BatchState, pipe: Any, step: int, tensors: dict) -> dict:
        import torch

        latents = tensors.get("latents")
        total = int(getattr(pipe, "_num_timesteps", 0) or state.total_steps)
        if latents is not None and step + 1 >= total:
            # Checked once, on the final latents: a per-step check would sync the GPU every step.
            finite = torch.isfinite(latents.reshape(latents.shape[0], -1)).all(dim=1).tolist()
            state.bad_latents.update(i for i, ok in enumerate(finite) if not ok)
        if state.on_step is not None:
            previews = step_previews(self._tiny, latents, state.xl) if latents is not None else []
            try:
                state.on_step(list(state.scene_indices), step + 1, total, previews)
            except RenderCancelled:
                state.stopped = True
            except Exception:  # noqa: BLE001 - a broken preview must not cost the image
                log.exception("on_step callback failed; ignoring it")
        if state.stopped or stop_requested(state.should_stop):
            state.stopped = True
            if isinstance(state.should_stop, _StopSignal):
                state.should_stop.set()  # later batches of this call stop too
            pipe._interrupt = True  # diffusers skips the remaining steps
        return tensors

    def _collect(
        self, requests: list[ImageRequest], chunk: list[int], images: np.ndarray, state: _BatchState
    ) -> dict[int, GeneratedImage]:
        results: dict[int, GeneratedImage] = {}
        for offset, position in enumerate(chunk):
            request = requests[position]
            if state.stopped:
                result = GeneratedImage(request.scene_index, None, REASON_STOPPED)
            elif offset in state.bad_latents or offset >= len(images) or is_blank(images[offset]):
                result = GeneratedImage(request.scene_index, None, REASON_BLANK)
            else:
                image = to_pil(images[offset], request.width, request.height)
                result = GeneratedImage(request.scene_index, image, decoder=state.decoder)
            if result.image is not None:
                log.info(
                    "Scene %d: AI image from %s on %s (%d steps, %dx%d, %s decoder)", request.scene_index + 1,
                    self.model_id, self.device, request.steps, request.width, request.height, state.decoder,
                )
            else:
                log.info("Scene %d: no AI image (%s)", request.scene_index + 1, result.reason)
            results[position] = result
        return results

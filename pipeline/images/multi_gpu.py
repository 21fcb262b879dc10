"""Several GPUs behind one image model: one pipeline per device, batches spread over them.

:func:`pipeline.images.registry.get_image_model` builds a :class:`MultiDeviceModel` when
more than one CUDA device is visible; it works with any per-device
``ImageModel`` (tests use fakes) and imports no torch itself.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Mapping

from PIL import Image

from ..contract.errors import short_error
from .batching import plan_batches
from .generation import (
    REASON_STOPPED, GeneratedImage, ImageModel, ImageRequest, ModelInfo, StepCallback, failed, stop_requested,
)

log = logging.getLogger(__name__)


class MultiDeviceModel:
    """Several per-device models (one pipeline per GPU) behind one ImageModel.

    Batches are spread by :func:`pipeline.images.batching.assign_batches`; each device runs its batches
    in its own thread and results come back in request order. ``on_step`` may
    be called from those threads, one call at a time.
    """

    def __init__(self, managers: Mapping[str, ImageModel], batch_size: int | None = None) -> None:
        if not managers:
            raise ValueError("MultiDeviceModel needs at least one device")
        self.managers: dict[str, ImageModel] = dict(managers)
        self.batch_size = batch_size
        first = next(iter(self.managers.values()))
        self.model_id = first.model_id
        self._callback_lock = threading.Lock()

    @property
    def _first(self) -> ImageModel:
        return next(iter(self.managers.values()))

    def load(self) -> bool:
        """Load every device's pipeline; True when all are ready."""
        ready = [bool(getattr(m, "load", lambda: True)()) for m in self.managers.values()]
        return all(ready)

    def info(self) -> ModelInfo:
        """The first device's info, with every device listed and the worst state."""
        infos = [m.info() for m in self.managers.values()]
        worst = next((info for info in infos if not info.loaded), infos[0])
        return replace(infos[0], device=", ".join(self.managers), state=worst.state, reason=worst.reason)

    def is_distilled(self) -> bool:
        return self._first.is_distilled()

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return self._first.generation_size(width, height)

    def generate(
        self,
        requests: list[ImageRequest],
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[GeneratedImage]:
        """Generate on all devices in parallel; one result per request, in request order."""
        requests = list(requests)
        if not requests:
            return []
        plan = plan_batches(requests, len(self.managers), self.batch_size)
        locked_on_step = self._serialised(on_step)
        results: dict[int, GeneratedImage] = {}
        workers = [(m, batches) for m, batches in zip(self.managers.values(), plan) if batches]
        with ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="scene2video-gpu") as pool:
            futures = [
                pool.submit(self._run_device, manager, requests, batches, locked_on_step, should_stop)
                for manager, batches in workers
            ]
            for future in futures:
                results.update(future.result())
        return [results[position] for position in range(len(requests))]

    def _serialised(self, on_step: StepCallback | None) -> StepCallback | None:
        if on_step is None:
            return None

        def call(indices: list[int], step: int, total: int, previews: list[Image.Image]) -> None:
            with self._callback_lock:
                on_step(indices, step, total, previews)

        return call

    @staticmethod
    def _run_device(
        manager: ImageModel,
        requests: list[ImageRequest],
        batches: list[list[int]],
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> dict[int, GeneratedImage]:
        results: dict[int, GeneratedImage] = {}
        for batch in batches:
            if stop_requested(should_stop):
                results.update(failed(batch, requests, REASON_STOPPED))
                continue
            try:
                answers = list(manager.generate([requests[p] for p in batch], on_step, should_stop))
            except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
                answers = []
                reason = f"generation failed: {short_error(exc, with_type=True)}"
                log.warning("Device batch failed: %s", reason)
                results.update(failed(batch, requests, reason))
                continue
            for offset, position in enumerate(batch):
                if offset < len(answers):
                    results[position] = answers[offset]
                else:
                    results.update(failed([position], requests, "generation failed: no image returned"))
        return results

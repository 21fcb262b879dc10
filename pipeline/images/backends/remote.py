"""The shared machinery of the remote image backends: the in-flight limit, retries, Stop.

A remote backend (``openai``, ``hf-inference``) subclasses :class:`RemoteImageModel` and
supplies three things: an async client, one async call that turns a request into a PIL
image, and :meth:`RemoteImageModel.classify`, which turns that call's exceptions into a
:class:`~.retry.Failure` (a reason a user can read, and whether another try may help).

Everything else is here: requests run on the backend's own event loop (one daemon thread and one
HTTP client per backend, reused by every render; the generating thread waits for its batch) with at
most ``max_in_flight`` at a time (for the backend as a whole, across concurrent renders);
HTTP 429 and 5xx are retried (:mod:`.retry`) with exponential backoff that honours
``Retry-After``, which pauses every request, not just the one that was told to wait; each try
has a time limit; a Stop cancels the requests in flight (the client closes their connections
at once); a bad key or an empty quota stops the rest of the batch from sending. The image that
comes back is cover-fitted to the request's exact size (:mod:`.sizes`).

Keys come from the environment only. Reasons never carry exception text unscrubbed:
:func:`~.retry.scrub` removes the key and anything shaped like a key or a bearer header.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from PIL import Image

from ...contract.errors import short_error
from ..generation import REASON_STOPPED, GeneratedImage, ImageRequest, ModelInfo, StepCallback, stop_requested
from .retry import Failure, Gate, RetryPolicy, env_key, scrub
from .sizes import fit_to_request

log = logging.getLogger(__name__)

_STOP_POLL_S = 0.05
_SLOT_POLL_S = 0.01


# --------------------------------------------------------------------------- the shared backend


class RemoteImageModel:
    """An ImageModel that asks a web service for each keyframe (see the module docstring).

    Subclasses set ``backend``, ``service`` and ``key_env`` and implement :meth:`make_client`,
    :meth:`call`, :meth:`classify` and :meth:`notes_for`.
    """

    backend = "remote"
    service = "a remote image service"
    key_env = ""
    remote = True  # the keyframe stage runs it in this process, never on a borrowed (ZeroGPU) GPU

    def __init__(self, model: str, *, max_in_flight: int = 4, timeout: float = 120.0,
                 retry: RetryPolicy | None = None, chosen_because: str = ""):
        self.model = model
        self.model_id = f"{self.backend}:{model}"
        self.max_in_flight = max(1, int(max_in_flight))
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self.chosen_because = chosen_because
        self._key = ""
        self._error: str | None = None
        self._loaded = False
        self._lock = threading.Lock()
        # Shared by every render using this backend, so concurrent renders stay within the limit together.
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._loop: _LoopThread | None = None  # made on first use; its client and connections are reused
        self._client: Any = None
        self._client_key = ""

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}({self.model_id!r})"

    # -- the ImageModel protocol ------------------------------------------------

    def load(self) -> bool:
        """Read the key from the environment and check the setup; True when requests can be sent."""
        with self._lock:
            self._key = env_key(self.key_env)
            self._error = self.setup_problem()
            self._loaded = True
            if self._error:
                log.warning("%s backend not ready: %s", self.backend, self._error)
            return self._error is None

    def setup_problem(self) -> str | None:
        """Why no request can be sent (e.g. no key, a missing package), or None."""
        if not self._key:
            return f"{self.key_env} is not set on this server"
        return None

    @property
    def loaded(self) -> bool:
        """True once the key was found and requests can be sent (the registry keeps such backends)."""
        return self._loaded and not self._error

    def info(self) -> ModelInfo:
        """Model, where it runs (the service, and why auto chose it), state; never the key or a URL."""
        device = f"remote: {self.service}" + (f" ({self.chosen_because})" if self.chosen_because else "")
        if not self._loaded:
            return ModelInfo(self.model_id, device, "not loaded")
        if self._error:
            return ModelInfo(self.model_id, device, "failed", reason=self._error)
        return ModelInfo(self.model_id, device, "loaded")

    def is_distilled(self) -> bool:
        return False

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        """The output's exact size: the service's own size is cover-fitted to it after each call."""
        return int(width), int(height)

    def notes_for(self, request: ImageRequest) -> tuple[str, ...]:
        """Which of the request's fields this service does not take (shown in the report)."""
        return ()

    def generate(self, requests: list[ImageRequest], on_step: StepCallback | None = None,
                 should_stop: Callable[[], bool] | None = None) -> list[GeneratedImage]:
        """One image per request, in order; a failed scene has ``image=None`` and the reason. Never raises."""
        if not self._loaded:
            self.load()
        if self._error:
            return [self._answer(r, None, self._error) for r in requests]
        if any(r.guided or r.between is not None for r in requests):
            return self._keyframes_only(requests, on_step, should_stop)
        try:
            return self._loop_thread().run(self._generate_all(list(requests), on_step, should_stop))
        except Exception as exc:  # noqa: BLE001 - the protocol says never raise per scene
            reason = "request failed: " + scrub(short_error(exc, with_type=True), [self._key])
            log.warning("%s: %s", self.model_id, reason)
            return [self._answer(r, None, reason) for r in requests]

    def _keyframes_only(self, requests: list[ImageRequest], on_step: StepCallback | None,
                        should_stop: Callable[[], bool] | None) -> list[GeneratedImage]:
        """Text-to-image requests go to the service; image-to-image and in-between ones get a reason."""
        plain = [r for r in requests if not r.guided and r.between is None]
        made = {id(r): a for r, a in zip(plain, self.generate(plain, on_step, should_stop))} if plain else {}
        reason = f"the {self.backend} backend makes text-to-image keyframes only (no image-to-image, ControlNet or in-between)"
        return [made.get(id(r)) or self._answer(r, None, reason) for r in requests]

    # -- for subclasses ---------------------------------------------------------

    def make_client(self) -> Any:
        """An async client (with an async ``close``) set up with the key, base URL, timeout and no retries.
        Made on the backend's event loop and kept for every later render."""
        raise NotImplementedError

    async def call(self, client: Any, request: ImageRequest) -> Image.Image:
        """One request to the service; returns its image (any size) or raises."""
        raise NotImplementedError

    def classify(self, exc: BaseException) -> Failure:
        """What an exception from :meth:`call` means for the user and for retrying."""
        raise NotImplementedError

    # -- the machinery ------------------------------------------------------------

    def _answer(self, request: ImageRequest, image: Image.Image | None, reason: str = "") -> GeneratedImage:
        return GeneratedImage(request.scene_index, image, scrub(reason, [self._key]), self.notes_for(request))

    async def _generate_all(self, requests: list[ImageRequest], on_step: StepCallback | None,
                            should_stop: Callable[[], bool] | None) -> list[GeneratedImage]:
        gate, fatal = Gate(), []
        finished = 0

        async def one(client: Any, request: ImageRequest) -> GeneratedImage:
            nonlocal finished
            async with _Slot(self._slots):
                answer = await self._with_retries(client, request, gate, fatal)
            finished += 1
            if answer.image is not None and on_step is not None:
                _safe_step(on_step, request.scene_index, finished, len(requests), answer.image)
            return answer

        client = await self._current_client()
        tasks = [asyncio.create_task(one(client, r)) for r in requests]
        watcher = asyncio.create_task(_cancel_on_stop(tasks, should_stop))
        try:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            watcher.cancel()
        answers = []
        for request, outcome in zip(requests, outcomes):
            if isinstance(outcome, GeneratedImage):
                answers.append(outcome)
            elif isinstance(outcome, asyncio.CancelledError):
                answers.append(self._answer(request, None, REASON_STOPPED))
            else:
                answers.append(self._answer(request, None, self._unexpected(outcome).reason))
        return answers

    def close(self) -> None:
        """Close the client and stop the backend's event loop (tests; a server keeps its backends)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            client, self._client = self._client, None
            if client is not None:
                loop.run(client.close())
            loop.stop()

    def _loop_thread(self) -> "_LoopThread":
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread(f"scene2video-{self.backend}")
            return self._loop

    async def _current_client(self) -> Any:
        """The backend's async client, made once (and again when the key in the environment changed)."""
        if self._client is None or self._client_key != self._key:
            old, self._client, self._client_key = self._client, self.make_client(), self._key
            if old is not None:
                await old.close()
        return self._client

    async def _with_retries(self, client: Any, request: ImageRequest, gate: Gate,
                            fatal: list[Failure]) -> GeneratedImage:
        failure = Failure("no request was sent")
        for attempt in range(self.retry.attempts):
            if fatal:
                return self._answer(request, None, fatal[0].reason)
            await gate.wait()
            try:
                async with asyncio.timeout(self.timeout):
                    image = await self.call(client, request)
                # In a worker thread: decoding and resizing must not hold up the other requests' replies.
                return self._answer(request, await asyncio.to_thread(fit_to_request, image, request))
            except TimeoutError:
                failure = Failure(f"timed out after {self.timeout:g} s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                failure = self._unexpected(exc)
            if failure.fatal:
                fatal.append(failure)
            if not failure.retry or attempt + 1 == self.retry.attempts:
                break
            wait = self.retry.delay(attempt, failure.retry_after)
            log.info("Scene %d: %s; retrying in %.1f s", request.scene_index + 1, failure.reason, wait)
            if failure.retry_after is not None:
                gate.hold(wait)
            else:
                await asyncio.sleep(wait)
        tries = attempt + 1
        reason = failure.reason + (f" after {tries} tries" if failure.retry and tries > 1 else "")
        log.info("Scene %d: %s", request.scene_index + 1, reason)
        return self._answer(request, None, reason)

    def _unexpected(self, exc: BaseException) -> Failure:
        try:
            failure = self.classify(exc)
        except Exception:  # noqa: BLE001 - a classifier bug must not lose the scene's reason
            failure = Failure("request failed: " + type(exc).__name__)
        return Failure(scrub(failure.reason, [self._key]), failure.retry, failure.retry_after, failure.fatal)


class _Slot:
    """One of a backend's in-flight places (a thread semaphore shared across renders), awaited without
    blocking the event loop, so a Stop cancels a request that is still waiting for its place."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots

    async def __aenter__(self) -> None:
        while not self._slots.acquire(blocking=False):
            await asyncio.sleep(_SLOT_POLL_S)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()


def _safe_step(on_step: StepCallback, scene: int, finished: int, total: int, image: Image.Image) -> None:
    """Show a finished scene as its batch's preview; ``finished`` of ``total`` drives the progress bar."""
    try:
        on_step([scene], finished, total, [image])
    except Exception:  # noqa: BLE001 - a preview must not lose the image
        log.exception("step callback failed; ignoring it")


async def _cancel_on_stop(tasks: list[asyncio.Task], should_stop: Callable[[], bool] | None) -> None:
    """Cancel every unfinished request as soon as ``should_stop`` says so (their connections close)."""
    while not all(task.done() for task in tasks):
        if stop_requested(should_stop):
            for task in tasks:
                task.cancel()
            return
        await asyncio.sleep(_STOP_POLL_S)


class _LoopThread:
    """An event loop in a daemon thread, one per backend: every render's requests run on it, so the
    HTTP client (its TLS setup and open connections) is made once and reused."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coroutine) -> Any:
        """Run ``coroutine`` on the loop and wait for its result (raised here if it raised)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

"""The ``hf-inference`` backend: keyframes from Hugging Face Inference Providers, through
``huggingface_hub``'s ``AsyncInferenceClient.text_to_image``.

Key: ``HF_TOKEN`` from the environment (a Space's secret is one); requests are billed to that
account (or to the provider's, for a provider's own key). Model and provider are settings
(``--remote-model``, ``--remote-provider``; ``auto`` lets Hugging Face pick the provider).
``HF_INFERENCE_ENDPOINT`` (environment only) sends the requests to a server speaking the
``hf-inference`` wire format instead, at ``<endpoint>/models/<model>`` (e.g. a proxy, or the tests'
server). The library has no retries of its own; :mod:`.remote` retries, honouring Retry-After.

Prompt, negative prompt, seed, steps, guidance and size are all sent; the image the provider
returns is cover-fitted to the preset's exact size.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from PIL import Image

from ...contract.errors import short_error
from ..generation import ImageRequest
from ..model_names import is_distilled_model
from .remote import RemoteImageModel
from .retry import Failure, scrub, status_failure
from .sizes import aspect_size

DEFAULT_HF_MODEL = "black-forest-labs/FLUX.1-schnell"
DEFAULT_HF_PROVIDER = "auto"
ENDPOINT_ENV = "HF_INFERENCE_ENDPOINT"
_POLICY_WORDS = ("nsfw", "content policy", "safety", "unsafe content", "moderation")
# Few-step models beyond model_names' markers: they want few steps and no guidance.
_FEW_STEP_WORDS = ("schnell",)


class HFInferenceModel(RemoteImageModel):
    """Keyframes from a text-to-image model on Hugging Face Inference Providers."""

    backend = "hf-inference"
    service = "Hugging Face Inference Providers"
    key_env = "HF_TOKEN"

    def __init__(self, model: str, *, provider: str = DEFAULT_HF_PROVIDER, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.provider = provider or DEFAULT_HF_PROVIDER
        if self.provider != DEFAULT_HF_PROVIDER:
            self.model_id = f"{self.backend}:{self.provider}:{model}"
        self.service = f"{self.service}, provider {self.provider}"

    def setup_problem(self) -> str | None:
        try:  # imported here, so the import is paid when the backend loads, not by the first request
            from huggingface_hub import AsyncInferenceClient, constants  # noqa: F401
        except ImportError:
            return "the huggingface_hub package is not installed (pip install -r requirements.txt)"
        if constants.is_offline_mode():
            return "HF_HUB_OFFLINE is set on this server, so huggingface_hub sends no requests"
        return super().setup_problem()

    def is_distilled(self) -> bool:
        name = self.model.lower()
        return is_distilled_model(self.model) or any(word in name for word in _FEW_STEP_WORDS)

    def make_client(self) -> Any:
        from huggingface_hub import AsyncInferenceClient

        provider = "hf-inference" if self._endpoint() else self.provider
        return AsyncInferenceClient(provider=provider, token=self._key, timeout=self.timeout + 1)

    def _endpoint(self) -> str:
        return os.environ.get(ENDPOINT_ENV, "").strip().rstrip("/")

    async def call(self, client: Any, request: ImageRequest) -> Image.Image:
        endpoint = self._endpoint()
        width, height = aspect_size(request.width, request.height)
        return await client.text_to_image(
            request.prompt, model=f"{endpoint}/models/{self.model}" if endpoint else self.model,
            negative_prompt=request.negative_prompt or None, seed=request.seed, width=width, height=height,
            num_inference_steps=request.steps, guidance_scale=request.guidance_scale,
        )

    def classify(self, exc: BaseException) -> Failure:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        if isinstance(exc, InferenceTimeoutError):
            return Failure(f"timed out after {self.timeout:g} s")
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            response = exc.response
            text = _response_text(response)
            if response.status_code in (400, 403, 422, 451) and any(w in text.lower() for w in _POLICY_WORDS):
                return Failure("refused by the content policy" + _short(text, self._key))
            if response.status_code == 402:
                return Failure("no credits left (HTTP 402): check the Hugging Face account's billing", fatal=True)
            failure = status_failure(response.status_code, response.headers, self.key_env)
            if response.status_code in (400, 404, 422):  # the service's own words say what was wrong
                failure = replace(failure, reason=failure.reason + _short(text, self._key))
            return failure
        if isinstance(exc, (ConnectionError, OSError)) or type(exc).__module__.startswith("httpx"):
            return Failure("could not reach Hugging Face Inference", retry=True)
        if type(exc).__name__ == "UnidentifiedImageError":
            return Failure("the service returned something that is not an image")
        return Failure("request failed: " + scrub(short_error(exc, with_type=True), [self._key]))


def _response_text(response: Any) -> str:
    try:
        return response.text or ""
    except Exception:  # noqa: BLE001 - a streamed body that was never read
        return ""


def _short(text: str, key: str) -> str:
    """": <the service's message>", from a JSON ``error`` field when there is one, scrubbed and short."""
    import json

    try:
        data = json.loads(text)
        message = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        message = text
    if not message:
        return ""
    line = scrub(" ".join(str(message).split()), [key])
    return ": " + (line if len(line) <= 160 else line[:159] + "…")

"""The ``openai`` backend: keyframes from OpenAI's Images API through the official ``openai`` package.

Key: ``OPENAI_API_KEY`` from the environment (a Space's secret is one). Base URL: ``OPENAI_BASE_URL``
from the environment (for a proxy or a compatible server), never from a visitor. The client's own
retries are off (``max_retries=0``): :mod:`.remote` retries, honouring Retry-After.

The API takes a prompt and one of a few fixed sizes; no negative prompt, seed, steps or guidance.
The size whose aspect is closest to the preset's is asked for, and the image is cover-fitted to
the preset's exact size.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from dataclasses import replace
from typing import Any

from PIL import Image

from ..generation import ImageRequest
from .remote import RemoteImageModel
from .retry import Failure, scrub, status_failure
from .sizes import closest_size

DEFAULT_OPENAI_MODEL = "gpt-image-1"
# Sizes each model accepts (the GPT image models share gpt-image-1's; "auto" is never asked for).
GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
SIZES = {
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
}
# Error codes OpenAI uses when its safety system refuses a prompt.
_POLICY_CODES = {"content_policy_violation", "moderation_blocked"}
NOTE_NEGATIVE = "negative prompt not sent: the OpenAI Images API has none"
NOTE_SEED = "seed not sent: the OpenAI Images API takes none, so a new render may differ"


def service_size(model: str, width: int, height: int) -> tuple[int, int]:
    """The size to ask ``model`` for: the accepted size with the aspect closest to ``width``x``height``."""
    return closest_size(SIZES.get(model, GPT_IMAGE_SIZES), width, height)


class OpenAIImageModel(RemoteImageModel):
    """Keyframes from ``images.generate`` (``gpt-image-1`` by default; ``dall-e-3`` accepted).

    ``quality`` (``low`` … ``high``; ``standard``/``hd`` for dall-e-3) sets the price per image;
    ``auto`` sends none. Another quality is another image, so it is part of the model id (the cache key).
    """

    backend = "openai"
    service = "OpenAI Images API"
    key_env = "OPENAI_API_KEY"

    def __init__(self, model: str, *, quality: str = "auto", **kwargs: Any):
        super().__init__(model, **kwargs)
        self.quality = quality or "auto"
        if self.quality != "auto":
            self.model_id = f"{self.model_id}@{self.quality}"

    def setup_problem(self) -> str | None:
        try:  # imported here, so the import is paid when the backend loads, not by the first request
            from openai import AsyncOpenAI  # noqa: F401
        except ImportError:
            return "the openai package is not installed (pip install -r requirements.txt)"
        return super().setup_problem()

    def notes_for(self, request: ImageRequest) -> tuple[str, ...]:
        return ((NOTE_NEGATIVE,) if request.negative_prompt else ()) + (NOTE_SEED,)

    def make_client(self) -> Any:
        from openai import AsyncOpenAI

        base_url = os.environ.get("OPENAI_BASE_URL", "").strip() or None
        # Our timeout per try is enforced by remote.py too; the client's closes the socket.
        return AsyncOpenAI(api_key=self._key, base_url=base_url, max_retries=0, timeout=self.timeout + 1)

    async def call(self, client: Any, request: ImageRequest) -> Image.Image:
        width, height = service_size(self.model, request.width, request.height)
        extra = {"response_format": "b64_json"} if self.model.startswith("dall-e") else {}
        if self.quality != "auto":
            extra["quality"] = self.quality
        result = await client.images.generate(model=self.model, prompt=request.prompt, n=1,
                                              size=f"{width}x{height}", **extra)
        data = result.data[0] if result.data else None
        if data is None or not data.b64_json:
            raise ValueError("the service returned no image")
        return await asyncio.to_thread(_decode, data.b64_json)

    def classify(self, exc: BaseException) -> Failure:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return Failure(f"timed out after {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return Failure("could not reach the OpenAI Images API", retry=True)
        if isinstance(exc, openai.APIStatusError):
            code = str(getattr(exc, "code", "") or "")
            if code in _POLICY_CODES:
                return Failure("refused by the content policy" + _message(exc, self._key))
            if exc.status_code == 429 and code == "insufficient_quota":
                return Failure("quota used up (HTTP 429): check the OpenAI account's billing", fatal=True)
            failure = status_failure(exc.status_code, exc.response.headers, self.key_env)
            if exc.status_code in (400, 404, 422):  # the service's own words say what was wrong
                failure = replace(failure, reason=failure.reason + _message(exc, self._key))
            return failure
        if isinstance(exc, ValueError):
            return Failure(scrub(str(exc), [self._key])[:160])
        return Failure("request failed: " + type(exc).__name__)


def _decode(b64_json: str) -> Image.Image:
    """The base64 PNG (or JPEG/WebP) of an answer as an RGB image."""
    with Image.open(io.BytesIO(base64.b64decode(b64_json))) as image:
        return image.convert("RGB")


def _message(exc: Any, key: str) -> str:
    """": <the service's own message>", scrubbed and cut short, or ""."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        return ""
    text = scrub(" ".join(str(message).split()), [key])
    return ": " + (text if len(text) <= 160 else text[:159] + "…")

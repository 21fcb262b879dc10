"""What a failed request to a remote image service means, and when to try again.

:class:`Failure` is one try's outcome as a user-readable reason plus whether another try may help;
:class:`RetryPolicy` spaces the tries (exponential backoff, or the service's ``Retry-After``);
:func:`scrub` keeps keys out of every reason. Keys are read from the environment only (:func:`env_key`).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

_KEY_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|hf_[A-Za-z0-9]{6,}|Bearer\s+\S+)")


def env_key(name: str) -> str:
    """The key in environment variable ``name`` (stripped), or ""."""
    return os.environ.get(name, "").strip()


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without any of ``secrets`` and without anything shaped like an API key or bearer header."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[key]")
    return _KEY_SHAPES.sub("[key]", text)


# --------------------------------------------------------------------------- failures and retries


@dataclass(frozen=True)
class Failure:
    """Why one try failed. ``retry``: another try may help (429, 5xx, a dropped connection).
    ``fatal``: every other request would fail the same way (bad key, no quota), so none is sent."""

    reason: str
    retry: bool = False
    retry_after: float | None = None
    fatal: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; waits of ``base_delay`` x 2^n (jittered) unless the service says
    how long (Retry-After), never more than ``max_delay`` seconds each."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return min(self.base_delay * 2 ** attempt * (0.5 + random.random() / 2), self.max_delay)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    try:
        if millis is not None:
            return float(millis) / 1000
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def status_failure(status: int, headers: Any, what: str) -> Failure:
    """The usual meaning of an HTTP error status from an image service (``what`` names the key's variable)."""
    if status == 401:
        return Failure(f"the service refused the API key (HTTP 401); check {what}", fatal=True)
    if status == 403:
        return Failure(f"the key has no access to this model (HTTP 403); check {what} and the model", fatal=True)
    if status == 429:
        return Failure("rate limit or quota reached (HTTP 429)", retry=True, retry_after=retry_after_seconds(headers))
    if status >= 500:
        return Failure(f"service error (HTTP {status})", retry=True, retry_after=retry_after_seconds(headers))
    return Failure(f"the service rejected the request (HTTP {status})")


class Gate:
    """Shared "wait until" time: a Retry-After seen by one request pauses every request's next try."""

    def __init__(self) -> None:
        self.resume_at = 0.0

    def hold(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def wait(self) -> None:
        while (left := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(left)

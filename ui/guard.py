"""The request guard: an ASGI middleware in front of Gradio's app.

- Refuses a request body over its limit *before reading it* (413): ``Content-Length`` is checked
  first, and a body without one is read only up to the limit. Uploads (``/upload``) get the upload
  limit, every other request a small one; server memory stays flat whatever is sent.
- Sees every ``/cancel`` and ``/reset`` call and sets the cancel flag of that job (ui.sessions), so
  ``/render`` stops at whatever moment a client cancels it.
- With a login (``--auth``), the login page carries no API description: Gradio puts the whole API
  info (endpoints, parameter defaults such as the example storyboard and the model path) into every
  page it serves, even the login page of a visitor who has not logged in.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable

from . import sessions

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Any request but an upload: a storyboard is at most 2,000,000 characters (see pipeline.contract.json_input)."""
MULTIPART_OVERHEAD = 64 * 1024
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)
_AUTH_REQUIRED = b'"auth_required":true'


class RequestGuard:
    """ASGI middleware; see the module doc. ``max_upload_bytes`` should match Gradio's ``max_file_size``."""

    def __init__(self, app: Callable, max_upload_bytes: int, max_request_bytes: int = MAX_REQUEST_BYTES,
                 hide_api_from_login: bool = False) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes + MULTIPART_OVERHEAD
        self.max_request_bytes = max_request_bytes
        self.hide_api_from_login = hide_api_from_login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        limit = self.max_upload_bytes if path.endswith("/upload") else self.max_request_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, limit)
            return
        if path.endswith(("/cancel", "/reset")) or (length is None and scope["method"] in ("POST", "PUT", "PATCH")):
            body = await _read_body(receive, limit)
            if body is None:
                await _refuse(send, limit)
                return
            if path.endswith(("/cancel", "/reset")):
                _note_cancel(body)
            receive = _replay(body, receive)
        if self.hide_api_from_login and scope["method"] == "GET":
            send = _without_api_info_when_logged_out(send)
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = f"Request body too large: the most this server accepts is {limit // 1024} KB.".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replayed


def _note_cancel(body: bytes) -> None:
    try:
        event_id = json.loads(body).get("event_id")
    except (ValueError, AttributeError, RecursionError):
        return
    if isinstance(event_id, str) and 0 < len(event_id) <= 100:
        sessions.cancel_event(event_id)


def _without_api_info_when_logged_out(send: Send) -> Send:
    """Buffer HTML responses; when the page is the login page, blank its API info."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def guarded(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(b"text/html"):
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if _AUTH_REQUIRED in body:
                body = _API_INFO.sub(b"window.gradio_api_info = null;</script>", body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return guarded

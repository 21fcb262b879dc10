"""A local stand-in for the two remote image services, speaking the part of each API the backends use.

- OpenAI Images: ``POST /v1/images/generations`` with a JSON body (model, prompt, n, size, and
  response_format for dall-e) and ``Authorization: Bearer <key>``; answers ``{"data": [{"b64_json": PNG}]}``.
- Hugging Face Inference (``hf-inference`` wire format): ``POST /models/<org>/<name>`` with
  ``{"inputs": prompt, "parameters": {...}}`` and ``Authorization: Bearer <token>``; answers PNG bytes.

Each image is a real PNG at the size asked for: white, with a black square in the middle whose
side is half the shorter side (so a test can see that fitting never stretches).

Directives in a prompt make the server misbehave on demand: ``!401``, ``!policy``, ``!quota``,
``!429xN`` / ``!500xN`` (the first N requests with that prompt fail, later ones succeed),
``!slow=S`` (answer after S seconds). ``latency`` delays every answer. While it waits, the server
watches the connection and counts a request whose client hung up as ``disconnected``.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import select
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image, ImageDraw

OPENAI_KEY = "sk-test-0123456789abcdefSECRET"
HF_KEY = "hf_testTOKEN0123456789SECRET"
GPT_SIZES = {"1024x1024", "1536x1024", "1024x1536"}
DALLE3_SIZES = {"1024x1024", "1792x1024", "1024x1792"}


@functools.lru_cache(maxsize=16)
def test_png(width: int, height: int) -> bytes:
    """White with a centred black square (side: half the shorter side), as PNG bytes (made once per size,
    so the server's own work does not count in the benchmark)."""
    image = Image.new("RGB", (width, height), "white")
    side = min(width, height) // 2
    left, top = (width - side) // 2, (height - side) // 2
    ImageDraw.Draw(image).rectangle([left, top, left + side - 1, top + side - 1], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Record:
    """One request as the server saw it."""

    path: str
    authorization: str
    body: dict
    started: float
    status: int = 0
    finished: float = 0.0


@dataclass
class ServerState:
    latency: float = 0.0
    retry_after: str = "1"
    records: list[Record] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)  # requests per prompt, for !429xN / !500xN
    in_flight: int = 0
    max_in_flight: int = 0
    disconnected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> list[Record]:
        return [r for r in self.records if r.status]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        state = self.server.state
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        record = Record(self.path, self.headers.get("authorization", ""), body, time.monotonic())
        with state.lock:
            state.records.append(record)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            status, headers, payload = self._answer(body)
            if status == 0:  # the client hung up while we waited
                return
            record.status = status
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            with state.lock:
                state.disconnected += 1
        finally:
            record.finished = time.monotonic()
            with state.lock:
                state.in_flight -= 1

    # -- the two APIs ------------------------------------------------------------

    def _answer(self, body: dict) -> tuple[int, dict, bytes]:
        openai = self.path == "/v1/images/generations"
        hf = self.path.startswith("/models/")
        if not (openai or hf):
            return _json(404, {"error": "not found"})
        expected = OPENAI_KEY if openai else HF_KEY
        prompt = str(body.get("prompt") if openai else body.get("inputs") or "")
        with self.server.state.lock:
            self.server.state.seen[prompt] += 1
            count = self.server.state.seen[prompt]
        if self.headers.get("authorization") != f"Bearer {expected}" or "!401" in prompt:
            return _error(openai, 401, "Incorrect API key provided.", "invalid_api_key")
        problem = _check_openai(body) if openai else _check_hf(self.path, body, self.headers)
        if problem:
            return _error(openai, 400, problem, "invalid_value")
        delay = self.server.state.latency + float(_directive(prompt, r"!slow=([\d.]+)") or 0)
        if delay and not self._wait(delay):
            return 0, {}, b""
        if "!policy" in prompt:
            if openai:
                return _error(True, 400, "Your request was rejected as a result of our safety system.",
                              "moderation_blocked")
            return _json(400, {"error": "NSFW content detected by the safety checker. Try another prompt."})
        if "!quota" in prompt:
            return _error(openai, 429, "You exceeded your current quota.", "insufficient_quota")
        for status in (429, 500):
            times = _directive(prompt, rf"!{status}x(\d+)")
            if times and count <= int(times):
                headers = {"retry-after": self.server.state.retry_after} if status == 429 else {}
                status_, base, payload = _error(openai, status, "Slow down." if status == 429 else "Oops.",
                                                "rate_limit_exceeded" if status == 429 else "server_error")
                return status_, {**base, **headers}, payload
        if openai:
            width, height = map(int, body["size"].split("x"))
            data = base64.b64encode(test_png(width, height)).decode("ascii")
            return _json(200, {"created": int(time.time()), "data": [{"b64_json": data}]})
        params = body.get("parameters") or {}
        return 200, {"content-type": "image/png"}, test_png(int(params["width"]), int(params["height"]))

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, watching the socket; False (and counted) if the client hung up meanwhile."""
        end = time.monotonic() + seconds
        sock = self.connection
        while (left := end - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], min(left, 0.02))
            if readable:
                try:
                    gone = sock.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    with self.server.state.lock:
                        self.server.state.disconnected += 1
                    self.close_connection = True
                    return False
                time.sleep(min(left, 0.02))  # pipelined bytes: not a hang-up
        return True


def _check_openai(body: dict) -> str:
    model = body.get("model")
    allowed = {"model", "prompt", "n", "size", "quality"} | (
        {"response_format"} if str(model).startswith("dall-e") else set())
    qualities = {"standard", "hd"} if model == "dall-e-3" else {"low", "medium", "high"}
    if "quality" in body and body["quality"] not in qualities:
        return f"Invalid quality {body['quality']!r} for {model}"
    if set(body) - allowed:
        return f"Unknown parameter(s): {sorted(set(body) - allowed)}"
    sizes = DALLE3_SIZES if model == "dall-e-3" else GPT_SIZES
    if body.get("size") not in sizes:
        return f"Invalid size {body.get('size')!r} for {model}"
    if body.get("n") != 1 or not body.get("prompt"):
        return "n must be 1 and prompt must be set"
    if str(model).startswith("dall-e") and body.get("response_format") != "b64_json":
        return "this test server only returns b64_json"
    return ""


def _check_hf(path: str, body: dict, headers) -> str:
    params = body.get("parameters")
    if not isinstance(body.get("inputs"), str) or not isinstance(params, dict):
        return "expected {'inputs': str, 'parameters': {...}}"
    if "image/png" not in headers.get("accept", ""):
        return "expected Accept: image/png"
    for name in ("width", "height", "num_inference_steps", "seed"):
        if not isinstance(params.get(name), int):
            return f"parameters.{name} must be an integer"
    if params["width"] % 16 or params["height"] % 16:
        return "width and height must be multiples of 16"
    return ""


def _directive(prompt: str, pattern: str) -> str | None:
    match = re.search(pattern, prompt)
    return match.group(1) if match else None


def _json(status: int, data: dict) -> tuple[int, dict, bytes]:
    return status, {"content-type": "application/json"}, json.dumps(data).encode("utf-8")


def _error(openai: bool, status: int, message: str, code: str) -> tuple[int, dict, bytes]:
    if openai:
        return _json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})
    return _json(status, {"error": message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def image_service(latency: float = 0.0):
    """Yield (base URL, state) of a running server on 127.0.0.1; stopped afterwards."""
    state = ServerState(latency=latency)
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

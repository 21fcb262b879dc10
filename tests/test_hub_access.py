"""No network: a hub model id fails in under 2 s (the hub is probed once, then only the local cache
is asked) and says why; a reachable hub (a real local HTTP server) is seen as reachable."""

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.images import hub_access
from server import free_port

ROOT = Path(__file__).resolve().parent.parent

LOAD_TWICE = """
import time
from diffusers import AutoPipelineForText2Image  # imported first: only the load itself is timed
from pipeline.images.diffusers_backend import ModelManager
times, reasons = [], []
for model_id in ("org/not-downloaded", "org/another-one"):
    manager = ModelManager(model_id, "cpu")
    started = time.monotonic()
    manager.load()
    times.append(time.monotonic() - started)
    reasons.append(manager.load_error)
import json
print("RESULT", json.dumps([times, reasons]))
"""


@pytest.fixture(scope="module")
def silent_hub():
    """The URL of a hub that never answers: a loopback socket that takes connections (the kernel's
    backlog) and never reads or replies, as a black-holed network looks to a client. On loopback, so
    no test sends a packet off this machine."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def offline_env(tmp_path: Path, hub: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"), OMP_NUM_THREADS="1")
    return env


def test_the_log_gives_the_pages_reason_and_the_traceback_only_at_debug(caplog):
    """Issue 26: the log printed diffusers' `OSError: ... does not appear to have a file named
    model_index.json`, which contradicts the page's reason (offline)."""
    from pipeline.images.diffusers_backend import ModelManager

    manager = ModelManager("org/not-downloaded", "cpu")  # HF_HUB_OFFLINE=1 in the tests (conftest.py)
    with caplog.at_level(logging.DEBUG, logger="pipeline.images.diffusers_backend"):
        manager.load()
    records = [r for r in caplog.records if r.name == "pipeline.images.diffusers_backend"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [manager.load_error]
    assert hub_access.OFFLINE_REASON in manager.load_error and "model_index.json" not in manager.load_error
    assert not any(r.exc_info for r in records if r.levelno > logging.DEBUG)
    assert any(r.exc_info for r in records if r.levelno == logging.DEBUG)


@pytest.mark.slow
def test_with_no_network_a_hub_id_fails_in_under_two_seconds_and_says_why(tmp_path, silent_hub):
    out = subprocess.run([sys.executable, "-c", LOAD_TWICE], cwd=ROOT, env=offline_env(tmp_path, silent_hub),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    times, reasons = json.loads(line.removeprefix("RESULT "))
    assert times[0] < 2.0, f"the first load took {times[0]:.1f} s"
    assert times[1] < 0.5, f"offline is detected once, not per load ({times[1]:.2f} s)"
    assert all(hub_access.OFFLINE_REASON in reason for reason in reasons), reasons


def test_the_probe_sees_a_reachable_hub_and_respects_hf_hub_offline(monkeypatch):
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("HF_HUB_OFFLINE")
        hub_access.forget()
        assert hub_access.hub_reachable() and not hub_access.local_only()
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert not hub_access.hub_reachable() and hub_access.local_only()
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        assert not hub_access.hub_reachable()
    finally:
        server.shutdown()
        hub_access.forget()


@pytest.mark.slow
def test_the_cli_says_why_a_hub_model_fell_back_when_offline(tmp_path, silent_hub):
    board = tmp_path / "board.json"
    board.write_text(json.dumps({"scenes": [{"prompt": "offline", "duration": 0.5}], "quality": "draft"}))
    out = subprocess.run([sys.executable, "-m", "pipeline", "render", str(board), "-o", str(tmp_path / "o.mp4"),
                          "--model", "org/not-downloaded", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                          "--quiet"], cwd=ROOT, env=offline_env(tmp_path, silent_hub), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert hub_access.OFFLINE_REASON in out.stdout + out.stderr

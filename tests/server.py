"""Start the real Scene2Video server (ui.build_demo + ui.launch) on a free local port."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pipeline import Settings
from pipeline.service import RendererPool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(settings: Settings, **launch_extra):
    """Yield (url, pool) for a live server; closes it afterwards."""
    import ui

    pool = RendererPool(settings)
    demo = ui.build_demo(pool)
    port = free_port()
    ui.launch(demo, settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True, **launch_extra)
    try:
        yield f"http://127.0.0.1:{port}/", pool
    finally:
        demo.close()


def app_settings(tmp_path: Path, **changes) -> Settings:
    base = Settings(output_dir=tmp_path / "outputs", cache_dir=tmp_path / "cache", device="cpu")
    return replace(base, **changes)

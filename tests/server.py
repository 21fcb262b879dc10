"""Start the real Scene2Video server (ui.build_demo + ui.launch) on a free local port, and check what a
stopped render leaves behind (folders, ffmpeg processes, model calls)."""

from __future__ import annotations

import os
import socket
import time
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


# --------------------------------------------------------------------------- what a stopped render leaves

STOP_BOUND_S = 2.0  # issue 4: within one denoising step / one frame; the tiny model's steps take milliseconds
QUIET_WINDOW_S = 1.0  # after the bound, nothing more may happen for this long


def ffmpeg_children() -> list:
    """Live ffmpeg processes started by this process (the in-process server's encoders)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in child.name().lower() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # it ended while we looked
    return found


def render_folders(output_dir: Path) -> set[Path]:
    """Every render folder under the server's output root."""
    return {path for path in Path(output_dir).iterdir() if path.is_dir()} if Path(output_dir).is_dir() else set()


def finished(folder: Path) -> bool:
    """A finished render keeps its MP4 and report.json; a stopped one leaves no folder at all."""
    return (folder / "report.json").is_file() and any(
        path.suffix == ".mp4" and ".part" not in path.name for path in folder.iterdir())


@contextmanager
def counting_unet_calls(model, step_s: float = 0.0):
    """Count the loaded diffusers UNet's forward calls (one per denoising step of a batch).

    ``step_s`` makes each step last at least that long without holding the GIL, like a GPU
    step: the tiny model's steps are pure Python and would starve the in-process server and
    client threads, so a cancel would be measured in client lag rather than in steps.
    """
    model.load()
    unet = model.pipeline.unet
    original = unet.forward
    calls = [0]

    def forward(*args, **kwargs):
        calls[0] += 1
        time.sleep(step_s)
        return original(*args, **kwargs)

    had_own = "forward" in vars(unet)
    unet.forward = forward
    try:
        yield calls
    finally:
        if had_own:
            unet.forward = original
        else:
            del unet.forward  # the class's own forward again


def wait_until(check, timeout: float, every: float = 0.02) -> float:
    """Poll ``check()`` until it is true; returns the seconds it took (raises AssertionError on timeout)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"still not true after {timeout} s: {getattr(check, '__doc__', '') or check}")
        time.sleep(every)
    return time.monotonic() - started


def path_without(folder: Path, *names: str) -> Path:
    """A folder of links to every program on PATH except ``names``: use it as PATH to hide them."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if entry.name not in names and not link.exists() and not link.is_symlink():
                link.symlink_to(entry.path)
    return folder


def assert_stopped(output_dir: Path, before: set[Path], cancelled_at: float, calls: list | None = None,
                   bound_s: float = STOP_BOUND_S) -> None:
    """A cancelled render is really gone ``bound_s`` after ``cancelled_at`` (a time.monotonic()):
    no new folder left in ``output_dir`` (``before``: the folders it had), no ffmpeg child, and,
    with ``calls`` from counting_unet_calls, no UNet call in the quiet window that follows.
    """

    def stopped() -> bool:
        return not (render_folders(output_dir) - before) and not ffmpeg_children()

    try:
        wait_until(stopped, bound_s - (time.monotonic() - cancelled_at), every=0.01)
    except AssertionError:
        raise AssertionError(f"{bound_s} s after the cancel: new folders {render_folders(output_dir) - before}, "
                             f"ffmpeg children {ffmpeg_children()}") from None
    settled = calls[0] if calls is not None else None
    time.sleep(QUIET_WINDOW_S)
    assert not ffmpeg_children(), "an ffmpeg process outlived the cancel"
    assert not (render_folders(output_dir) - before), "the cancelled render's folder was left behind"
    assert all(finished(folder) for folder in render_folders(output_dir)), "partial files left in outputs"
    if calls is not None:
        assert calls[0] == settled, f"the model kept denoising after the cancel ({settled} -> {calls[0]} UNet calls)"

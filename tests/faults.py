"""Helpers for the fault tests: a real full disk (a small tmpfs), ffmpeg processes, a poisoned model."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, size: str = "4m"):
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()[:120]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path, name: str = "filler") -> Path:
    """Write zeros into ``folder/name`` until the disk is full; returns the file (delete it to free the disk)."""
    path = folder / name
    with path.open("ab", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return path


def ffmpeg_processes_under(folder: Path) -> list:
    """Live ffmpeg processes (any parent) whose command line mentions ``folder``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            if ("ffmpeg" in (proc.info["name"] or "").lower() and proc.info["status"] != psutil.STATUS_ZOMBIE
                    and any(str(folder) in part for part in proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@contextmanager
def poisoned_unet(manager, prompt: str, how: str):
    """Make the loaded tiny model fail for the batch rows whose prompt is ``prompt``.

    ``how`` is "raise" (the whole pipeline call raises when such a row is in the batch, as a real
    kernel error would) or "nan" (those rows' noise prediction becomes NaN, the others are untouched).
    Each row is recognised by its text embedding, computed with the model's own text encoder.
    """
    import torch

    pipe = manager.pipeline
    poison = pipe.encode_prompt(prompt, "cpu", 1, False)[0][0]
    unet = pipe.unet
    original = unet.forward

    def forward(sample, timestep, encoder_hidden_states, *args, **kwargs):
        rows = [i for i in range(encoder_hidden_states.shape[0]) if torch.allclose(encoder_hidden_states[i], poison)]
        if rows and how == "raise":
            raise ValueError(f"poisoned prompt in a batch of {sample.shape[0]}")
        out = original(sample, timestep, encoder_hidden_states, *args, **kwargs)
        if rows:
            noise = out[0].clone()
            noise[rows] = float("nan")
            return (noise,)
        return out

    unet.forward = forward
    try:
        yield
    finally:
        del unet.forward

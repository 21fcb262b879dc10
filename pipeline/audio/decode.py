"""Decode part of an audio file to mono float32 PCM in blocks, with the bundled ffmpeg.

Blocks keep memory flat whatever the song's length; no system codec is needed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np

from .probe import ffmpeg_exe

BLOCK_SECONDS = 10.0


def pcm_blocks(path: str | Path, start: float, duration: float, sample_rate: int,
               block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 samples of ``path`` from ``start`` for ``duration`` seconds, ``block_seconds`` at a time.

    The last block may be shorter; a file that ends early simply yields fewer samples.
    """
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-ss", f"{start:.6f}", "-t", f"{duration:.6f}", "-i", str(path),
            "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    block_bytes = 4 * max(1, round(block_seconds * sample_rate))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        while True:
            data = proc.stdout.read(block_bytes)
            if not data:
                break
            usable = len(data) - len(data) % 4
            yield np.frombuffer(data[:usable], dtype="<f4")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()

"""Restyled shots in the footage cache: a shot redrawn once is not redrawn again.

A restyled shot is decided by its source frames (the source video's bytes, the span's start and
frame count, the video's rate and frame size), the model's request for the scene (prompt, seed,
steps, guidance, size, decoder, look strength, ControlNet: the keyframe cache's key,
``pipeline.images.plan.cache_key``) and the coherence settings (``coherence``,
``keyframe_interval``). The key covers exactly those, so editing scene 3's prompt redraws scene 3
only. The entries live in the clip cache (``pipeline.images.clip_cache``), which keeps footage
folders of any maker under a size cap. Only shots the model drew to the end are stored: a shot that
fell back to its source frames is made again next time, in case the model can draw it then.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from ..contract.storyboard import Storyboard
from ..images.generation import ImageRequest
from ..images.plan import cache_key

_FORMAT = 1  # bump when the restyle's output for the same inputs changes
_CHUNK = 1024 * 1024


def source_digest(path: str | Path) -> str:
    """The sha256 of the source video's bytes, read once per version of the file: remembered by its
    path, size, modification time and inode (as git's index does), so a re-render of a multi-GB
    source from the command line does not read it all again."""
    stat = os.stat(path)
    return _digest(os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def shot_cache_key(model_id: str, request: ImageRequest, storyboard: Storyboard, index: int, count: int,
                   source: str) -> str:
    """The hex key of restyled scene ``index`` (``count`` frames) drawn by ``request`` from the source ``source``."""
    scene, preset = storyboard.scenes[index], storyboard.preset
    fields = {
        "v": _FORMAT,
        "image": cache_key(model_id, request),
        "source": source,
        "start": round(float(scene.source_start or 0.0), 6),
        "frames": count,
        "fps": storyboard.output_fps,
        "size": [preset.width, preset.height],
        "coherence": storyboard.coherence,
        "keyframe_interval": storyboard.keyframe_interval,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()

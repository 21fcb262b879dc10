"""Storyboards read from files: the bytes, the paths they name made absolute, validated at the door.

Shared by ``python -m pipeline render`` and ``python -m pipeline batch``. A storyboard file
names its audio, reference image and source video by paths relative to its own folder; a line of a JSONL
file names them relative to the JSONL file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .contract.errors import StoryboardError
from .contract.json_input import MAX_JSON_CHARS, load_json
from .contract.reference import resolve_reference
from .contract.storyboard import Limits, Storyboard, parse_storyboard

MAX_FILE_BYTES = 4 * MAX_JSON_CHARS  # UTF-8 takes at most 4 bytes a character


def read_storyboard_bytes(path: Path) -> bytes:
    """The file's bytes (decoded and checked by parse_storyboard); too big or unreadable: StoryboardError."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise StoryboardError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if len(data) > MAX_FILE_BYTES:
        raise StoryboardError(f"{path} is larger than {MAX_FILE_BYTES // 1_000_000} MB; that is not a storyboard.")
    return data


def with_audio_path(data: Any, folder: Path) -> Any:
    """The storyboard document with relative ``audio`` and ``source_video`` paths resolved against ``folder``."""
    for name in ("audio", "source_video"):
        value = data.get(name) if isinstance(data, dict) else None
        if isinstance(value, str) and value.strip():
            path = Path(value.strip()).expanduser()
            data[name] = str(path if path.is_absolute() else folder / path)
    return data


def storyboard_from_document(data: Any, folder: Path, limits: Limits | None = None) -> Storyboard:
    """A parsed JSON document (or its text) as a checked Storyboard, its file paths relative to ``folder``."""
    if isinstance(data, (str, bytes, bytearray)):
        data = load_json(data)  # size, depth and UTF-8 checked: only StoryboardError escapes
    storyboard = parse_storyboard(with_audio_path(data, folder), limits)
    return resolve_reference(storyboard, folder)


def load_storyboard_file(path: Path, limits: Limits | None = None) -> Storyboard:
    """The storyboard in the file at ``path``, checked; StoryboardError (one line) when it is not usable."""
    return storyboard_from_document(read_storyboard_bytes(path), path.parent, limits)

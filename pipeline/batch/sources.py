"""SRC of a batch: a folder of storyboard files (``*.json``) or a JSONL file (one storyboard a line);
a single storyboard file is a batch of one.

Every storyboard becomes a :class:`BatchItem` named for its file (or its line and first prompt);
one that cannot be read or is invalid keeps its one-line reason, so the batch reports it and goes
on. Only an unusable SRC itself (missing, empty, neither a folder nor a file) raises SourceError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..contract.errors import StoryboardError
from ..contract.storyboard import Limits, Storyboard
from ..outputs import file_stem
from ..storyboard_files import MAX_FILE_BYTES, load_storyboard_file, storyboard_from_document

_MAX_ITEMS = 100_000


class SourceError(Exception):
    """SRC itself is unusable (exit code 2); the message is one line."""


@dataclass(frozen=True)
class BatchItem:
    """One storyboard of the batch: ``id`` names it in the manifest and its files in DIR."""

    id: str
    origin: str  # where it came from, for messages: a file name or "batch.jsonl line 3"
    storyboard: Storyboard | None
    error: str = ""  # why it is not usable (then storyboard is None)


def read_source(src: Path, limits: Limits | None = None) -> list[BatchItem]:
    """The storyboards of ``src``, in order (files sorted by name; lines in file order)."""
    if src.is_dir():
        items = _from_folder(src, limits)
    elif src.is_file() and src.suffix.lower() == ".json":  # one storyboard file: a batch of one
        items = [_item(file_stem(src.stem, fallback="storyboard"), src.name, lambda: load_storyboard_file(src, limits))]
    elif src.is_file():
        items = _from_jsonl(src, limits)
    else:
        raise SourceError(f"{src} is neither a folder of storyboards nor a JSONL file.")
    if not items:
        raise SourceError(f"{src} holds no storyboards.")
    return _unique_ids(items)


def _from_folder(folder: Path, limits: Limits | None) -> list[BatchItem]:
    try:
        files = sorted(path for path in folder.iterdir() if path.suffix.lower() == ".json" and path.is_file())
    except OSError as exc:
        raise SourceError(f"Cannot read the folder {folder}: {exc.strerror or exc}.") from None
    return [_item(file_stem(path.stem, fallback="storyboard"), path.name, lambda p=path: load_storyboard_file(p, limits))
            for path in files[:_MAX_ITEMS]]


def _from_jsonl(path: Path, limits: Limits | None) -> list[BatchItem]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SourceError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise SourceError(f"{path} is not UTF-8 text, so not a JSONL file of storyboards.") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        origin = f"{path.name} line {number}"
        items.append(_item(_line_id(number, line), origin,
                           lambda line=line: storyboard_from_document(_line_document(line), path.parent, limits)))
        if len(items) >= _MAX_ITEMS:
            break
    return items


def _line_document(line: str) -> object:
    if len(line) > MAX_FILE_BYTES:
        raise StoryboardError("This line is too long to be a storyboard.")
    return line


def _line_id(number: int, line: str) -> str:
    """``0003-a-lighthouse-at-dusk``: the line number and the first prompt's first words."""
    try:
        prompt = json.loads(line)["scenes"][0]["prompt"]
    except (ValueError, KeyError, IndexError, TypeError):
        prompt = ""
    words = file_stem(prompt, fallback="") if isinstance(prompt, str) else ""
    return f"{number:04d}-{words}" if words else f"{number:04d}"


def _item(item_id: str, origin: str, load) -> BatchItem:
    try:
        return BatchItem(item_id, origin, load())
    except StoryboardError as exc:
        return BatchItem(item_id, origin, None, str(exc))


def _unique_ids(items: list[BatchItem]) -> list[BatchItem]:
    """Two files whose names give the same stem get ``-2``, ``-3`` … so no video overwrites another."""
    seen: dict[str, int] = {}
    unique = []
    for item in items:
        count = seen.get(item.id, 0) + 1
        seen[item.id] = count
        unique.append(item if count == 1 else BatchItem(f"{item.id}-{count}", item.origin, item.storyboard, item.error))
    return unique

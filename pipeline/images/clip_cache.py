"""An on-disk cache of clips: footage folders keyed by everything that decides them.

A sibling of the keyframe cache (``pipeline.images.cache``), in a ``clips`` folder beside its
entries: each entry is a finished footage folder (``pipeline.contract.footage``) named by the
clip's cache key (``pipeline.images.clip_plan.clip_cache_key``). An entry is copied in under a
temporary name and renamed into place, so a killed process never leaves a half-written entry
under a valid name; a folder without its description is not an entry. A render gets its own
hard links to an entry's files (a copy where links are not possible), so evicting the entry
never pulls frames from under a render that shows them. Total size is capped, least recently used first.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..contract.footage import FRAMES_NAME, META_NAME, Footage
from .cache import evict_oldest

log = logging.getLogger(__name__)


class ClipCache:
    """Thread-safe get/put of footage folders under ``folder``, capped at ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int = 2 * 1024**3) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str, into: Path) -> Footage | None:
        """The cached clip linked (or copied) into the new folder ``into``, or None when missing or unreadable."""
        entry = self._path(key)
        if not Footage.is_footage(entry):
            return None
        try:
            into.mkdir(parents=True, exist_ok=False)
            for name in (FRAMES_NAME, META_NAME):
                _link_or_copy(entry / name, into / name)
            footage = Footage(into)
            expected = footage.info.count * footage.info.width * footage.info.height * 3
            if (into / FRAMES_NAME).stat().st_size != expected:
                raise ValueError("its frames are truncated")
        except (OSError, ValueError, TypeError) as exc:
            log.warning("Clip cache entry %s is unreadable (%s); it will be made again", key[:12], exc)
            shutil.rmtree(entry, ignore_errors=True)
            shutil.rmtree(into, ignore_errors=True)
            return None
        os.utime(entry)  # recently used
        return footage

    def put(self, key: str, footage: Footage) -> bool:
        """Store a finished footage folder's frames; never raises for a disk problem (returns False)."""
        entry = self._path(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            temporary = Path(tempfile.mkdtemp(dir=entry.parent, suffix=".tmp"))
            try:
                for name in (FRAMES_NAME, META_NAME):
                    _link_or_copy(footage.folder / name, temporary / name)
                if entry.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                os.replace(temporary, entry)
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
        except OSError as exc:
            log.warning("Clip cache skipped (%s)", exc.strerror or type(exc).__name__)
            return False
        self._evict()
        return True

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        removed = 0
        with self._lock:
            for entry in self.folder.glob("*/*"):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed

    def _entries(self):
        for entry in self.folder.glob("*/*"):
            frames = entry / FRAMES_NAME
            try:
                yield entry, frames.stat().st_size, entry.stat().st_mtime
            except FileNotFoundError:
                continue

    def _evict(self) -> None:
        with self._lock:
            evict_oldest(self._entries(), self.max_bytes, lambda entry: shutil.rmtree(entry, ignore_errors=True))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)

"""An on-disk keyframe cache: AI keyframes keyed by everything that decides them.

Entries are PNG files named by a request's cache key (``pipeline.images.plan.cache_key``:
model, prompt, negative prompt, seed, steps, guidance, size, decoder, and what it depends on). Each PNG carries its key and a checksum of
its pixels in text chunks, so a truncated or corrupted file is detected, deleted
and regenerated instead of being shown. Writes go to a temporary file that is
renamed into place, so a killed process never leaves a half-written entry under a
valid name. Total size is capped; the least recently used entries go first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, PngImagePlugin

log = logging.getLogger(__name__)
_STALE_WRITE_S = 3600  # a put takes milliseconds; an hour-old temporary file is an orphan


def _pixel_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def evict_oldest(entries: Iterable[tuple[Path, int, float]], max_bytes: int, remove: Callable[[Path], None]) -> None:
    """Remove the least recently used of ``entries`` (path, bytes, mtime) until the rest fit in ``max_bytes``."""
    ordered = sorted(entries, key=lambda entry: entry[2])
    total = sum(size for _, size, _ in ordered)
    for path, size, _ in ordered:
        if total <= max_bytes:
            break
        remove(path)
        total -= size


class KeyframeCache:
    """Thread-safe get/put of keyframes under ``folder``, capped at ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int = 2 * 1024**3):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._remove_stale_writes()

    def _remove_stale_writes(self) -> None:
        """Delete temporary files that a killed process left behind (never read as entries, but
        they would take disk space forever). Recent ones may belong to a live writer and stay."""
        cutoff = time.time() - _STALE_WRITE_S
        for path in self.folder.glob("*/*.tmp"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.png"

    def get(self, key: str) -> Image.Image | None:
        """The cached image, or None when missing or corrupt (a corrupt entry is removed)."""
        path = self._path(key)
        try:
            with Image.open(path) as stored:
                stored.load()
                image = stored.convert("RGB")
                meta = dict(stored.text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, SyntaxError) as exc:
            log.warning("Keyframe cache entry %s is unreadable (%s); it will be regenerated", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        if meta.get("scene2video-key") != key or meta.get("scene2video-pixels") != _pixel_digest(image):
            log.warning("Keyframe cache entry %s failed its checksum; it will be regenerated", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # mark as recently used for LRU eviction
        return image

    def put(self, key: str, image: Image.Image) -> bool:
        """Store an AI keyframe atomically, then evict old entries over the cap.

        Never raises for a disk problem (full, read-only, gone): the cache is an optimisation,
        so the entry is skipped with a warning and False is returned.
        """
        try:
            self._put(key, image)
        except OSError as exc:
            log.warning("Keyframe cache skipped (%s): the render goes on without caching this keyframe",
                        exc.strerror or type(exc).__name__)
            return False
        return True

    def _put(self, key: str, image: Image.Image) -> None:
        image = image.convert("RGB")
        info = PngImagePlugin.PngInfo()
        info.add_text("scene2video-key", key)
        info.add_text("scene2video-pixels", _pixel_digest(image))
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                image.save(handle, format="PNG", pnginfo=info)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self._evict()

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        removed = 0
        with self._lock:
            for path in self.folder.glob("*/*.png"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def stats(self) -> tuple[int, int]:
        """(number of entries, total bytes)."""
        entries = list(self._entries())
        return len(entries), sum(size for _, size, _ in entries)

    def _entries(self):
        for path in self.folder.glob("*/*.png"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            yield path, stat.st_size, stat.st_mtime

    def _evict(self) -> None:
        with self._lock:
            evict_oldest(self._entries(), self.max_bytes, lambda path: path.unlink(missing_ok=True))

"""Housekeeping for the output folder: each render has its own folder; old ones are removed."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)


def remove_old_outputs(output_dir: Path, max_age_hours: float, now: float | None = None) -> int:
    """Delete render folders last changed more than ``max_age_hours`` ago; returns how many."""
    now = time.time() if now is None else now
    if not output_dir.is_dir():
        return 0
    removed = 0
    for folder in output_dir.iterdir():
        try:
            age_hours = (now - folder.stat().st_mtime) / 3600
        except FileNotFoundError:
            continue
        if folder.is_dir() and age_hours > max_age_hours:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("Removed %d render folders older than %g hours", removed, max_age_hours)
    return removed

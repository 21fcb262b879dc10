"""Housekeeping for the output folder: each render has its own folder; old ones are removed.

A render folder holds an owner file (``.rendering``: the process id and its start time)
until its render has finished. A folder whose owner process is gone (killed with
``kill -9``, a crash, a power cut) is unfinished for good; :func:`remove_unfinished_outputs`
deletes such folders at once (the app calls it when it starts and before every render).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_FILE = ".rendering"


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux /proc, clock ticks) or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid} {_process_start(pid) or '-'}"


def _owner_alive(token: str) -> bool:
    try:
        pid_text, start = token.split()
        pid = int(pid_text)
    except ValueError:
        return False  # unreadable: not ours, not anyone's
    if Path("/proc").is_dir():
        return _process_start(pid) == start  # a new process that got the same pid does not count
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def mark_unfinished(folder: Path) -> None:
    """Record that this process is rendering into ``folder`` (see :func:`mark_finished`)."""
    (folder / OWNER_FILE).write_text(_owner_token(), encoding="utf-8")


def mark_finished(folder: Path) -> None:
    (folder / OWNER_FILE).unlink(missing_ok=True)


def remove_unfinished_outputs(output_dir: Path) -> int:
    """Delete render folders whose owner process no longer runs; returns how many."""
    if not Path(output_dir).is_dir():
        return 0
    removed = 0
    for folder in Path(output_dir).iterdir():
        try:
            token = (folder / OWNER_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # finished (no owner file), not a folder, or just removed
        if not _owner_alive(token):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.warning("Removed %d unfinished render folder(s) left by a process that died", removed)
    return removed


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


def file_stem(text: str, fallback: str = "scene2video", words: int = 6) -> str:
    """A short, safe file name stem from a title or a prompt: lower-case words joined by '-'."""
    found = re.findall(r"[^\W_]+", text.lower())[:words]
    stem = "-".join(found)[:60].strip("-")
    return stem or fallback

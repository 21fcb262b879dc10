"""Per-session cancel flags, so Stop reaches the render of the session that pressed it."""

from __future__ import annotations

import threading

_flags: dict[str, threading.Event] = {}
_lock = threading.Lock()


def begin(session: str) -> threading.Event:
    """A fresh cancel flag for a new render in ``session``."""
    with _lock:
        flag = _flags[session] = threading.Event()
    return flag


def cancel(session: str) -> bool:
    """Set the session's flag; returns whether a render was running."""
    with _lock:
        flag = _flags.get(session)
    if flag is None or flag.is_set():
        return False
    flag.set()
    return True


def end(session: str, flag: threading.Event) -> None:
    """Forget the flag once its render is over (unless a newer render replaced it)."""
    with _lock:
        if _flags.get(session) is flag:
            del _flags[session]

"""Per-session cancel flags, so Stop reaches the render of the session that pressed it.

Stop never cancels the Gradio event itself (a cancelled event can leave error badges and stale
outputs on the page): it sets this flag, the renderer sees it within one frame or denoising step
and ends with a "stopped" event that the page shows like any other. A Stop pressed while the
render is still waiting in the queue is remembered, and that render stops as soon as it begins.
"""

from __future__ import annotations

import threading

_flags: dict[str, threading.Event] = {}
_pending: set[str] = set()
_lock = threading.Lock()


def queued(session: str) -> None:
    """A new render was asked for in ``session``: forget any earlier, unused Stop."""
    with _lock:
        _pending.discard(session)


def begin(session: str) -> threading.Event:
    """A fresh cancel flag for a render starting in ``session`` (already set if Stop came first)."""
    with _lock:
        flag = _flags[session] = threading.Event()
        if session in _pending:
            _pending.discard(session)
            flag.set()
    return flag


def cancel(session: str) -> bool:
    """Stop the session's render; returns whether one was running (else the next one to begin stops)."""
    with _lock:
        flag = _flags.get(session)
        if flag is None:
            _pending.add(session)
            return False
    if flag.is_set():
        return False
    flag.set()
    return True


def end(session: str, flag: threading.Event) -> None:
    """Forget the flag once its render is over (unless a newer render replaced it)."""
    with _lock:
        if _flags.get(session) is flag:
            del _flags[session]
        _pending.discard(session)

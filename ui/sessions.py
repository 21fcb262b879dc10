"""Per-session cancel flags, so Stop reaches the render of the session that pressed it; and per-event
cancel flags for the API, set by the request guard when a client cancels a job (see ui.guard).

Gradio alone cannot stop a ``/render`` cancelled in its first moments: a cancel that lands while the
handler is starting, or while it is busy between two updates, leaves the handler suspended or
running. The guard sees every ``/cancel`` and ``/reset`` call and sets the flag of that event id,
which the renderer checks every frame and step; a cancel that arrives before its render has
started is remembered for a minute, so the render never starts.

For the page, Stop never cancels the Gradio event itself (a cancelled event can leave error badges
and stale outputs): it sets the session's flag, the renderer sees it within one frame or denoising
step and ends with a "stopped" event that the page shows like any other. A Stop pressed while the
render is still waiting in the queue is remembered, and that render stops as soon as it begins.
"""

from __future__ import annotations

import threading
import time

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


_EARLY_CANCEL_S = 60.0
_event_flags: dict[str, threading.Event] = {}
_early: dict[str, float] = {}  # event id -> when it was cancelled, before its render started


def watch_event(event_id: str | None) -> threading.Event:
    """The cancel flag for the API job ``event_id`` (already set if it was cancelled before it started)."""
    flag = threading.Event()
    if event_id is None:
        return flag
    with _lock:
        if _early.pop(event_id, None) is not None:
            flag.set()
        _event_flags[event_id] = flag
    return flag


def cancel_event(event_id: str) -> None:
    """A client cancelled job ``event_id``: stop its render now, or before it starts."""
    now = time.monotonic()
    with _lock:
        flag = _event_flags.get(event_id)
        if flag is None:
            for old in [key for key, when in _early.items() if now - when > _EARLY_CANCEL_S]:
                del _early[old]
            if len(_early) < 10_000:  # bounded, whatever a client sends
                _early[event_id] = now
    if flag is not None:
        flag.set()


def forget_event(event_id: str | None, flag: threading.Event) -> None:
    with _lock:
        if event_id is not None and _event_flags.get(event_id) is flag:
            del _event_flags[event_id]


def current_event_id() -> str | None:
    """The id of the Gradio event (queued job) this thread is running, if any."""
    from gradio.context import LocalContext

    return LocalContext.event_id.get(None)

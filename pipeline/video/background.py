"""Run the compose + encode stage beside the keyframe stage, so the video starts while scenes are made.

:class:`KeyframeSlots` is where the keyframe stage puts each scene's PNG and where
the timeline waits for it; :class:`EventPump` runs a generator of events in a
thread and hands its events over through a queue. Neither knows what a frame is.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from pathlib import Path
from typing import Iterator

from ..contract.errors import RenderCancelled
from ..contract.events import Event

_POLL_S = 0.05  # how often a waiting thread looks at the cancel flag


class KeyframeSlots:
    """One slot per scene; ``wait(i)`` blocks until scene ``i``'s keyframe is ``put`` (in any order)."""

    def __init__(self, count: int, cancel: threading.Event) -> None:
        self._paths: list[Path | None] = [None] * count
        self._cancel = cancel
        self._ready = threading.Condition()

    def put(self, index: int, path: Path) -> None:
        with self._ready:
            self._paths[index] = path
            self._ready.notify_all()

    def wait(self, index: int) -> Path:
        """Scene ``index``'s keyframe path; raises RenderCancelled if the render is cancelled first."""
        with self._ready:
            while self._paths[index] is None:
                if self._cancel.is_set():
                    raise RenderCancelled()
                self._ready.wait(_POLL_S)
            return self._paths[index]


class EventPump:
    """Iterates ``events`` in a daemon thread; the owner takes them with ``ready()`` / ``rest()``.

    An exception in the thread is raised again in the owner's thread. ``close()``
    sets ``cancel`` and waits for the thread: the generator must notice ``cancel``
    promptly (the timeline checks it every frame).
    """

    _END = object()

    def __init__(self, events: Iterator[Event], cancel: threading.Event, name: str) -> None:
        self._events = events
        self._cancel = cancel
        self._queue: queue.Queue = queue.Queue()
        # In a copy of the creator's context: Gradio's request (and ZeroGPU's quota owner) stay visible.
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,), name=name,
                                        daemon=True)
        self._done = False
        self._thread.start()

    def ready(self) -> Iterator[Event]:
        """The events produced so far, without waiting."""
        while not self._done:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            yield from self._take(item)

    def rest(self) -> Iterator[Event]:
        """Every remaining event, waiting for each, until the generator ends."""
        while not self._done:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            yield from self._take(item)

    def within(self, timeout: float) -> Iterator[Event]:
        """The events produced so far, waiting up to ``timeout`` seconds for the first of them."""
        if self._done:
            return
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        yield from self._take(item)
        yield from self.ready()

    @property
    def finished(self) -> bool:
        """True once the generator has ended and every event was taken."""
        return self._done

    def close(self) -> None:
        if self._thread.is_alive():
            self._cancel.set()
        self._thread.join()

    def _take(self, item: object) -> Iterator[Event]:
        if item is self._END:
            self._done = True
        elif isinstance(item, BaseException):
            self._done = True
            raise item
        else:
            yield item

    def _run(self) -> None:
        try:
            for event in self._events:
                self._queue.put(event)
            self._queue.put(self._END)
        except BaseException as exc:  # handed to the owner, who raises it in its own thread
            self._queue.put(exc)
        finally:
            self._events.close()

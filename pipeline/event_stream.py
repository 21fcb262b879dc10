"""One event stream per render: producers in threads put events on one bounded queue; the caller drains it.

Every producer of a render (the image stage with its step previews, composing and
encoding with its segments) runs through :meth:`EventStream.run`, the one helper
that runs a generator in a thread, so an event reaches the caller as soon as it
exists, whichever producer made it. The queue is bounded: a producer that gets
ahead of its consumer waits. Events that a newer one of their kind replaces (step
previews, progress) never wait: when the queue is full the newest of each kind is
kept aside and delivered as soon as the consumer has caught up. A producer's
exception is raised again in the caller's thread.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from dataclasses import dataclass
from typing import Iterator

from .contract.errors import RenderCancelled
from .contract.events import Event

_POLL_S = 0.05  # how often a waiting thread looks at the cancel flag
DEFAULT_CAPACITY = 64


@dataclass(frozen=True)
class _Ended:
    name: str


@dataclass(frozen=True)
class _Raised:
    error: BaseException


class EventStream:
    """The bounded queue of one render and the threads that feed it. ``close()`` ends them all."""

    def __init__(self, cancel: threading.Event, capacity: int = DEFAULT_CAPACITY) -> None:
        self.cancel = cancel
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._latest: dict[type, Event] = {}  # droppable events that found the queue full, newest per kind
        self._latest_lock = threading.Lock()

    def put(self, event: Event, droppable: bool = False) -> None:
        """Queue ``event``, waiting for room; a ``droppable`` event never waits (see the module's docstring).

        Raises RenderCancelled if the render is cancelled while waiting.
        """
        if droppable:
            with self._latest_lock:
                try:
                    self._queue.put_nowait(event)
                    self._latest.pop(type(event), None)  # older than this one: never deliver it after
                except queue.Full:
                    self._latest[type(event)] = event
            return
        if not self._put(event):
            raise RenderCancelled()

    def run(self, name: str, producer: Iterator[Event]) -> None:
        """Iterate ``producer`` in a new thread (with a copy of this thread's context), queueing its events."""
        context = contextvars.copy_context()  # keeps Gradio's request (ZeroGPU bills it) visible there
        thread = threading.Thread(target=context.run, args=(self._produce, name, producer),
                                  name=f"scene2video-{name}", daemon=True)
        self._threads.append(thread)
        self._running += 1
        thread.start()

    def drain(self) -> Iterator[Event]:
        """Every event, as it comes, until all producers have ended; nothing more once cancelled."""
        while self._running:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not any(thread.is_alive() for thread in self._threads):
                    return  # ended while cancelled, their end markers dropped
                yield from self._kept_aside()
                continue
            if isinstance(item, _Ended):
                self._running -= 1
            elif isinstance(item, _Raised):
                raise item.error
            elif not self.cancel.is_set():
                yield item
            if self._queue.empty():
                yield from self._kept_aside()

    def _kept_aside(self) -> list[Event]:
        """The newest droppable events that found the queue full, now that it is empty."""
        with self._latest_lock:
            kept, self._latest = list(self._latest.values()), {}
        return [] if self.cancel.is_set() else kept

    def close(self) -> None:
        """Stop every producer still producing (they see ``cancel`` within one step or frame) and wait for them.

        Producers that have ended are not cancelled, even if their thread is still finishing.
        """
        if self._running:
            self.cancel.set()
        for thread in self._threads:
            thread.join()

    def _produce(self, name: str, producer: Iterator[Event]) -> None:
        try:
            for event in producer:
                self.put(event)
            self._put(_Ended(name))
        except BaseException as exc:  # handed to the caller, who raises it in its own thread
            self._put(_Raised(exc))
        finally:
            close = getattr(producer, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        """Queue ``item``, waiting for room unless the render is cancelled; False if it was not queued."""
        while True:
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                if self.cancel.is_set():
                    return False

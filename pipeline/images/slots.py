"""Where the image stage leaves each image of the plan and where the timeline waits for it.

A slot holds the image's file, or None for an image that will not exist (the in-between
images of a morph that fell back to a crossfade).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ..contract.errors import RenderCancelled

_POLL_S = 0.05  # how often a waiting thread looks at the cancel flag


class ImageSlots:
    """One slot per request id; ``wait(id)`` blocks until that image is ``put`` (in any order)."""

    def __init__(self, cancel: threading.Event) -> None:
        self._paths: dict[str, Path | None] = {}
        self._cancel = cancel
        self._ready = threading.Condition()

    def put(self, request_id: str, path: Path | None) -> None:
        with self._ready:
            self._paths[request_id] = path
            self._ready.notify_all()

    def wait(self, request_id: str, idle: Callable[[], None] | None = None) -> Path | None:
        """The image file for ``request_id`` (None: it will not exist).

        Raises RenderCancelled if the render is cancelled first.

        ``idle`` is called every few milliseconds while waiting (the encoder hands on
        segments it finished meanwhile).
        """
        while True:
            with self._ready:
                if request_id in self._paths:
                    return self._paths[request_id]
                if self._cancel.is_set():
                    raise RenderCancelled()
                self._ready.wait(_POLL_S)
            if idle is not None:
                idle()

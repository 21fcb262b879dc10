"""How often a running clip is previewed: a step preview costs one small VAE decode, and on a
fast model (a tiny test model, a distilled one on a big GPU) a decode every step would be a
large share of the clip's time. torch-free.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

PREVIEW_SHARE = 0.05
"""Previews may take at most this share of a call's time so far (the first step's is always made)."""


class PreviewBudget:
    """Runs a preview after a step only while previews stay within :data:`PREVIEW_SHARE` of the call.

    A real model's step takes far longer than a shrunk one-frame decode, so every step is
    previewed; a model whose steps take milliseconds is previewed on its first step and then
    every few steps. :meth:`start` when the call starts; :meth:`run` after each step.
    """

    def __init__(self, share: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.share = PREVIEW_SHARE if share is None else share
        self._clock = clock
        self._started = clock()
        self._spent = 0.0
        self._last_cost = 0.0
        self.made = 0

    def start(self) -> None:
        """The call starts now (its time so far is counted from here)."""
        self._started = self._clock()

    def run(self, make: Callable[[], T | None]) -> T | None:
        """``make()`` if the budget allows a preview now (its cost is measured), else None."""
        elapsed = self._clock() - self._started
        if self.made and self._spent + self._last_cost > self.share * elapsed:
            return None
        began = self._clock()
        preview = make()
        self._last_cost = self._clock() - began
        self._spent += self._last_cost
        self.made += 1
        return preview

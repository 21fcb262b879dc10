"""The image stage's book of morph transitions: their in-between images, and when each is settled.

A morph is settled once both its keyframes and all its in-between images are known. It
is then made (every in-between image exists, from the model or the cache) or it falls
back to a crossfade: a keyframe on either side is a placeholder, an in-between image
failed, or the model does not run at all. Settling puts every in-between image into its
slot at once (the file, or None for a fallback), so the timeline sees a whole morph or
none, and gives the MorphReady event that the report is made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..contract.events import MorphReady
from ..contract.storyboard import Storyboard
from .generation import ImageRequest, inbetween_id
from .plan import morph_frame_counts
from .slots import ImageSlots


@dataclass
class _Morph:
    boundary: int
    ids: tuple[str, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    cached: int = 0
    settled: bool = False


class MorphBook:
    """Tracks every morph transition of one render (none unless the storyboard's transition is ``morph``)."""

    def __init__(self, storyboard: Storyboard, slots: ImageSlots) -> None:
        self._slots = slots
        self._morphs = {
            k: _Morph(k, tuple(inbetween_id(k, j) for j in range(1, count + 1)))
            for k, count in morph_frame_counts(storyboard).items()
        }
        self._by_id = {request_id: morph for morph in self._morphs.values() for request_id in morph.ids}
        self._keyframes: dict[int, tuple[str, str]] = {}  # scene index -> (source, reason)

    def __len__(self) -> int:
        return len(self._by_id)

    def keyframe(self, scene_index: int, source: str, reason: str = "") -> list[MorphReady]:
        """Scene ``scene_index``'s keyframe exists (``source``: ai, cache or placeholder)."""
        self._keyframes[scene_index] = (source, reason)
        near = (self._morphs.get(scene_index - 1), self._morphs.get(scene_index))
        return [event for morph in near if morph is not None for event in self._try_settle(morph)]

    def inbetween(self, request: ImageRequest, path: Path | None, source: str, reason: str = "") -> list[MorphReady]:
        """An in-between image exists at ``path`` (``source`` ai or cache), or failed (``path`` None) for ``reason``."""
        morph = self._by_id[request.id]
        if morph.settled:
            return []
        if path is None:
            frame = morph.ids.index(request.id) + 1
            return [self._settle(morph, f"in-between image {frame} of {len(morph.ids)} failed: {reason}")]
        morph.paths[request.id] = path
        morph.cached += source == "cache"
        return self._try_settle(morph)

    def settled(self, request: ImageRequest) -> bool:
        """True when ``request``'s morph no longer needs it (it fell back): do not make it."""
        morph = self._by_id.get(request.id)
        return morph is not None and morph.settled

    def fall_back_all(self, reason: str) -> list[MorphReady]:
        """Every morph becomes a crossfade for ``reason`` (the model does not run)."""
        return [self._settle(morph, reason) for morph in self._morphs.values() if not morph.settled]

    def _try_settle(self, morph: _Morph) -> list[MorphReady]:
        if morph.settled:
            return []
        for index in (morph.boundary, morph.boundary + 1):
            source, reason = self._keyframes.get(index, ("", ""))
            if source == "placeholder":
                return [self._settle(morph, f"scene {index + 1} is a placeholder ({reason.rstrip('.')})")]
        if len(self._keyframes.keys() & {morph.boundary, morph.boundary + 1}) < 2 or len(morph.paths) < len(morph.ids):
            return []
        return [self._settle(morph)]

    def _settle(self, morph: _Morph, failure: str = "") -> MorphReady:
        morph.settled = True
        for request_id in morph.ids:
            self._slots.put(request_id, None if failure else morph.paths[request_id])
        if failure:
            return MorphReady(morph.boundary, "crossfade", len(morph.ids), 0, failure)
        source = "cache" if morph.cached == len(morph.ids) else "ai"
        return MorphReady(morph.boundary, source, len(morph.ids), morph.cached)


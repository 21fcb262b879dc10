"""What fell back in a finished render, one entry per distinct reason (for the page and the CLI).

A model that failed to load gives every scene and every morph the same long reason; said once per
scene or transition it fills the screen. :func:`fallback_groups` gathers them: the scenes that got a
placeholder for one reason, and the morphs drawn as a crossfade for one reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .events import RenderReport


@dataclass(frozen=True)
class FallbackGroup:
    """``what`` fell back for ``reason``: scenes (``items`` are 0-based scene indices) that got a
    placeholder, or morphs (``items`` are 0-based boundaries: k is the morph from scene k+1 to k+2)
    drawn as a crossfade."""

    what: Literal["scene", "morph"]
    reason: str
    items: tuple[int, ...]

    def label(self) -> str:
        """``Scene 2``, ``Scenes 1–3, 5``, ``Morph 1→2``, ``Morphs 1→2, 3→4`` (numbered as people count)."""
        plural = len(self.items) > 1
        if self.what == "scene":
            return ("Scenes " if plural else "Scene ") + numbers_text([i + 1 for i in self.items])
        return ("Morphs " if plural else "Morph ") + ", ".join(f"{k + 1}→{k + 2}" for k in self.items)


def fallback_groups(report: RenderReport) -> list[FallbackGroup]:
    """The placeholder scenes by reason, then the morphs drawn as a crossfade by reason; each list
    in the order its first scene or transition comes in the video."""
    groups: list[FallbackGroup] = []
    for what, pairs in (("scene", [(s.index, s.reason) for s in report.fallbacks]),
                        ("morph", [(t.index, t.reason) for t in report.transitions if t.made == "crossfade"])):
        by_reason: dict[str, list[int]] = {}
        for index, reason in pairs:
            by_reason.setdefault(reason.strip().rstrip(".") or "no reason given", []).append(index)
        groups += [FallbackGroup(what, reason, tuple(items)) for reason, items in by_reason.items()]
    return groups


def numbers_text(numbers: list[int]) -> str:
    """``1–3, 5, 7–8``: sorted numbers with runs of three or more joined by a dash."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs)

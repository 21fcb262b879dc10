"""What fell back in a finished render, one entry per distinct reason (for the page and the CLI).

A model that failed to load gives every scene and every morph the same long reason; said once per
scene or transition it fills the screen. :func:`fallback_groups` gathers them: the scenes that got a
placeholder for one reason, the animated scenes shown as a still, the morphs and the generated
transitions drawn as a crossfade, each for one reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .events import RenderReport


What = Literal["scene", "still", "morph", "transition"]
_OUTCOMES: dict[str, str] = {
    "scene": "placeholder", "still": "a still, not a clip",
    "morph": "crossfade instead of the morph", "transition": "crossfade instead of the generated transition",
}


@dataclass(frozen=True)
class FallbackGroup:
    """``what`` fell back for ``reason``: scenes (``items`` are 0-based scene indices) that got a
    placeholder (``scene``) or were shown as a still instead of a clip (``still``), or morphs or
    generated transitions (``items`` are 0-based boundaries: k joins scene k+1 to k+2) drawn as a crossfade."""

    what: What
    reason: str
    items: tuple[int, ...]

    @property
    def outcome(self) -> str:
        """What the user got instead, e.g. ``placeholder`` or ``a still, not a clip``."""
        return _OUTCOMES[self.what]

    def label(self) -> str:
        """``Scene 2``, ``Scenes 1–3, 5``, ``Morph 1→2``, ``Transitions 1→2, 3→4`` (numbered as people count)."""
        if self.what in ("scene", "still"):
            return scenes_text([i + 1 for i in self.items])
        return boundaries_text("Morph" if self.what == "morph" else "Transition", list(self.items))


def fallback_groups(report: RenderReport) -> list[FallbackGroup]:
    """The placeholder scenes by reason, then the animated scenes shown as stills, the morphs and the
    generated transitions drawn as a crossfade, by reason; each list in the order of the video."""
    crossfades = [t for t in report.transitions if t.made == "crossfade"]
    groups: list[FallbackGroup] = []
    for what, pairs in (("scene", [(s.index, s.reason) for s in report.fallbacks]),
                        ("still", [(s.index, s.clip_reason) for s in report.scenes if s.clip_reason]),
                        ("morph", [(t.index, t.reason) for t in crossfades if t.kind != "generated"]),
                        ("transition", [(t.index, t.reason) for t in crossfades if t.kind == "generated"])):
        by_reason: dict[str, list[int]] = {}
        for index, reason in pairs:
            by_reason.setdefault(reason.strip().rstrip(".") or "no reason given", []).append(index)
        groups += [FallbackGroup(what, reason, tuple(items)) for reason, items in by_reason.items()]
    return groups


def scenes_text(numbers: list[int]) -> str:
    """``Scene 2`` or ``Scenes 1–3, 5``: scene numbers as people count them (from 1)."""
    return ("Scenes " if len(numbers) > 1 else "Scene ") + numbers_text(numbers)


def boundaries_text(noun: str, boundaries: list[int]) -> str:
    """``Transition 1→2`` or ``Transitions 1→2, 3→4``: 0-based boundaries (k joins scene k+1 to k+2)."""
    return noun + ("s " if len(boundaries) > 1 else " ") + ", ".join(f"{k + 1}→{k + 2}" for k in boundaries)


def numbers_text(numbers: list[int]) -> str:
    """``1–3, 5, 7–8``: sorted numbers with runs of three or more joined by a dash."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs)

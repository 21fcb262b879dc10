"""Scene durations fitted to a soundtrack: scaled to the audio's length, boundaries moved onto beats.

Pure functions on lists of seconds; the renderer applies them to the storyboard
before the timeline is planned, so transitions (centred on boundaries) end up
centred on the beats. Every scene stays within ``[low, high]`` seconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..contract.errors import StoryboardError

_OFF_BEAT = 1e6  # cost of leaving a boundary where it was (only when no beat fits the limits)
_EPS = 1e-9


@dataclass(frozen=True)
class Fitted:
    """Final scene lengths and the beats boundaries landed on (one per boundary moved, in order)."""

    durations: tuple[float, ...]
    beats_used: tuple[float, ...] = ()

    @property
    def starts(self) -> tuple[float, ...]:
        starts, elapsed = [], 0.0
        for duration in self.durations:
            starts.append(elapsed)
            elapsed += duration
        return tuple(starts)


def scale_to_total(durations: list[float], total: float, low: float, high: float) -> list[float]:
    """Durations scaled in proportion so they add up to ``total``, each kept in ``[low, high]``.

    Scenes that would leave the limits are pinned to them and the others share the
    rest in proportion. Raises StoryboardError when ``total`` cannot be reached.
    """
    count = len(durations)
    if not count * low - _EPS <= total <= count * high + _EPS:
        raise StoryboardError(
            f"Storyboard: fit 'audio' makes the video {total:g} seconds long, but {count} scene(s) "
            f"of {low:g} to {high:g} seconds can last only {count * low:g} to {count * high:g} seconds.")
    pinned: dict[int, float] = {}
    while True:
        free = [k for k in range(count) if k not in pinned]
        left = total - sum(pinned.values())
        weight = sum(durations[k] for k in free)
        scaled = {k: left * durations[k] / weight if weight > 0 else left / len(free) for k in free}
        out = {k: v for k, v in scaled.items() if not low <= v <= high}
        if not out:
            result = {**pinned, **scaled}
            return [min(high, max(low, result[k])) for k in range(count)]
        for k, value in out.items():
            pinned[k] = low if value < low else high


def snap_to_beats(durations: list[float], beats: list[float], low: float, high: float,
                  song_end: float | None = None) -> Fitted:
    """Move each cut between scenes to its nearest beat, keeping every scene in ``[low, high]``.

    The total stays the same. A cut moves at most half a beat interval (the gap between the beats
    around it), so only its nearest beat (or the two, when it sits half way) is a choice; among those
    the choice that moves the cuts least in all is taken (dynamic programming), and a cut stays where
    it was when no near beat keeps the limits. Cuts after ``song_end`` (where a shorter song stops;
    None: it lasts the whole video) stay where the scenes put them, and no cut moves past it. With
    one beat there is no interval: only a cut already on it counts as on the beat.
    """
    bounds = _cumulative(durations)
    total = bounds[-1]
    end = total if song_end is None else min(song_end, total)
    beats = sorted(b for b in beats if 0.0 <= b <= end + _EPS)
    if len(durations) < 2 or not beats:
        return Fitted(tuple(durations))
    candidates = [_candidates(bound, beats) if bound <= end + _EPS else [(bound, False, 0.0)]
                  for bound in bounds[1:-1]]
    chosen = _cheapest_path(candidates, total, low, high)
    if chosen is None:
        return Fitted(tuple(durations))
    points = [0.0, *(value for value, _ in chosen), total]
    new = [min(high, max(low, b - a)) for a, b in zip(points, points[1:])]
    return Fitted(tuple(new), tuple(value for value, on_beat in chosen if on_beat))


def _cumulative(durations: list[float]) -> list[float]:
    bounds, elapsed = [0.0], 0.0
    for duration in durations:
        elapsed += duration
        bounds.append(elapsed)
    return bounds


def _candidates(bound: float, beats: list[float]) -> list[tuple[float, bool, float]]:
    """(time, on a beat, cost) for one cut: the beats within half a beat interval of it, and staying put."""
    i = min(max(bisect.bisect_left(beats, bound), 1), len(beats) - 1)
    half = (beats[i] - beats[i - 1]) / 2 if len(beats) > 1 else 0.0
    near = {b for b in (beats[i - 1], beats[i]) if abs(b - bound) <= half + _EPS and b > _EPS}
    return [(b, True, abs(b - bound)) for b in sorted(near)] + [(bound, False, _OFF_BEAT)]


def _cheapest_path(candidates: list[list[tuple[float, bool, float]]], total: float, low: float, high: float):
    """One candidate per boundary, every gap (and the ends) in ``[low, high]``, least total cost; or None."""
    def fits(a: float, b: float) -> bool:
        return low - _EPS <= b - a <= high + _EPS

    # paths[j]: (cost, choices) of the cheapest valid path ending at candidate j of the current boundary
    paths = [(cost, [(value, on_beat)]) if fits(0.0, value) else None for value, on_beat, cost in candidates[0]]
    for before, layer in zip(candidates, candidates[1:]):
        new = []
        for value, on_beat, cost in layer:
            options = [path for path, (prev, _, _) in zip(paths, before) if path is not None and fits(prev, value)]
            best = min(options, key=lambda path: path[0], default=None)
            new.append(None if best is None else (best[0] + cost, [*best[1], (value, on_beat)]))
        paths = new
    finals = [path for path, (value, _, _) in zip(paths, candidates[-1]) if path is not None and fits(value, total)]
    return min(finals, key=lambda path: path[0])[1] if finals else None

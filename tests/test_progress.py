"""The time left after 20% of a render, against the real remaining time, for placeholder, AI (a stand-in
model with a fixed step time) and cached renders.

The target is ±30%. On the shared 2-core CI machine the same render takes 2.2 s one run and 4.0 s the
next, so this checks a looser bound that holds there (most estimates within ±50%); bench numbers on a
quiet machine belong in bench/RESULTS.md.
"""

import time

import pytest

from pipeline import Done, Progress, Renderer, parse_storyboard
from pipeline.images.cache import KeyframeCache
from stand_in_model import FixedStepModel

TOLERANCE = 0.50
SLACK_S = 0.3  # timer and thread-switch noise, added to the tolerance
WITHIN_SHARE = 0.7  # of the estimates after 20%: the CI machine is shared, one stall can throw a few off


def board(scenes: int, seconds: float, steps: int | None = None, use_ai: bool = True):
    data = {"scenes": [{"prompt": f"timed scene {i}", "duration": seconds, "seed": i, "motion": "zoom_in"}
                       for i in range(scenes)], "quality": "draft", "fps": 24, "use_ai": use_ai}
    if steps:
        data["steps"] = steps
    return parse_storyboard(data)


def estimates(renderer: Renderer, storyboard) -> tuple[list[tuple[float, float | None, float]], float]:
    """(seconds since start, estimated seconds left, bar fraction) per Progress, and the render's length."""
    started, seen = time.monotonic(), []
    for event in renderer.render(storyboard):
        if isinstance(event, Progress):
            seen.append((time.monotonic() - started, event.eta_seconds, event.fraction))
        assert not isinstance(event, Done) or event.report.frames > 0
    return seen, time.monotonic() - started


def assert_time_left_is_honest(seen, total):
    checked, off = 0, []
    for at, eta, _ in seen:
        left = total - at
        if at < 0.2 * total or left < 0.5:
            continue
        checked += 1
        if eta is None or abs(eta - left) > TOLERANCE * left + SLACK_S:
            off.append(f"at {at:.1f} s of {total:.1f} s: said {eta} s left, really {left:.1f} s")
    assert checked >= 3, f"only {checked} estimates after 20% of the work: {seen}"
    assert len(off) <= (1 - WITHIN_SHARE) * checked, f"{len(off)} of {checked} estimates off by > 50%: {off}"
    fractions = [fraction for _, _, fraction in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.slow
def test_placeholder_render_time_left(tmp_path):
    seen, total = estimates(Renderer(tmp_path / "out"), board(4, 3, use_ai=False))  # 288 frames
    assert_time_left_is_honest(seen, total)


@pytest.mark.slow
def test_ai_then_cached_render_time_left(tmp_path):
    cache = KeyframeCache(tmp_path / "cache", max_bytes=50 * 1024 * 1024)
    renderer = Renderer(tmp_path / "out", model=FixedStepModel(step_s=0.25), cache=cache, batch_size=1)
    storyboard = board(4, 1.5, steps=4)  # 16 steps of 0.25 s, then the last scene's frames
    seen, total = estimates(renderer, storyboard)
    assert total >= 4.0
    assert_time_left_is_honest(seen, total)
    seen, total = estimates(renderer, storyboard)  # every keyframe from the cache now: frames only
    assert_time_left_is_honest(seen, total)

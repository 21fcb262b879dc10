"""pipeline.video.timeline: frame counts, transition placement, motion, lazy keyframe loading."""

from __future__ import annotations

import dataclasses
import weakref
from typing import Callable

import numpy as np
import pytest

from pipeline.contract.storyboard import Storyboard, parse_storyboard
from pipeline.video.timeline import TimelinePlan, apply_motion, compose_frames, plan_timeline

H, W = 54, 96


def _board(durations: list[float], transition: str = "crossfade", seconds: float = 0.5, fps: int = 24,
           motions: list[str] | None = None) -> Storyboard:
    motions = motions or ["none"] * len(durations)
    scenes = [{"prompt": f"scene {i}", "duration": d, "motion": m} for i, (d, m) in enumerate(zip(durations, motions))]
    return parse_storyboard({"scenes": scenes, "transition": transition, "transition_duration": seconds,
                             "fps": fps, "quality": "draft"})


def _small(plan: TimelinePlan) -> TimelinePlan:
    """The same timing at a test-friendly frame size."""
    return dataclasses.replace(plan, width=W, height=H)


def _flat_loader(values: list[int] | None = None) -> Callable[[int], np.ndarray]:
    return lambda i: np.full((H, W, 3), values[i] if values else 20 + 40 * i, np.uint8)


def _render(board: Storyboard, loader: Callable[[int], np.ndarray] | None = None) -> list[np.ndarray]:
    plan = _small(plan_timeline(board))
    return [frame.copy() for frame in compose_frames(board, plan, loader or _flat_loader())]


# --- frame counts -------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [24, 25, 30])
@pytest.mark.parametrize("durations", [[1.3, 2.7], [1.3, 2.7, 0.9, 3.1], [0.7, 0.7, 0.7]])
def test_scenes_tile_the_video_exactly(durations: list[float], fps: int) -> None:
    board = _board(durations, fps=fps)
    plan = plan_timeline(board)
    assert plan.total_frames == round(sum(durations) * fps)
    assert abs(plan.duration - sum(durations)) <= 1 / fps
    assert plan.scenes[0].start == 0 and plan.scenes[-1].end == plan.total_frames
    elapsed = 0.0
    for scene, duration in zip(plan.scenes, durations):
        assert scene.start == round(elapsed * fps)
        elapsed += duration
        assert scene.end == round(elapsed * fps)


def test_odd_durations_at_24_fps() -> None:
    plan = plan_timeline(_board([1.3, 2.7]))
    assert plan.total_frames == 96
    assert [(s.start, s.end) for s in plan.scenes] == [(0, 31), (31, 96)]


def test_transition_is_centred_and_adds_no_time() -> None:
    plan = plan_timeline(_board([2.0, 3.0], seconds=0.5))
    span = plan.transitions[0]
    assert span.frames == 12 and (span.start, span.end) == (48 - 6, 48 + 6)
    assert plan.total_frames == 120


def test_scene_shorter_than_transition_shortens_it() -> None:
    plan = plan_timeline(_board([3.0, 0.5, 3.0], seconds=2.0))
    assert [span.frames for span in plan.transitions] == [12, 12]  # 0.5 s at 24 fps, not 2 s
    short = plan.scenes[1]
    assert short.hold_start == short.hold_end  # wholly inside its two transitions
    assert plan.transitions[0].end <= plan.transitions[1].start


@pytest.mark.parametrize("transition, seconds", [("cut", 0.5), ("crossfade", 0.04), ("wipe", 0.0)])
def test_cut_or_tiny_transition_is_a_hard_cut(transition: str, seconds: float) -> None:
    board = _board([1.3, 2.7], transition=transition, seconds=seconds)
    plan = plan_timeline(board)
    assert plan.transitions[0].kind == "cut" and plan.transitions[0].frames == 0
    frames = _render(board)
    assert len(frames) == 96
    assert all(np.all(f == 20) for f in frames[:31]) and all(np.all(f == 60) for f in frames[31:])


def test_one_scene() -> None:
    board = _board([2.3])
    plan = plan_timeline(board)
    assert plan.transitions == () and plan.total_frames == round(2.3 * 24)
    frames = _render(board)
    assert len(frames) == plan.total_frames and all(np.all(f == 20) for f in frames)


def test_scene_rounded_to_zero_frames_is_skipped_and_never_loaded() -> None:
    # parse_storyboard refuses a scene without a frame at the door; the timeline still copes with one.
    valid = _board([1.0, 1.0, 1.0], fps=1)
    board = dataclasses.replace(valid, scenes=tuple(dataclasses.replace(scene, duration=d)
                                                    for scene, d in zip(valid.scenes, [0.5, 0.5, 1.0])))
    # bounds round to 0, 0 (banker's), 1, 2
    plan = plan_timeline(board)
    assert [(s.start, s.end) for s in plan.scenes] == [(0, 0), (0, 1), (1, 2)]
    loaded: list[int] = []
    frames = list(compose_frames(board, _small(plan), lambda i: loaded.append(i) or _flat_loader()(i)))
    assert len(frames) == 2 and loaded == [1, 2]
    assert [plan.stage_at(j).scene for j in range(2)] == [1, 2]


# --- composed frames ------------------------------------------------------------------------------

def test_yields_total_frames_at_the_preset_size() -> None:
    board = _board([0.5, 0.6], motions=["zoom_in", "none"])
    plan = plan_timeline(board)
    loader = lambda i: np.full((480, 854, 3), 100, np.uint8)  # noqa: E731
    count = 0
    for frame in compose_frames(board, plan, loader):
        assert frame.shape == (480, 854, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
        count += 1
    assert count == plan.total_frames == round(1.1 * 24)


def test_wrong_size_keyframes_are_fitted() -> None:
    board = _board([0.5])
    plan = _small(plan_timeline(board))
    frames = list(compose_frames(board, plan, lambda i: np.full((64, 64, 3), 7, np.uint8)))
    assert all(f.shape == (H, W, 3) and np.all(f == 7) for f in frames)


@pytest.mark.parametrize("kind", ["crossfade", "fade", "wipe", "slide"])
def test_transition_frames_run_from_outgoing_to_incoming(kind: str) -> None:
    board = _board([1.3, 2.7], transition=kind, seconds=0.5)
    plan = plan_timeline(board)
    span = plan.transitions[0]
    frames = _render(board)
    window = frames[span.start:span.end]
    assert np.all(window[0] == 20) and np.all(window[-1] == 60)
    assert np.all(frames[span.start - 1] == 20) and np.all(frames[span.end] == 60)
    if kind != "fade":
        distance = [float(np.abs(f.astype(int) - 20).mean()) for f in window]
        assert distance == sorted(distance)


def test_stage_at_agrees_with_the_frames() -> None:
    board = _board([1.3, 0.6, 2.7])
    plan = plan_timeline(board)
    frames = _render(board)
    for j, frame in enumerate(frames):
        stage = plan.stage_at(j)
        if stage.transition is None:
            assert np.all(frame == 20 + 40 * stage.scene)
        else:
            assert stage.transition.start <= j < stage.transition.end and 0.0 <= stage.t <= 1.0
    with pytest.raises(IndexError):
        plan.stage_at(plan.total_frames)


def test_still_scenes_reuse_one_array() -> None:
    board = _board([1.0])
    plan = _small(plan_timeline(board))
    frames = iter(compose_frames(board, plan, _flat_loader()))
    first, second = next(frames), next(frames)
    assert first is second and not first.flags.writeable


def test_keyframes_are_loaded_lazily_and_at_most_two_are_alive() -> None:
    board = _board([1.0, 0.6, 1.3, 0.5, 2.0], motions=["zoom_in", "none", "pan_left", "none", "zoom_out"])
    plan = _small(plan_timeline(board))
    alive: set[int] = set()
    loaded_at: dict[int, int] = {}
    yielded = 0

    def loader(index: int) -> np.ndarray:
        loaded_at[index] = yielded
        keyframe = np.full((H, W, 3), 10 * index, np.uint8)
        alive.add(index)
        weakref.finalize(keyframe, alive.discard, index)
        assert len(alive) <= 2, f"{sorted(alive)} keyframes alive while loading scene {index}"
        return keyframe

    frames = compose_frames(board, plan, loader)
    for yielded in range(plan.total_frames):
        frame = next(frames)
        assert len(alive) <= 2
        del frame  # the test itself must not keep an old scene alive
    with pytest.raises(StopIteration):
        next(frames)
    assert list(loaded_at) == [0, 1, 2, 3, 4]  # each once, in order
    assert loaded_at == {scene.index: scene.visible_start for scene in plan.scenes}  # not before it is needed


# --- motion ---------------------------------------------------------------------------------------

def _ramp() -> np.ndarray:
    """Brightness rising left to right."""
    row = np.linspace(0, 255, W).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (H, W, 3)))


def _spot() -> np.ndarray:
    """Bright in the middle, dark at the edges."""
    ys, xs = np.mgrid[0:H, 0:W]
    radius = np.hypot((xs - (W - 1) / 2) / W, (ys - (H - 1) / 2) / H)
    value = np.clip(255 * (1 - 1.6 * radius), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(value[:, :, None], 3, axis=2))


@pytest.mark.parametrize("motion, image, direction", [
    ("zoom_in", _spot, +1), ("zoom_out", _spot, -1), ("pan_right", _ramp, +1), ("pan_left", _ramp, -1),
])
def test_motion_changes_monotonically(motion: str, image: Callable[[], np.ndarray], direction: int) -> None:
    board = _board([2.0], motions=[motion])
    keyframe = image()
    frames = _render(board, lambda i: keyframe)
    means = [direction * float(f.mean()) for f in frames]
    assert means == sorted(means) and means[0] < means[-1]


@pytest.mark.parametrize("motion", ["zoom_in", "zoom_out", "pan_left", "pan_right"])
def test_motion_never_shows_outside_the_keyframe(motion: str) -> None:
    # A black border would show up as a value below 90 somewhere.
    frames = _render(_board([1.5, 1.0], motions=[motion, motion]), _flat_loader([90, 90]))
    assert all(f.shape == (H, W, 3) and f.min() == 90 and f.max() == 90 for f in frames)


def test_zoom_in_starts_on_the_keyframe_and_spans_the_transitions() -> None:
    keyframe = _spot()
    board = _board([1.0, 1.0], motions=["none", "zoom_in"])
    plan = plan_timeline(board)
    scene = plan.scenes[1]
    assert scene.visible_start == plan.transitions[0].start < scene.start
    assert np.array_equal(apply_motion(keyframe, "zoom_in", 0.0), keyframe)
    frames = _render(board, lambda i: keyframe)
    assert np.array_equal(frames[-1], apply_motion(keyframe, "zoom_in", 1.0))


def test_unknown_motion_is_rejected() -> None:
    with pytest.raises(ValueError):
        apply_motion(_ramp(), "spin", 0.5)

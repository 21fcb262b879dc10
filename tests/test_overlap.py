"""The video starts while later scenes are still being made: composing and encoding overlap the keyframes."""

from __future__ import annotations

import threading
import time

import psutil
from PIL import Image

from media import probe
from pipeline import Done, Failed, KeyframeReady, Preview, Progress, Renderer, Segment, parse_storyboard
from pipeline.images.generation import GeneratedImage
from stand_in_model import StandInModel


class SlowLaterScenes(StandInModel):
    """Scenes 0 and 1 come at once; each later scene takes ``seconds``, reporting a step every 50 ms."""

    model_id = "slow-later-scenes"
    size = (64, 36)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def generate(self, requests, on_step=None, should_stop=None):
        if requests[0].scene_index >= 2:
            steps = round(self.seconds / 0.05)
            for step in range(1, steps + 1):
                if should_stop and should_stop():
                    return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
                time.sleep(0.05)
                if on_step:
                    on_step([r.scene_index for r in requests], step, steps, [Image.new("RGB", (8, 8))])
        return [GeneratedImage(r.scene_index, Image.new("RGB", (r.width, r.height), (40 * r.scene_index, 90, 160)))
                for r in requests]


def board(scenes: int = 4):
    return parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 3, "seed": i} for i in range(scenes)],
                             "quality": "draft", "fps": 8, "transition": "crossfade", "transition_duration": 0.5})


def test_segments_stream_before_the_last_keyframe_exists(tmp_path):
    renderer = Renderer(tmp_path / "out", model=SlowLaterScenes(seconds=2.0), batch_size=1, segment_seconds=0.5)
    events = list(renderer.render(board()))
    assert isinstance(events[-1], Done), events[-1]
    kinds = [type(event) for event in events]
    last_keyframe = max(i for i, kind in enumerate(kinds) if kind is KeyframeReady)
    first_segment = kinds.index(Segment)
    assert first_segment < last_keyframe, "the video only started after every keyframe was made"
    assert Preview in kinds[first_segment:last_keyframe]  # it streamed while scenes were being denoised
    # One bar for both stages: it never goes back, names the scene being made until all exist, ends full.
    progress = [event for event in events if isinstance(event, Progress)]
    assert all(a.fraction <= b.fraction for a, b in zip(progress, progress[1:])) and progress[-1].fraction == 1
    overlapping = [event for event in events[first_segment:last_keyframe] if isinstance(event, Progress)]
    assert overlapping and all(event.stage == "keyframes" and "scene" in event.message for event in overlapping)
    # Overlapping changes when frames are made, not which: every frame is there once.
    segments = [event for event in events if isinstance(event, Segment)]
    assert [s.first_frame for s in segments] == list(range(0, 96, 4))
    info = probe(events[-1].video_path)
    assert info.frames == 96 == events[-1].report.frames and abs(info.duration - 12) <= 1 / 8


def test_stopping_while_both_stages_run_ends_both(tmp_path):
    cancel = threading.Event()
    renderer = Renderer(tmp_path / "out", model=SlowLaterScenes(seconds=30.0), batch_size=1, segment_seconds=0.5)
    events = renderer.render(board(), cancel)
    for event in events:
        if isinstance(event, Segment):
            break
    started = time.monotonic()
    cancel.set()
    rest = list(events)
    assert time.monotonic() - started < 2.0
    assert isinstance(rest[-1], Failed) and rest[-1].cancelled
    assert not [c for c in psutil.Process().children(recursive=True) if c.is_running() and c.status() != "zombie"]
    assert not [t for t in threading.enumerate() if t.name in ("scene2video-encode", "scene2video-generate")]
    assert list((tmp_path / "out").iterdir()) == []


class ThreeSecondsPerImage(StandInModel):
    """Takes 3 s per image and sends no step previews: nothing but its own events wakes the caller."""

    model_id = "three-seconds-per-image"
    size = (64, 36)

    def generate(self, requests, on_step=None, should_stop=None):
        results = []
        for request in requests:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if should_stop and should_stop():
                    return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
                time.sleep(0.02)
            results.append(GeneratedImage(request.scene_index, Image.new("RGB", self.size, (90, 90, 160))))
        return results


def test_a_segment_reaches_the_caller_within_a_second_of_being_written(tmp_path):
    renderer = Renderer(tmp_path / "out", model=ThreeSecondsPerImage(), batch_size=1, segment_seconds=0.5)
    arrivals = []
    for event in renderer.render(board(3)):
        arrivals.append((time.time(), event))
        if isinstance(event, Segment) and len([e for _, e in arrivals if isinstance(e, Segment)]) == 1:
            written = event.path.stat().st_mtime
            first_segment_delay = time.time() - written
    assert isinstance(arrivals[-1][1], Done)
    assert first_segment_delay < 1.0
    first_segment = next(at for at, event in arrivals if isinstance(event, Segment))
    second_keyframe = next(at for at, event in arrivals if isinstance(event, KeyframeReady) and event.scene_index == 1)
    assert first_segment < second_keyframe - 1.0, "the video waited for the next keyframe"


def test_a_full_queue_keeps_the_newest_preview_and_progress_for_when_the_caller_catches_up():
    from pipeline.event_stream import EventStream

    stream = EventStream(threading.Event(), capacity=2)

    def producer():
        yield Segment(0, tmp_segment, 0, 1)
        yield Segment(1, tmp_segment, 1, 1)  # the queue is full now
        for step in (1, 2, 3):
            stream.put(Preview(0, step, 3, Image.new("RGB", (4, 4))), droppable=True)
            stream.put(Progress("keyframes", step / 10, f"step {step}"), droppable=True)

    tmp_segment = None
    stream.run("test", producer())
    time.sleep(0.3)  # the producer has put everything and ended while nobody drained
    events = list(stream.drain())
    stream.close()
    assert [type(e).__name__ for e in events[:2]] == ["Segment", "Segment"]
    late = events[2:]
    assert [e.step for e in late if isinstance(e, Preview)] == [3]
    assert [e.fraction for e in late if isinstance(e, Progress)] == [0.3]


class SlowToClose:
    """One event, then a close() that takes a while: the producer's thread outlives its last event."""

    def __init__(self) -> None:
        self.events = iter([Progress("keyframes", 1.0, "done")])

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.events)

    def close(self) -> None:
        time.sleep(0.3)


def test_closing_after_every_producer_ended_is_not_a_cancel():
    from pipeline.event_stream import EventStream

    cancel = threading.Event()
    stream = EventStream(cancel)
    stream.run("quick", SlowToClose())
    assert len(list(stream.drain())) == 1
    stream.close()
    assert not cancel.is_set()

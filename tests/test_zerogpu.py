"""pipeline.images.zerogpu: renders under a stand-in ``spaces`` package, and the duration estimate."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PIL import Image

from pipeline import Done, KeyframeReady, Preview, Renderer, parse_storyboard
from pipeline.images import zerogpu
from pipeline.images.generation import GeneratedImage
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.zerogpu import estimate_gpu_seconds, gpu_task, zerogpu_available, zerogpu_stream
from stand_in_model import StandInModel

ROOT = Path(__file__).resolve().parents[1]

# The stand-in ``spaces`` package (pickles what crosses to the GPU worker, as the real one does).
STAND_IN = Path(__file__).resolve().parent / "zerogpu_stand_in"


@pytest.fixture
def fake_spaces(monkeypatch):
    """``import spaces`` gives the stand-in, as on a ZeroGPU Space (``SPACES_ZERO_GPU=true``)."""
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.syspath_prepend(str(STAND_IN))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.invalidate_caches()
    import spaces

    yield spaces
    sys.modules.pop("spaces", None)


@pytest.fixture
def no_spaces(monkeypatch):
    # None in sys.modules makes ``import spaces`` raise ImportError, even if it is installed.
    monkeypatch.setitem(sys.modules, "spaces", None)


def _generate(n_scenes: int, steps: int, width: int = 512, height: int = 512) -> str:
    return f"{n_scenes} scenes, {steps} steps at {width}x{height}"


def _duration(n_scenes: int, steps: int, width: int = 512, height: int = 512) -> int:
    return estimate_gpu_seconds(n_scenes, steps, width, height)


def test_gpu_task_decorates_when_spaces_importable(fake_spaces):
    task = gpu_task(_generate, duration=_duration)
    assert task is not _generate
    assert task.zerogpu_duration is _duration
    assert task(3, 2) == "3 scenes, 2 steps at 512x512"
    assert task(50, 4, width=1920, height=1080) == "50 scenes, 4 steps at 1920x1080"

    # The duration callable got the same arguments as the function, positional and keyword.
    assert fake_spaces.calls == [_duration(3, 2), _duration(50, 4, width=1920, height=1080)]
    assert fake_spaces.calls[0] < fake_spaces.calls[1]


def test_stand_in_refuses_what_cannot_reach_a_gpu_worker(fake_spaces):
    # What the first ZeroGPU version passed: a callback closure and a threading.Event method.
    task = gpu_task(lambda batch, on_step=None, should_stop=None: batch, duration=15)
    with pytest.raises(Exception, match="pickle"):
        task([1], on_step=lambda *a: None, should_stop=threading.Event().is_set)


def test_gpu_task_returns_function_unchanged_without_spaces(no_spaces):
    assert gpu_task(_generate, duration=_duration) is _generate
    assert _generate(1, 1) == "1 scenes, 1 steps at 512x512"


def test_zerogpu_available_needs_package_and_env(fake_spaces, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu_available() is False
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu_available() is True
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    assert zerogpu_available() is False


def test_zerogpu_unavailable_without_package(no_spaces, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu_available() is False


def test_estimate_grows_with_scenes_steps_and_size():
    base = estimate_gpu_seconds(20, 2, 1280, 720, cap=10_000)
    assert estimate_gpu_seconds(40, 2, 1280, 720, cap=10_000) > base
    assert estimate_gpu_seconds(20, 4, 1280, 720, cap=10_000) > base
    assert estimate_gpu_seconds(20, 2, 1920, 1080, cap=10_000) > base
    assert isinstance(base, int)


def test_estimate_has_a_floor_and_a_cap():
    floor = estimate_gpu_seconds(1, 1, 512, 512)
    assert floor == zerogpu.MIN_SECONDS
    assert estimate_gpu_seconds(0, 0, 0, 0) == zerogpu.MIN_SECONDS
    assert estimate_gpu_seconds(100, 4, 1920, 1080) == 120
    assert estimate_gpu_seconds(100, 4, 1920, 1080, cap=60) == 60
    assert estimate_gpu_seconds(10_000, 100, 1920, 1080, cap=300) == 300


def test_estimate_rejects_nonsense():
    with pytest.raises(ValueError):
        estimate_gpu_seconds(-1, 1, 512, 512)
    with pytest.raises(ValueError):
        estimate_gpu_seconds(1, 1, 512, 512, cap=0)


def test_module_import_does_not_import_torch_or_gradio():
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("zerogpu_probe", {str(ROOT / "pipeline" / "images" / "zerogpu.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        heavy = sorted(name for name in ("torch", "gradio", "spaces") if name in sys.modules)
        print(",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


# --------------------------------------------------------------------------- renders on ZeroGPU


def _board(n_scenes: int, steps: int = 2):
    scenes = [{"prompt": f"scene {i}", "duration": 0.5, "seed": i} for i in range(n_scenes)]
    return parse_storyboard({"scenes": scenes, "quality": "draft", "fps": 8, "transition": "cut", "steps": steps})


def _render_as_visitor(spaces, renderer: Renderer, board, cancel: threading.Event | None = None,
                       stop_at_step: int | None = None) -> list:
    """Render in this thread with a Gradio request set, as a Gradio handler would."""
    token = spaces.request.set("visitor")
    events = []
    try:
        for event in renderer.render(board, cancel):
            events.append(event)
            if stop_at_step is not None and isinstance(event, Preview) and event.step == stop_at_step:
                cancel.set()
    finally:
        spaces.request.reset(token)
    return events


def test_render_on_zerogpu_gets_ai_keyframes(fake_spaces, tiny_model_dir, tmp_path):
    model = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    renderer = Renderer(tmp_path / "out", model=model, batch_size=2)
    events = _render_as_visitor(fake_spaces, renderer, _board(3))
    done = events[-1]
    assert isinstance(done, Done), done
    assert [(s.source, s.reason) for s in done.report.scenes] == [("ai", "")] * 3
    # Step previews still stream, one per denoising step and scene batch.
    assert [e.step for e in events if isinstance(e, Preview)] == [1, 2, 1, 2]
    # One GPU task per batch (the first scene alone, then two), each sized for its batch and
    # asked for in the request's own thread, so ZeroGPU charges the visitor's quota.
    assert fake_spaces.calls == [estimate_gpu_seconds(1, 2, 88, 48), estimate_gpu_seconds(2, 2, 88, 48)]
    assert fake_spaces.requests == ["visitor", "visitor"]


class SlowModel(StandInModel):
    """Takes 1000 steps of 5 ms unless told to stop; remembers the step it stopped at."""

    model_id = "slow-model"

    def __init__(self):
        self.stopped_at: int | None = None

    def generate(self, requests, on_step=None, should_stop=None):
        for step in range(1, 1001):
            if should_stop():
                self.stopped_at = step
                return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
            on_step([requests[0].scene_index], step, 1000, [Image.new("RGB", (8, 8))])
            threading.Event().wait(0.005)
        return [GeneratedImage(r.scene_index, Image.new("RGB", (64, 40))) for r in requests]


def test_stop_on_zerogpu_ends_the_gpu_task_within_a_step_or_two(fake_spaces, tmp_path):
    model = SlowModel()
    renderer = Renderer(tmp_path / "out", model=model)
    events = _render_as_visitor(fake_spaces, renderer, _board(1), threading.Event(), stop_at_step=3)
    assert events[-1].cancelled
    assert max(e.step for e in events if isinstance(e, Preview)) == 3
    # The GPU side saw the stop and the model ended before the render did: no GPU work outlives it.
    assert model.stopped_at is not None and model.stopped_at < 100


def test_a_failed_gpu_task_gives_placeholders_with_the_reason(fake_spaces, monkeypatch, tmp_path):
    def over_quota(duration, args, kwargs):
        raise RuntimeError("You have exceeded your GPU quota")

    monkeypatch.setattr(fake_spaces, "_schedule", over_quota)
    renderer = Renderer(tmp_path / "out", model=SlowModel(), batch_size=2)
    events = _render_as_visitor(fake_spaces, renderer, _board(2))
    assert [(e.source, e.reason) for e in events if isinstance(e, KeyframeReady)] == [
        ("placeholder", "generation failed: RuntimeError: You have exceeded your GPU quota")] * 2
    assert isinstance(events[-1], Done)


def test_off_zerogpu_the_model_runs_in_process(fake_spaces, monkeypatch, tmp_path):
    # ``spaces`` installed but not on ZeroGPU (a local run, a GPU Space): nothing is wrapped,
    # and the model polls the render's own stop flag (tests/test_images.py covers that path).
    monkeypatch.delenv("SPACES_ZERO_GPU")
    assert zerogpu_stream(lambda arg, stop: iter(()), duration=lambda arg: 15) is None
    assert Renderer(tmp_path / "out", model=SlowModel()).images._on_zerogpu is None


def test_each_clip_borrows_the_gpu_for_its_estimated_time(fake_spaces, tmp_path):
    from stand_in_video_model import SlidingClipModel

    from pipeline.contract.events import ClipReady
    from pipeline.images.zerogpu import estimate_clip_gpu_seconds

    renderer = Renderer(tmp_path / "out", model=TexturedStandIn(), video_model=SlidingClipModel())
    board = parse_storyboard({"scenes": [{"prompt": "a", "duration": 0.5, "seed": 1, "animate": True}],
                              "quality": "draft", "fps": 8, "steps": 1})
    events = _render_as_visitor(fake_spaces, renderer, board)
    assert isinstance(events[-1], Done), events[-1]
    clip = [e for e in events if isinstance(e, ClipReady)]
    assert [(e.id, e.source) for e in clip] == [("clip-1", "ai")] and events[-1].report.scenes[0].frames == "clip"
    assert [p.step for p in events if isinstance(p, Preview) and p.what.startswith("clip")] == [1, 2, 3]
    # The keyframe's GPU task, then the clip's, sized for its steps, frames and size.
    assert fake_spaces.calls[-1] == estimate_clip_gpu_seconds(clip[0].frames, 160, 96, 3, max_frames=257)
    assert fake_spaces.requests[-1] == "visitor"


class TexturedStandIn(StandInModel):
    model_id = "textured-stand-in"

    def generate(self, requests, on_step=None, should_stop=None):
        import numpy as np

        rng = np.random.default_rng(requests[0].seed)
        return [GeneratedImage(r.scene_index, Image.fromarray(rng.integers(0, 256, (r.height, r.width, 3),
                                                                           dtype=np.uint8))) for r in requests]



def test_restyled_shots_borrow_the_gpu_as_keyframes_do(fake_spaces, tmp_path):
    from source_clips import make_clip

    clip = make_clip(tmp_path / "shot.mp4", (1.0,), audio=False)
    renderer = Renderer(tmp_path / "out", model=TexturedStandIn())
    board = parse_storyboard({"source_video": str(clip), "quality": "draft", "fps": 8, "steps": 1,
                              "keyframe_interval": 4, "transition": "cut",
                              "scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1}]})
    events = _render_as_visitor(fake_spaces, renderer, board)
    assert isinstance(events[-1], Done), events[-1]
    scene = events[-1].report.scenes[0]
    assert scene.source == "ai", scene  # redrawn by the model, not shown as its source frames
    # Every redrawn keyframe (frames 0, 4 and the last, 7) was one GPU task, on the visitor's quota.
    assert len(fake_spaces.calls) == 3 and set(fake_spaces.requests) == {"visitor"}

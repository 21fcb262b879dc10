"""The image stage with a counting stand-in model: cache hits, re-rendering only what changed, fallbacks."""

import threading

from PIL import Image

from pipeline import KeyframeReady, Renderer, parse_storyboard
from pipeline.images.cache import KeyframeCache
from pipeline.images.generation import GeneratedImage
from stand_in_model import StandInModel


class CountingModel(StandInModel):
    """Draws a flat colour per seed and counts which prompts it was asked for."""

    model_id = "counting-model"

    def __init__(self, fail_prompt: str | None = None):
        self.calls: list[str] = []
        self.fail_prompt = fail_prompt

    def generate(self, requests, on_step=None, should_stop=None):
        self.calls += [r.prompt for r in requests]
        out = []
        for r in requests:
            if r.prompt == self.fail_prompt:
                out.append(GeneratedImage(r.scene_index, None, "generation failed: RuntimeError: boom"))
            else:
                out.append(GeneratedImage(r.scene_index, Image.new("RGB", (r.width, r.height), (r.seed % 256, 80, 160))))
        return out


def board(prompts):
    return parse_storyboard({"scenes": [{"prompt": p, "duration": 0.5, "seed": i} for i, p in enumerate(prompts)],
                             "quality": "draft", "fps": 8, "transition": "cut"})


def sources(events):
    return [(e.scene_index, e.source) for e in events if isinstance(e, KeyframeReady)]


def test_editing_one_scene_regenerates_only_that_scene(tmp_path):
    model = CountingModel()
    renderer = Renderer(tmp_path / "out", model=model, cache=KeyframeCache(tmp_path / "cache"))
    first = list(renderer.render(board(["a", "b", "c"])))
    assert model.calls == ["a", "b", "c"] and first[-1].report.scenes[1].source == "ai"
    model.calls.clear()
    second = list(renderer.render(board(["a", "B", "c"])))
    assert model.calls == ["B"]
    assert [s.source for s in second[-1].report.scenes] == ["cache", "ai", "cache"]


def test_corrupted_cache_entry_is_regenerated(tmp_path):
    model = CountingModel()
    renderer = Renderer(tmp_path / "out", model=model, cache=KeyframeCache(tmp_path / "cache"))
    list(renderer.render(board(["a", "b"])))
    for path in (tmp_path / "cache").rglob("*.png"):
        path.write_bytes(path.read_bytes()[:100])  # a torn write from a killed process
    model.calls.clear()
    done = list(renderer.render(board(["a", "b"])))[-1]
    assert model.calls == ["a", "b"] and [s.source for s in done.report.scenes] == ["ai", "ai"]


def test_failed_scene_gets_a_placeholder_that_is_never_cached(tmp_path):
    model = CountingModel(fail_prompt="b")
    cache = KeyframeCache(tmp_path / "cache")
    renderer = Renderer(tmp_path / "out", model=model, cache=cache)
    done = list(renderer.render(board(["a", "b"])))[-1]
    assert [(s.source, s.reason) for s in done.report.scenes] == [
        ("ai", ""), ("placeholder", "generation failed: RuntimeError: boom")]
    assert cache.stats()[0] == 1
    model.calls.clear()
    list(renderer.render(board(["a", "b"])))
    assert model.calls == ["b"]  # the placeholder was not served from the cache


def test_use_ai_false_never_calls_the_model(tmp_path):
    model = CountingModel()
    renderer = Renderer(tmp_path / "out", model=model)
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 0.5}], "quality": "draft", "use_ai": False})
    done = list(renderer.render(sb))[-1]
    assert model.calls == [] and done.report.scenes[0].source == "placeholder"


def test_cancel_during_generation_stops_the_model(tmp_path):
    class SlowModel(CountingModel):
        def generate(self, requests, on_step=None, should_stop=None):
            for step in range(1000):
                if should_stop():
                    return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
                on_step([requests[0].scene_index], step, 1000, [Image.new("RGB", (8, 8))])
                threading.Event().wait(0.005)
            return super().generate(requests)

    renderer = Renderer(tmp_path / "out", model=SlowModel())
    cancel = threading.Event()
    events = []
    for event in renderer.render(board(["a"]), cancel):
        events.append(event)
        if type(event).__name__ == "Preview" and event.step == 3:
            cancel.set()
    assert events[-1].cancelled
    assert max(e.step for e in events if type(e).__name__ == "Preview") <= 4


def test_first_scene_is_generated_alone_so_it_shows_up_first(tmp_path):
    model = CountingModel()
    batches = []
    original = model.generate
    model.generate = lambda requests, **kw: batches.append(len(requests)) or original(requests, **kw)
    renderer = Renderer(tmp_path / "out", model=model, batch_size=4)
    list(renderer.render(board(list("abcdefg"))))
    assert batches == [1, 4, 2]

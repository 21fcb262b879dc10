"""Generation sizes and batch plans: pure arithmetic, no model and no torch."""

from __future__ import annotations

from keyframe_requests import request
from PIL import Image

from pipeline import Renderer, parse_storyboard
from pipeline.images.batching import AUTO_GROUP_SIZE, assign_batches, auto_group_size, fit_generation_size
from pipeline.images.generation import GeneratedImage
from pipeline.images.stage import ImageStage
from pipeline.images.multi_gpu import MultiDeviceModel
from stand_in_model import StandInModel


def test_fit_generation_size_never_exceeds_the_output():
    assert fit_generation_size(854, 480, 512) == (680, 384)
    assert fit_generation_size(854, 480, 1024) == (848, 480)
    assert fit_generation_size(100, 100, 512) == (96, 96)


def test_assign_batches_is_balanced_and_keeps_order():
    requests = [request(i) for i in range(5)]
    plan = assign_batches(requests, ["cuda:0", "cuda:1"], batch_size=4)
    assert plan == {"cuda:0": [requests[0:3]], "cuda:1": [requests[3:5]]}
    plan = assign_batches(requests, ["cuda:0", "cuda:1"], batch_size=2)
    assert plan == {"cuda:0": [requests[0:2], requests[4:5]], "cuda:1": [requests[2:4]]}
    assert assign_batches(requests[:1], ["cuda:0", "cuda:1", "cuda:2"], 4) == {
        "cuda:0": [requests[:1]], "cuda:1": [], "cuda:2": [],
    }


def test_assign_batches_never_mixes_settings():
    mixed = [request(0), request(1, steps=4), request(2), request(3, size=(96, 64)), request(4, steps=4)]
    plan = assign_batches(mixed, ["cuda:0", "cuda:1"], batch_size=None)
    batches = [batch for device_batches in plan.values() for batch in device_batches]
    assert sorted(r.scene_index for batch in batches for r in batch) == [0, 1, 2, 3, 4]
    for batch in batches:
        assert len({(r.steps, r.width, r.height, r.guidance_scale) for r in batch}) == 1
    loads = [sum(len(b) for b in device_batches) for device_batches in plan.values()]
    assert max(loads) - min(loads) <= 1


class RecordingModel(StandInModel):
    """Draws flat images at once and records how many scenes each call was given."""

    model_id = "recording-model"
    size = (16, 16)

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, requests, on_step=None, should_stop=None):
        self.calls.append(len(requests))
        return [GeneratedImage(r.scene_index, Image.new("RGB", (r.width, r.height), (r.seed, 0, 0))) for r in requests]


def model_calls(batch_size: int | None, scenes: int) -> list[int]:
    """Scenes per model call for a ``scenes``-scene render with ``batch_size``."""
    import tempfile
    from pathlib import Path

    model = RecordingModel()
    board = parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 0.5, "seed": i} for i in range(scenes)],
                              "quality": "draft", "fps": 2, "transition": "cut"})
    with tempfile.TemporaryDirectory() as tmp:
        done = list(Renderer(Path(tmp), model=model, batch_size=batch_size).render(board))[-1]
    assert [s.source for s in done.report.scenes] == ["ai"] * scenes
    return model.calls


def test_auto_batch_size_hands_the_model_large_groups_after_the_first_scene():
    assert AUTO_GROUP_SIZE == 16
    assert model_calls(None, 20) == [1, 16, 3]  # the model cuts each group by its free memory
    assert model_calls(0, 3) == [1, 2]
    assert model_calls(4, 10) == [1, 4, 4, 1]  # a given number still wins


def test_auto_groups_give_every_gpu_a_full_batch():
    assert [auto_group_size(n) for n in (1, 2, 4, 8)] == [16, 16, 32, 64]
    four = MultiDeviceModel({f"cuda:{i}": RecordingModel() for i in range(4)})
    assert ImageStage(four).batch_size == 32
    assert ImageStage(four, batch_size=2).batch_size == 2
    assert ImageStage(RecordingModel()).batch_size == 16 and ImageStage(None).batch_size == 16

"""MultiDeviceModel with fake per-device models: spreading, ordering, failures and stops."""

from __future__ import annotations

import threading

from keyframe_requests import request

from pipeline.images.generation import ModelInfo, REASON_STOPPED, GeneratedImage
from pipeline.images.multi_gpu import MultiDeviceModel


class FakeManager:
    """A per-device model that answers at once and records what it was given."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.model_id = "fake/model"
        self.name = name
        self.fail = fail
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def load(self):
        return True

    def info(self) -> ModelInfo:
        return ModelInfo(self.model_id, self.name, "loaded", "float16")

    def is_distilled(self) -> bool:
        return True

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return width // 8 * 8, height // 8 * 8

    def generate(self, requests, on_step=None, should_stop=None):
        if self.fail:
            raise RuntimeError("device lost")
        self.threads.add(threading.current_thread().name)
        self.batches.append([r.scene_index for r in requests])
        if on_step:
            on_step([r.scene_index for r in requests], 1, 1, [])
        return [GeneratedImage(r.scene_index, None, f"drawn on {self.name}") for r in requests]


def test_multi_device_model_spreads_work_and_keeps_request_order():
    managers = {"cuda:0": FakeManager("cuda:0"), "cuda:1": FakeManager("cuda:1")}
    multi = MultiDeviceModel(managers, batch_size=2)
    steps: list[list[int]] = []
    results = multi.generate([request(i) for i in range(5)], on_step=lambda i, *_: steps.append(i))
    assert [r.scene_index for r in results] == [0, 1, 2, 3, 4]
    assert [r.reason for r in results] == ["drawn on cuda:0"] * 2 + ["drawn on cuda:1"] * 2 + ["drawn on cuda:0"]
    assert managers["cuda:0"].batches == [[0, 1], [4]] and managers["cuda:1"].batches == [[2, 3]]
    assert sorted(map(sorted, steps)) == [[0, 1], [2, 3], [4]]
    assert multi.info().device == "cuda:0, cuda:1"
    assert multi.is_distilled() and multi.generation_size(100, 60) == (96, 56)


def test_multi_device_model_turns_a_device_failure_into_reasons():
    managers = {"cuda:0": FakeManager("cuda:0"), "cuda:1": FakeManager("cuda:1", fail=True)}
    results = MultiDeviceModel(managers).generate([request(i) for i in range(4)])
    assert [r.reason for r in results] == ["drawn on cuda:0"] * 2 + ["generation failed: RuntimeError: device lost"] * 2


def test_multi_device_model_stops_before_starting_batches():
    managers = {"cuda:0": FakeManager("cuda:0"), "cuda:1": FakeManager("cuda:1")}
    results = MultiDeviceModel(managers, batch_size=1).generate([request(i) for i in range(4)], should_stop=lambda: True)
    assert [r.reason for r in results] == [REASON_STOPPED] * 4
    assert managers["cuda:0"].batches == [] and managers["cuda:1"].batches == []

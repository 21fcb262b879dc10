"""Generation sizes and batch plans: pure arithmetic, no model and no torch."""

from __future__ import annotations

from keyframe_requests import request

from pipeline.batching import assign_batches, fit_generation_size


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

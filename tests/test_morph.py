"""The morph transition: in-between images made by the (tiny, real) model, drawn by the timeline, reported."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from keyframe_requests import request
from pipeline import Done, KeyframeReady, MorphReady, Preview, Progress, Renderer, StoryboardError, parse_storyboard
from pipeline.contract.errors import RenderCancelled
from pipeline.images.cache import KeyframeCache
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.generation import REASON_STOPPED, Between, GeneratedImage, inbetween_id
from pipeline.images.morph_generation import slerp
from pipeline.images.plan import morph_frame_counts, morph_position, plan_images
from pipeline.images.slots import ImageSlots
from pipeline.images.stage import AI_OFF_REASON, ImageStage
from pipeline.renderer import image_loaders
from pipeline.video.morph import MorphImages
from pipeline.video.timeline import compose_frames, plan_timeline
from pipeline.video.transitions import blend


# --------------------------------------------------------------------------- slerp


def test_slerp_gives_exactly_the_ends_at_0_and_1():
    a, b = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    assert torch.equal(slerp(a, b, -0.5), a) and torch.equal(slerp(a, b, 1.5), b)


def test_slerp_follows_the_great_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(slerp(a, b, 0.5), torch.tensor([0.5**0.5, 0.5**0.5]))
    assert torch.allclose(slerp(a, b, 1 / 3), torch.tensor([3**0.5 / 2, 0.5]))
    # Two independent noises: slerp keeps the norm, a straight line would shrink it by ~1/sqrt(2).
    x, y = torch.randn(2, 4 * 64 * 64, generator=torch.Generator().manual_seed(1)).unbind(0)
    middle = slerp(x, y, 0.5)
    assert abs(middle.norm() / x.norm() - 1) < 0.02
    assert torch.lerp(x, y, 0.5).norm() / x.norm() < 0.75


@pytest.mark.parametrize("offset", [0.0, 1e-12, 1e-7, -1e-7])
def test_slerp_of_nearly_parallel_vectors_is_finite_and_linear(offset):
    a = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(2))
    b = a * (1 + offset) + offset * torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(3))
    for t in (0.25, 0.5, 0.75):
        result = slerp(a, b, t)
        assert torch.isfinite(result).all()
        assert torch.allclose(result, torch.lerp(a, b, t), atol=1e-5)
    assert torch.allclose(slerp(a, -a, 0.5), torch.zeros_like(a))  # antiparallel: no NaN either


def test_slerp_keeps_the_dtype():
    a, b = torch.randn(2, 16, dtype=torch.float16, generator=torch.Generator().manual_seed(4)).unbind(0)
    assert slerp(a, b, 0.3).dtype == torch.float16


# --------------------------------------------------------------------------- plan


class SizedModel:
    model_id = "sized"

    def is_distilled(self) -> bool:
        return True

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return 64, 64


def morph_board(prompts=("a red fox", "the blue sea", "a city at night"), **changes):
    data = {"scenes": [{"prompt": p, "duration": 1, "seed": 10 + i} for i, p in enumerate(prompts)],
            "quality": "draft", "fps": 12, "transition": "morph", "transition_duration": 1, "steps": 1,
            "morph_frames": 5, "morph_ease": False}
    data.update(changes)
    return parse_storyboard(data)


def test_default_morph_costs_at_most_12_generations_for_a_one_second_morph_at_24_fps():
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 2}],
                           "transition": "morph", "transition_duration": 1, "fps": 24})
    assert sb.morph_frames == 8 and sb.morph_ease is True
    assert morph_frame_counts(sb) == {0: 8}
    # Never more images than the transition has frames between its keyframes.
    assert morph_frame_counts(replace(sb, morph_frames=40)) == {0: 22}
    assert morph_frame_counts(replace(sb, transition="crossfade")) == {}
    with pytest.raises(StoryboardError, match="morph_frames must be between 1 and 48"):
        parse_storyboard({"scenes": [{"prompt": "a", "duration": 2}], "morph_frames": 0})


def test_plan_puts_each_morph_after_its_two_keyframes():
    plan = plan_images(morph_board(), SizedModel())
    ids = [r.id for r in plan.requests]
    assert ids == ["scene-1", "scene-2", *[f"morph-1-{j}" for j in range(1, 6)],
                   "scene-3", *[f"morph-2-{j}" for j in range(1, 6)]]
    inbetween = plan.by_id()["morph-2-3"]
    assert inbetween.kind == "inbetween" and inbetween.depends_on == ("scene-2", "scene-3")
    assert inbetween.between.start == plan.keyframe(1) and inbetween.between.end == plan.keyframe(2)
    assert inbetween.between.t == pytest.approx(0.5)


def test_eased_positions_start_and_end_slowly():
    even = [morph_position(j, 7, False) for j in range(1, 8)]
    eased = [morph_position(j, 7, True) for j in range(1, 8)]
    assert even == pytest.approx([j / 8 for j in range(1, 8)])
    assert eased == sorted(eased) and 0 < eased[0] < even[0] and even[-1] < eased[-1] < 1
    assert eased[3] == pytest.approx(0.5)
    assert eased[1] - eased[0] < even[1] - even[0] < eased[4] - eased[3]


def test_editing_scene_3_keeps_the_keys_of_the_morph_between_scenes_1_and_2():
    before = plan_images(morph_board(), SizedModel()).cache_keys("m")
    after = plan_images(morph_board(prompts=("a red fox", "the blue sea", "a forest")), SizedModel()).cache_keys("m")
    for j in range(1, 6):
        assert before[f"morph-1-{j}"] == after[f"morph-1-{j}"]
        assert before[f"morph-2-{j}"] != after[f"morph-2-{j}"]
    eased = plan_images(morph_board(morph_ease=True), SizedModel()).cache_keys("m")
    assert eased["morph-1-1"] != before["morph-1-1"] and eased["scene-1"] == before["scene-1"]


# --------------------------------------------------------------------------- the backend


@pytest.fixture(scope="module")
def manager(tiny_model_dir: Path) -> ModelManager:
    loaded = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert loaded.load(), loaded.info()
    return loaded


def pixels(result: GeneratedImage) -> np.ndarray:
    assert result.image is not None, result.reason
    return np.asarray(result.image).astype(np.int16)


def inbetweens(start, end, ts):
    return [replace(start, id=f"morph-1-{j}", kind="inbetween", depends_on=("scene-1", "scene-2"),
                    between=Between(start, end, t)) for j, t in enumerate(ts, start=1)]


@pytest.mark.parametrize("steps, guidance, negative", [(1, 0.0, ""), (3, 5.0, "blurry, dark")],
                         ids=["turbo", "regular"])
def test_inbetweens_at_0_and_1_are_the_keyframes(manager, steps, guidance, negative):
    # The embeddings and noise are built exactly as the keyframes' own calls build them.
    start = replace(request(0, seed=5, steps=steps, guidance=guidance), negative_prompt=negative)
    end = request(1, seed=6, steps=steps, guidance=guidance, prompt="the blue sea at night")
    keyframes = manager.generate([start, end])
    ends = manager.generate(inbetweens(start, end, [0.0, 1.0]))
    for made, keyframe in zip(ends, keyframes):
        assert np.abs(pixels(made) - pixels(keyframe)).max() <= 1


@pytest.fixture(scope="module")
def sdxl_manager(tmp_path_factory) -> ModelManager:
    from tiny_model import build_tiny_sdxl_pipeline

    folder = build_tiny_sdxl_pipeline(tmp_path_factory.mktemp("tiny_sdxl"))
    loaded = ModelManager(str(folder), device="cpu", local_files_only=True)
    assert loaded.load(), loaded.info()
    return loaded


@pytest.mark.parametrize("steps, guidance, negative", [(1, 0.0, ""), (2, 5.0, "blurry, dark")],
                         ids=["turbo", "regular"])
def test_sdxl_inbetweens_interpolate_pooled_embeddings_too(sdxl_manager, steps, guidance, negative):
    # SDXL: two text encoders, pooled embeddings, and zeros for an empty negative prompt on one side.
    start = replace(request(0, seed=5, steps=steps, guidance=guidance), negative_prompt=negative)
    end = request(1, seed=6, steps=steps, guidance=guidance, prompt="the blue sea at night")
    keyframes = sdxl_manager.generate([start, end])
    made = sdxl_manager.generate(inbetweens(start, end, [0.0, 0.5, 1.0]))
    assert np.abs(pixels(made[0]) - pixels(keyframes[0])).max() <= 1
    assert np.abs(pixels(made[2]) - pixels(keyframes[1])).max() <= 1
    assert min(mean_diff(pixels(made[1]), pixels(k)) for k in keyframes) > 2


def test_inbetweens_batched_equal_one_by_one_and_repeat(manager, monkeypatch):
    start, end = request(0, seed=5), request(1, seed=6, prompt="the blue sea at night")
    batch = inbetweens(start, end, [0.2, 0.4, 0.6, 0.8])
    sizes: list[int] = []
    monkeypatch.setattr(manager, "batch_size", 4)
    batched = manager.generate(batch, on_step=lambda indices, *rest: sizes.append(len(indices)))
    assert set(sizes) == {4}
    again = manager.generate(batch)
    monkeypatch.setattr(manager, "batch_size", 1)
    single = manager.generate(batch)
    for a, b, c in zip(batched, again, single):
        assert np.array_equal(pixels(a), pixels(b))
        assert np.abs(pixels(a) - pixels(c)).max() <= 1


def test_a_mixed_call_keeps_keyframes_and_inbetweens_apart(manager):
    start, end = request(0, seed=5), request(1, seed=6, prompt="the blue sea at night")
    mixed = manager.generate([inbetweens(start, end, [0.5])[0], request(2, seed=7)])
    alone = manager.generate([request(2, seed=7)])[0]
    assert np.abs(pixels(mixed[1]) - pixels(alone)).max() <= 1


def test_stop_ends_an_inbetween_batch_within_one_step(manager, monkeypatch):
    calls = [0]
    original = manager.pipeline.unet.forward
    monkeypatch.setattr(manager.pipeline.unet, "forward",
                        lambda *a, **k: calls.__setitem__(0, calls[0] + 1) or original(*a, **k))
    start, end = request(0, seed=5, steps=4), request(1, seed=6, steps=4)
    steps_seen: list[int] = []
    results = manager.generate(inbetweens(start, end, [0.3, 0.6]),
                               on_step=lambda indices, step, total, previews: steps_seen.append(step),
                               should_stop=lambda: bool(steps_seen))
    assert steps_seen == [1] and calls == [1]
    assert [r.reason for r in results] == [REASON_STOPPED, REASON_STOPPED]


# --------------------------------------------------------------------------- stage + timeline


def run_stage(storyboard, model, tmp_path, cache=None, emitted=None):
    """Run the image stage; returns its events and the slots it filled (step previews go to ``emitted``)."""
    cancel = threading.Event()
    slots = ImageSlots(cancel)
    folder = tmp_path / f"render-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    emit = emitted.append if emitted is not None else (lambda event: None)
    events = list(ImageStage(model, cache).run(storyboard, folder, slots, cancel, emit))
    return events, slots


def arrays(slots, ids):
    from PIL import Image

    return [np.asarray(Image.open(slots.wait(i)).convert("RGB")).astype(np.int16) for i in ids]


def mean_diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_generated_frames_walk_smoothly_from_one_keyframe_to_the_next(manager, tmp_path):
    sb = morph_board(prompts=("a red fox", "the blue sea"), morph_frames=6)
    events, slots = run_stage(sb, manager, tmp_path)
    assert [(e.boundary, e.source, e.frames) for e in events if isinstance(e, MorphReady)] == [(0, "ai", 6)]
    walk = arrays(slots, ["scene-1", *[inbetween_id(0, j) for j in range(1, 7)], "scene-2"])
    for image in walk[1:-1]:
        assert mean_diff(image, walk[0]) > 2 and mean_diff(image, walk[-1]) > 2
    steps = [mean_diff(a, b) for a, b in zip(walk, walk[1:])]
    assert max(steps) <= 3 * float(np.median(steps)), steps
    # The same storyboard gives the same images.
    _, again = run_stage(sb, manager, tmp_path)
    for image, same in zip(walk, arrays(again, ["scene-1", *[inbetween_id(0, j) for j in range(1, 7)], "scene-2"])):
        assert np.array_equal(image, same)
    # The video: first and last transition frames are the keyframes, the rest come from the images.
    plan = plan_timeline(sb)
    frames = list(compose_frames(sb, plan, *image_loaders(sb, slots)))
    load_keyframe, *_ = image_loaders(sb, slots)
    first, last = load_keyframe(0), load_keyframe(1)
    span = plan.transitions[0]
    assert span.kind == "morph" and span.frames == 12
    assert np.array_equal(frames[span.start], first) and np.array_equal(frames[span.end - 1], last)
    for i in range(1, span.frames - 1):
        frame, crossfade = frames[span.start + i], blend("crossfade", first, last, i / (span.frames - 1))
        assert mean_diff(frame, crossfade) > 2
    steps = [mean_diff(a, b) for a, b in zip(frames[span.start:span.end], frames[span.start + 1:span.end])]
    assert max(steps) <= 3 * float(np.median(steps)), steps


def test_progress_and_previews_cover_inbetween_images(manager, tmp_path):
    emitted: list = []
    events, _ = run_stage(morph_board(morph_frames=3), manager, tmp_path, emitted=emitted)
    messages = [e.message for e in events if isinstance(e, Progress)]
    assert any("morph 1→2 ready" in m for m in messages) and messages[-1].endswith("9 of 9 images")
    assert [e.fraction for e in events if isinstance(e, Progress)][-1] == 1.0
    previews = [(e.scene_index, e.what) for e in emitted if isinstance(e, Preview)]
    assert (0, "") in previews and (0, "morph 1→2") in previews and (1, "morph 2→3") in previews
    assert any(e.message == "morph 2→3 · step 1 of 1" for e in emitted if isinstance(e, Progress))


def test_editing_scene_3_does_not_regenerate_the_morph_between_scenes_1_and_2(manager, tmp_path):
    cache = KeyframeCache(tmp_path / "cache")
    (tmp_path / "renders").mkdir()
    run_stage(morph_board(morph_frames=3), manager, tmp_path / "renders", cache)
    edited = morph_board(prompts=("a red fox", "the blue sea", "a forest"), morph_frames=3)
    events, _ = run_stage(edited, manager, tmp_path / "renders", cache)
    assert [(e.scene_index, e.source) for e in events if isinstance(e, KeyframeReady)] == [
        (0, "cache"), (1, "cache"), (2, "ai")]
    assert [(e.boundary, e.source, e.cached) for e in events if isinstance(e, MorphReady)] == [
        (0, "cache", 3), (1, "ai", 0)]


class FailingManager(ModelManager):
    """The tiny model, failing every request for one prompt as an out-of-memory scene would."""

    fail_prompt = "FAIL"

    def generate(self, requests, on_step=None, should_stop=None):
        made = super().generate([r for r in requests if r.prompt != self.fail_prompt], on_step, should_stop)
        answers = iter(made)
        return [GeneratedImage(r.scene_index, None, "out of GPU memory") if r.prompt == self.fail_prompt
                else next(answers) for r in requests]


def test_a_placeholder_side_falls_back_to_a_crossfade_with_the_reason(tiny_model_dir, tmp_path):
    model = FailingManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    sb = morph_board(prompts=("a red fox", "FAIL", "a city"), morph_frames=3)
    calls: list[str] = []
    original = model.generate
    model.generate = lambda requests, **kw: calls.extend(r.id for r in requests) or original(requests, **kw)
    events, slots = run_stage(sb, model, tmp_path)
    morphs = [e for e in events if isinstance(e, MorphReady)]
    assert [(e.boundary, e.source) for e in morphs] == [(0, "crossfade"), (1, "crossfade")]
    assert all(e.reason == "scene 2 is a placeholder (out of GPU memory)" for e in morphs)
    assert not [c for c in calls if c.startswith("morph")]  # no in-between image was made for nothing
    plan = plan_timeline(sb)
    frames = list(compose_frames(sb, plan, *image_loaders(sb, slots)))
    load_keyframe, *_ = image_loaders(sb, slots)
    span = plan.transitions[0]
    for i, frame in enumerate(frames[span.start:span.end]):
        expected = blend("crossfade", load_keyframe(0), load_keyframe(1), i / (span.frames - 1))
        assert np.array_equal(frame, expected)


def test_cancel_during_an_inbetween_image_stops_the_stage(manager, tmp_path):
    cancel = threading.Event()
    slots = ImageSlots(cancel)
    seen: list[str] = []
    original = manager.generate

    class Watching:
        model_id = manager.model_id
        load, info, is_distilled, generation_size = (manager.load, manager.info, manager.is_distilled,
                                                     manager.generation_size)

        def generate(self, requests, on_step=None, should_stop=None):
            def step(indices, n, total, previews):
                seen.append(requests[0].kind)
                if requests[0].kind == "inbetween":
                    cancel.set()
                on_step(indices, n, total, previews)
            return original(requests, on_step=step, should_stop=should_stop)

    sb = morph_board(prompts=("a red fox", "the blue sea"), morph_frames=3, steps=3)
    with pytest.raises(RenderCancelled):
        list(ImageStage(Watching()).run(sb, tmp_path, slots, cancel, lambda event: None))
    assert seen.count("inbetween") == 1  # stopped after the first step of the in-between batch


# --------------------------------------------------------------------------- timeline without a model


def flat(value, size=(48, 32)):
    return np.full((size[1], size[0], 3), value, np.uint8)


def test_morph_frames_spread_the_images_evenly_and_load_each_once():
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": 1}],
                           "quality": "draft", "fps": 9, "transition": "morph", "transition_duration": 1})
    plan = plan_timeline(sb)
    span = plan.transitions[0]
    assert span.frames == 9  # anchors: keyframe, 3 images, keyframe -> every second frame is an image
    loads: list[int] = []

    def load_image(j):
        loads.append(j)
        return flat(60 * (j + 1))  # 60, 120, 180; fitted to 854x480 by the timeline

    frames = list(compose_frames(sb, plan, lambda i: flat(0 if i == 0 else 240, (854, 480)),
                                 lambda k: MorphImages(3, load_image)))
    values = [int(f[240, 427, 0]) for f in frames[span.start:span.end]]
    assert values == [0, 30, 60, 90, 120, 150, 180, 210, 240]
    assert loads == [0, 1, 2]


def test_morph_camera_glides_from_one_move_into_the_next():
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 1, "motion": "zoom_in"},
                                      {"prompt": "b", "duration": 1, "motion": "pan_right"}],
                           "quality": "draft", "fps": 9, "transition": "morph", "transition_duration": 1})
    plan = plan_timeline(sb)
    rng = np.random.default_rng(0)
    keyframes = [rng.integers(0, 256, (480, 854, 3), dtype=np.uint8) for _ in range(2)]
    with_morph = list(compose_frames(sb, plan, lambda i: keyframes[i],
                                     lambda k: MorphImages(3, lambda j: keyframes[0])))
    crossfade = list(compose_frames(sb, plan, lambda i: keyframes[i]))
    span = plan.transitions[0]
    # Ends: exactly the scenes' own frames (with their motion); outside the morph nothing changes.
    for j in (span.start, span.end - 1, *range(span.start), *range(span.end, plan.total_frames)):
        assert np.array_equal(with_morph[j], crossfade[j])
    assert all(f.shape == (480, 854, 3) for f in with_morph)


def flat_footage(folder: Path, values: list[int], fps: float):
    """A clip of flat frames (one value each), as the clip stage leaves it."""
    from pipeline.contract.footage import FootageWriter

    writer = FootageWriter(folder, fps=fps)
    writer.write_all(flat(value, (64, 36)) for value in values)
    return writer.finish()


def test_a_morph_beside_animated_scenes_leaves_the_clip_where_it_is_not_at_its_first_frame(tmp_path):
    """Both scenes clips: the morph's first in-betweens blend from the frame the outgoing clip is on (it
    once jumped back to the clip's first frame), its last ones into the frame the incoming clip plays on."""
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 2}],
                           "quality": "draft", "fps": 9, "transition": "morph", "transition_duration": 1})
    plan = plan_timeline(sb)
    span, incoming = plan.transitions[0], plan.scenes[1]
    assert span.frames == 9 and span.start > 0
    outgoing_values = [250 - 4 * k for k in range(span.end + 2)]  # the footage at the video's rate: no resampling
    incoming_values = [10 + 2 * k for k in range(plan.total_frames)]
    clips = [flat_footage(tmp_path / "a", outgoing_values, 9), flat_footage(tmp_path / "b", incoming_values, 9)]
    frames = list(compose_frames(sb, plan, lambda i: clips[i],
                                 lambda k: MorphImages(3, lambda j: flat(60 * (j + 1)))))
    values = [int(f[240, 427, 0]) for f in frames[span.start:span.end]]
    on = [outgoing_values[span.start + i] for i in range(9)]  # what the outgoing clip shows on each frame
    later = [incoming_values[span.start + i - incoming.visible_start] for i in range(9)]
    assert values == [on[0], (on[1] + 60) // 2, 60, 90, 120, 150, 180, (180 + later[7]) // 2, later[8]]
    # Either side of the morph the clips play on without a seam.
    assert int(frames[span.start - 1][240, 427, 0]) == outgoing_values[span.start - 1]
    assert int(frames[span.end][240, 427, 0]) == incoming_values[span.end - incoming.visible_start]


# --------------------------------------------------------------------------- renderer and report


def test_report_says_how_every_transition_was_made(manager, tmp_path):
    sb = morph_board(morph_frames=3)
    done = list(Renderer(tmp_path / "ai", manager).render(sb))[-1]
    assert isinstance(done, Done), done
    assert [(t["index"], t["made"], t["generated"], t["frames"]) for t in done.report.to_dict()["transitions"]] == [
        (0, "generated", 3, 12), (1, "generated", 3, 12)]
    off = list(Renderer(tmp_path / "off", manager).render(replace(sb, use_ai=False)))[-1]
    assert [(t.made, t.reason) for t in off.report.transitions] == [("crossfade", AI_OFF_REASON)] * 2
    fade = list(Renderer(tmp_path / "fade").render(replace(sb, transition="wipe")))[-1]
    assert [t.made for t in fade.report.transitions] == ["blend", "blend"]

"""Several clips in one video-model call (issue 22, point 5): which clips share a call, that a clip
made in a batch is the clip made alone, and a render that batches its clips streams them as before.
Also how often a running clip is previewed (a preview must stay cheap beside the model's steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from media import read_frames
from pipeline import Done, Renderer, parse_storyboard
from pipeline.contract.events import ClipReady
from pipeline.contract.footage import Footage
from pipeline.images.cache import KeyframeCache
from pipeline.images.clip_batches import GIB, MAX_CLIP_BATCH, auto_clip_batch, plan_clip_batches
from pipeline.images.clip_generation import ClipPictures, ClipRequest, FrameRules
from pipeline.images.video_backends.manager import VideoModelManager
from pipeline.images.video_backends.previews import PreviewBudget
from test_clips import TexturedModel

RULES = FrameRules(fps=25.0, frame_step=8, side_multiple=32, native_pixels=768 * 512, max_frames=33)
W, H = 128, 64


def request(index: int, kind: str = "clip", frames: int = 9, **changes) -> ClipRequest:
    start = f"keyframe-{index + 1}" if kind == "clip" else f"clip-{index + 1}"
    fields = dict(scene_index=index, prompt=f"scene {index}", negative_prompt="", seed=index, steps=2,
                  guidance_scale=1.0, width=W, height=H, num_frames=frames, fps=25.0,
                  id=f"{kind}-{index + 1}", kind=kind, start=start, end=f"keyframe-{index + 2}" if kind == "bridge"
                  else "", depends_on=(start,) + ((f"keyframe-{index + 2}",) if kind == "bridge" else ()))
    fields.update(changes)
    return ClipRequest(**fields)


def ids(batches: list[list[ClipRequest]]) -> list[list[str]]:
    return [[r.id for r in batch] for batch in batches]


# --------------------------------------------------------------------------- planning


def test_the_first_clip_is_made_alone_then_alike_clips_share_a_call():
    clips = [request(i) for i in range(5)]
    assert ids(plan_clip_batches(clips, RULES, lambda _r: 3)) == [["clip-1"], ["clip-2", "clip-3", "clip-4"],
                                                                 ["clip-5"]]
    assert ids(plan_clip_batches(clips, RULES, lambda _r: 1)) == [[c.id] for c in clips]


def test_a_transition_waits_for_the_clip_it_starts_from_and_unlike_clips_never_share():
    # scene 1, 1->2, scene 2, 2->3, scene 3: the transitions start from the clips before them.
    plan = [request(0), request(0, "bridge"), request(1), request(1, "bridge"), request(2, frames=17)]
    batches = ids(plan_clip_batches(plan, RULES, lambda _r: 8))
    assert batches == [["clip-1"], ["bridge-1"], ["clip-2"], ["bridge-2"], ["clip-3"]]
    # Transitions between stills depend on keyframes only: they share a call.
    stills = [request(i, "bridge", start=f"keyframe-{i + 1}", depends_on=(f"keyframe-{i + 1}",)) for i in range(3)]
    assert ids(plan_clip_batches([request(5)] + stills, RULES, lambda _r: 8)) == [
        ["clip-6"], ["bridge-1", "bridge-2", "bridge-3"]]


def test_a_clip_longer_than_one_call_is_made_alone():
    clips = [request(0), request(1, frames=41), request(2, frames=41), request(3)]
    assert ids(plan_clip_batches(clips, RULES, lambda _r: 4)) == [["clip-1"], ["clip-2"], ["clip-3"], ["clip-4"]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["clip", "bridge"]), st.sampled_from([9, 17, 41]), st.booleans()),
                min_size=1, max_size=12), st.integers(1, 8))
def test_every_clip_is_planned_once_after_what_it_needs(shapes, size):
    plan = [request(i, kind, frames, negative_prompt="blur" if negative else "")
            for i, (kind, frames, negative) in enumerate(shapes)]
    batches = plan_clip_batches(plan, RULES, lambda _r: size)
    planned = [r.id for batch in batches for r in batch]
    assert sorted(planned) == sorted(r.id for r in plan) and len(batches[0]) == 1
    made: set[str] = set()
    for batch in batches:
        assert len(batch) <= size and len({(r.num_frames, r.kind, bool(r.negative_prompt)) for r in batch}) == 1
        assert all(d in made or d not in planned for r in batch for d in r.depends_on)
        made |= {r.id for r in batch}


def test_the_auto_batch_follows_free_memory():
    short = request(0, frames=25, width=768, height=512)
    assert auto_clip_batch(4 * GIB, short) == 1
    assert 1 < auto_clip_batch(40 * GIB, short) < auto_clip_batch(80 * GIB, short) <= MAX_CLIP_BATCH
    guided = request(0, frames=25, width=768, height=512, guidance_scale=5.0)
    assert auto_clip_batch(40 * GIB, guided) < auto_clip_batch(40 * GIB, short)


def test_previews_stay_within_their_share_of_the_time():
    now = [0.0]

    def run(step_s: float, preview_s: float, steps: int = 40) -> int:
        budget = PreviewBudget(share=0.05, clock=lambda: now[0])
        budget.start()
        made = 0
        for _ in range(steps):
            now[0] += step_s

            def preview():
                now[0] += preview_s
                return "frame"

            made += budget.run(preview) is not None
        return made

    assert run(step_s=1.0, preview_s=0.01) == 40  # a real model: every step
    fast = run(step_s=0.01, preview_s=0.01)  # a model as fast as its preview: the first, then a few
    assert 1 <= fast <= 4


# --------------------------------------------------------------------------- the tiny LTX-Video


@pytest.fixture(scope="module")
def ltx_batched(tiny_ltx_dir: Path) -> VideoModelManager:
    model = VideoModelManager(str(tiny_ltx_dir), "cpu", local_files_only=True, batch_size=3)
    assert model.load(), model.info()
    return model


def two_colour(left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:, : W // 2], pixels[:, W // 2:] = left, right
    return Image.fromarray(pixels)


def frames(folder: Path) -> np.ndarray:
    footage = Footage(folder)
    return np.stack([np.array(footage.frame(i)) for i in range(len(footage))])


@pytest.mark.parametrize("kind", ["clip", "bridge"])
def test_clips_made_in_one_call_are_the_clips_made_alone(ltx_batched, tmp_path, kind):
    colours = [((200, 40, 40), (40, 200, 90)), ((30, 160, 220), (240, 230, 40)), ((90, 90, 200), (250, 250, 250))]
    pictures = [two_colour(*c) for c in colours]
    batch = [request(i, kind, frames=9, pictures=ClipPictures(pictures[i], pictures[(i + 1) % 3] if kind == "bridge"
                                                               else None), prompt=f"scene {i}: waves")
             for i in range(3)]
    steps: list[tuple[str, int]] = []
    together = ltx_batched.generate_clips(batch, [tmp_path / f"b{i}" for i in range(3)],
                                          on_step=lambda r, step, _t, _p: steps.append((r.id, step)))
    assert [r.reason for r in together] == ["", "", ""]
    assert sorted(steps) == sorted((r.id, s) for r in batch for s in (1, 2))  # every clip's steps counted
    for i, one in enumerate(batch):
        alone = ltx_batched.generate_clip(one, tmp_path / f"a{i}")
        mine, its = frames(together[i].folder), frames(alone.folder)
        assert mine.shape == its.shape == (9, H, W, 3)
        assert np.abs(mine.astype(int) - its.astype(int)).max() <= 2  # the same clip (float rounding aside)
        assert np.array_equal(mine[0], np.asarray(pictures[i]))  # on its own keyframe, not another's
        if kind == "bridge":
            assert np.array_equal(mine[-1], np.asarray(pictures[(i + 1) % 3]))
    assert not np.array_equal(frames(together[0].folder)[4], frames(together[1].folder)[4])


def test_a_batch_stopped_stops_every_clip(ltx_batched, tmp_path):
    batch = [request(i, pictures=ClipPictures(two_colour((9 * i, 100, 50), (200, 20, 9 * i)))) for i in range(2)]
    seen: list[int] = []
    results = ltx_batched.generate_clips(batch, [tmp_path / "s0", tmp_path / "s1"],
                                         on_step=lambda _r, step, _t, _p: seen.append(step),
                                         should_stop=lambda: bool(seen))
    assert [(r.folder, r.reason) for r in results] == [(None, "stopped")] * 2
    assert set(seen) == {1}
    assert not any(Footage.is_footage(tmp_path / f"s{i}") for i in range(2))


def test_wan_clips_are_never_batched(tiny_wan_dir):
    wan = VideoModelManager(str(tiny_wan_dir), "cpu", local_files_only=True, batch_size=4)
    assert wan.clip_batch_size(request(0)) == 1
    assert VideoModelManager("/nowhere", "cpu").clip_batch_size(request(0)) == 1  # auto on a CPU: one at a time


def test_a_render_that_batches_its_clips_makes_the_video_it_makes_one_by_one(ltx_batched, tiny_ltx_dir, tmp_path,
                                                                             monkeypatch):
    board = parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 0.5, "seed": i} for i in range(4)],
                              "quality": "draft", "fps": 12, "transition": "cut", "animate": True})
    one_by_one = VideoModelManager(str(tiny_ltx_dir), "cpu", local_files_only=True, batch_size=1)
    assert one_by_one.load()
    videos, orders, batch_sizes, clips = [], [], [], []
    for name, model in (("batched", ltx_batched), ("single", one_by_one)):
        transformer, sizes = model.pipeline.transformer, []
        real_forward = transformer.forward

        def forward(*args, _real=real_forward, _sizes=sizes, **kwargs):
            _sizes.append(kwargs["hidden_states"].shape[0])
            return _real(*args, **kwargs)

        monkeypatch.setattr(transformer, "forward", forward)
        batch_sizes.append(sizes)
        renderer = Renderer(tmp_path / name, model=TexturedModel(), video_model=model,
                            cache=KeyframeCache(tmp_path / "kf"), clip_size=(W, H))
        events = list(renderer.render(board))
        assert isinstance(events[-1], Done), events[-1]
        assert [s.frames for s in events[-1].report.scenes] == ["clip"] * 4
        orders.append([e.id for e in events if isinstance(e, ClipReady)])
        clips.append({e.id: frames(e.path) for e in events if isinstance(e, ClipReady)})
        videos.append(read_frames(events[-1].video_path, 854, 480))
    assert orders == [["clip-1", "clip-2", "clip-3", "clip-4"]] * 2
    steps = 8  # the tiny model is run as the distilled default ("distilled" in its folder's name)
    assert batch_sizes[0] == [1] * steps + [3] * steps  # scene 1 alone (it streams first), then 2-4 in one call
    assert batch_sizes[1] == [1] * 4 * steps
    assert len(videos[0]) == len(videos[1]) == 24
    # The same clips, up to float rounding in the batched arithmetic (which the encoder may then spread).
    assert all(np.abs(clips[0][k].astype(int) - clips[1][k].astype(int)).max() <= 2 for k in clips[1])

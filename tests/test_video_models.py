"""The video-model backends (LTX-Video, Wan) through the app's own loader, on tiny random pipelines.

What a user would check of a clip: it moves; it begins on the keyframe (a transition also
ends on the next scene's first frame); the same seed makes the same clip; it has exactly the
frames asked for, also when made in several calls, with no jump at a join; Stop ends it
within a step; and a model that cannot be used says why, quickly.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.contract.footage import Footage
from pipeline.images import hub_access
from pipeline.images.clip_generation import ClipPictures, ClipRequest
from pipeline.images.registry import ModelRegistry
from pipeline.images.video_backends.family import CallInputs
from pipeline.images.video_backends.manager import REASON_BLANK_CLIP, VideoModelManager
from pipeline.images.video_backends.stitching import ClipStitcher, plan_calls
from pipeline.images.zerogpu import estimate_clip_gpu_seconds

REPO_ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 128, 64


def picture(left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """A two-colour keyframe at the clip size."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:, : WIDTH // 2], pixels[:, WIDTH // 2:] = left, right
    return Image.fromarray(pixels)


START = picture((200, 40, 40), (40, 200, 90))
END = picture((30, 160, 220), (240, 230, 40))


def clip_request(model: VideoModelManager, frames: int | None = None, *, end: Image.Image | None = None,
                 seed: int = 1, steps: int = 2) -> ClipRequest:
    rules = model.frame_rules()
    return ClipRequest(scene_index=0, prompt="a fox runs through snow", negative_prompt="", seed=seed, steps=steps,
                       guidance_scale=1.0, width=WIDTH, height=HEIGHT,
                       num_frames=frames or rules.frame_step + 1, fps=rules.fps,
                       id="bridge-1" if end is not None else "clip-1", kind="bridge" if end is not None else "clip",
                       pictures=ClipPictures(START, end))


def frames_of(footage: Footage) -> np.ndarray:
    return np.stack([np.array(footage.frame(i)) for i in range(len(footage))])


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def ltx(tiny_ltx_dir: Path) -> VideoModelManager:
    # Calls of at most 17 frames, so a 33-frame clip takes several calls.
    model = VideoModelManager(str(tiny_ltx_dir), "cpu", local_files_only=True, max_frames=17)
    assert model.load(), model.info()
    return model


@pytest.fixture(scope="module")
def wan(tiny_wan_dir: Path) -> VideoModelManager:
    model = VideoModelManager(str(tiny_wan_dir), "cpu", local_files_only=True, max_frames=9)
    assert model.load(), model.info()
    return model


@pytest.fixture(scope="module")
def ltx_clip(ltx: VideoModelManager, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """One 9-frame LTX scene clip (seed 1), made once for the tests that only look at it."""
    result = ltx.generate_clip(clip_request(ltx), tmp_path_factory.mktemp("clip") / "footage")
    assert result.folder is not None, result.reason
    return frames_of(Footage(result.folder))


# --------------------------------------------------------------------------- importing


def test_importing_the_video_backends_does_not_import_torch():
    code = ("import sys, pipeline.images.video_backends.manager, pipeline.images.registry; "
            "print('torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- LTX-Video


def test_the_ltx_checkpoint_is_read_for_its_frame_rules(ltx):
    rules = ltx.frame_rules()
    assert ltx.family.name == "LTX-Video"
    assert (rules.frame_step, rules.side_multiple, rules.fps, rules.max_frames) == (8, 32, 25.0, 17)
    assert rules.last_frame
    info = ltx.info()
    assert (info.state, info.device, info.dtype) == ("loaded", "cpu", "float32")


def test_a_scene_clip_moves_and_begins_on_its_keyframe(ltx_clip):
    assert ltx_clip.shape == (9, HEIGHT, WIDTH, 3)
    assert np.array_equal(ltx_clip[0], np.asarray(START))  # the keyframe itself, not a re-encoding of it
    assert change(ltx_clip[0], ltx_clip[-1]) > 5
    assert all(change(ltx_clip[i], ltx_clip[i + 1]) > 0.5 for i in range(len(ltx_clip) - 1))


def test_the_same_seed_makes_the_same_clip_and_another_seed_another(ltx, ltx_clip, tmp_path):
    again = ltx.generate_clip(clip_request(ltx), tmp_path / "same")
    other = ltx.generate_clip(clip_request(ltx, seed=2), tmp_path / "other")
    assert np.array_equal(frames_of(Footage(again.folder)), ltx_clip)
    assert change(frames_of(Footage(other.folder))[-1], ltx_clip[-1]) > 1


def test_a_generated_transition_starts_and_ends_on_the_two_scenes(ltx, tmp_path):
    result = ltx.generate_clip(clip_request(ltx, 17, end=END), tmp_path / "bridge")
    frames = frames_of(Footage(result.folder))
    assert len(frames) == result.frames == 17
    assert np.array_equal(frames[0], np.asarray(START))
    assert np.array_equal(frames[-1], np.asarray(END))
    assert change(frames[8], np.asarray(START)) > 5 and change(frames[8], np.asarray(END)) > 5


def test_a_long_clip_is_made_in_several_calls_without_a_jump(ltx, tmp_path):
    steps: list[tuple[int, int]] = []
    request = clip_request(ltx, 33)  # 1.3 s at 25 fps; three calls of 17 frames joined on 9
    result = ltx.generate_clip(request, tmp_path / "long", on_step=lambda _r, step, total, _p: steps.append((step, total)))
    footage = Footage(result.folder)
    frames = frames_of(footage)
    assert (len(footage), footage.info.fps) == (33, 25.0)
    assert steps == [(i, 6) for i in range(1, 7)]  # two steps per call, counted over the whole clip
    assert np.array_equal(frames[0], np.asarray(START))
    single = frames_of(Footage(ltx.generate_clip(clip_request(ltx, 17), tmp_path / "one").folder))
    largest_inside_a_call = max(change(single[i], single[i + 1]) for i in range(len(single) - 1))
    changes = [change(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    assert max(changes) <= largest_inside_a_call * 1.05  # the joins (frames 8-16, 16-24) jump no more


@pytest.mark.parametrize("video_fps, clip_fps", [(24, 24.0), (30, 30.0), (25, 25.0), (12, 25.0), (60, 25.0)])
def test_ltx_makes_a_clip_at_the_video_rate_where_it_is_a_common_one(ltx, video_fps, clip_fps):
    rules = ltx.frame_rules().at_rate(video_fps)
    assert rules.fps == clip_fps  # 24-30 fps: the video's own; far from them: the model's default, resampled
    request = dataclasses.replace(clip_request(ltx), fps=rules.fps)
    kwargs = ltx.family.call_kwargs(ltx._pipe, request, rules, CallInputs(9, START, (), None))
    assert kwargs["frame_rate"] == clip_fps  # what the model is told is the rate the frames are kept at
    assert rules.frames_for(1.0) == -(-clip_fps // 8) * 8 + 1  # no more frames than the second needs


def test_a_model_without_a_rate_input_keeps_its_own_rate(wan):
    rules = wan.frame_rules()
    assert rules.rates is None and rules.at_rate(24) is rules


def test_clip_frame_counts_follow_the_rules_at_each_duration(ltx, tmp_path):
    rules = ltx.frame_rules()
    assert [rules.frames_for(s) for s in (0.2, 0.32, 0.33, 1.0)] == [9, 9, 17, 33]
    result = ltx.generate_clip(clip_request(ltx, 12), tmp_path / "bad")
    assert result.folder is None and "8k+1" in result.reason


def test_step_previews_are_one_small_decoded_frame(ltx, tmp_path, monkeypatch):
    from pipeline.images.video_backends import previews as previews_module

    monkeypatch.setattr(previews_module, "PREVIEW_SHARE", 1.0)  # every step (the tiny model's steps take ms)
    previews: list[Image.Image | None] = []
    ltx.generate_clip(clip_request(ltx), tmp_path / "p", on_step=lambda _r, _s, _t, preview: previews.append(preview))
    assert len(previews) == 2 and all(isinstance(p, Image.Image) for p in previews)
    assert all(p.size[0] <= WIDTH and p.size[1] <= HEIGHT for p in previews)
    assert len({p.tobytes() for p in previews}) == 2  # the latents moved between the steps


def test_previews_stay_a_small_share_of_a_fast_models_time(ltx, tmp_path):
    previews: list[Image.Image | None] = []
    ltx.generate_clip(clip_request(ltx, steps=12), tmp_path / "fast",
                      on_step=lambda _r, _s, _t, preview: previews.append(preview))
    made = [p for p in previews if p is not None]
    assert len(previews) == 12 and isinstance(previews[0], Image.Image)  # every step reported, the first shown
    assert len(made) < 12  # the tiny model's steps take about as long as a preview: most are skipped


def test_stop_ends_the_clip_within_one_step(ltx, tmp_path):
    seen: list[int] = []
    result = ltx.generate_clip(clip_request(ltx, 33, steps=4), tmp_path / "stopped",
                               on_step=lambda _r, step, _t, _p: seen.append(step), should_stop=lambda: bool(seen))
    assert (result.folder, result.reason) == (None, "stopped")
    assert seen == [1]
    assert not Footage.is_footage(tmp_path / "stopped")


def test_large_calls_decode_in_vae_tiles(ltx, tmp_path, monkeypatch):
    from pipeline.images.video_backends import manager as manager_module

    monkeypatch.setattr(manager_module, "TILE_ABOVE_VOXELS", 9 * WIDTH * HEIGHT - 1)
    ltx.generate_clip(clip_request(ltx), tmp_path / "tiled")
    assert ltx.pipeline.vae.use_tiling
    monkeypatch.setattr(manager_module, "TILE_ABOVE_VOXELS", 9 * WIDTH * HEIGHT)
    ltx.generate_clip(clip_request(ltx), tmp_path / "whole")
    assert not ltx.pipeline.vae.use_tiling


def test_a_blank_clip_is_said_so(ltx, tmp_path):
    import torch

    conv = ltx.pipeline.vae.decoder.conv_out.conv
    saved = conv.bias.detach().clone()
    try:
        with torch.no_grad():
            conv.bias.fill_(float("nan"))  # a poisoned decoder: NaN frames, as a broken fp16 VAE makes
        result = ltx.generate_clip(clip_request(ltx), tmp_path / "blank")
    finally:
        with torch.no_grad():
            conv.bias.copy_(saved)
    assert (result.folder, result.reason) == (None, REASON_BLANK_CLIP)


def test_the_frames_come_as_tensors_made_uint8_where_they_are_the_same_as_from_float_arrays(ltx, ltx_clip, tmp_path,
                                                                                          monkeypatch):
    """The pipeline hands over tensors ("pt"), converted where they are (on a GPU: on the device); a pipeline
    that hands over float arrays ("np") gives the very same frames, and on either path a NaN clip is blank."""
    import torch

    assert ltx.output_type == "pt"  # on the CPU too: no strided float copy of the whole clip
    monkeypatch.setattr(VideoModelManager, "output_type", property(lambda self: "np"))
    result = ltx.generate_clip(clip_request(ltx), tmp_path / "np")
    assert np.array_equal(frames_of(Footage(result.folder)), ltx_clip)
    conv = ltx.pipeline.vae.decoder.conv_out.conv
    saved = conv.bias.detach().clone()
    try:
        with torch.no_grad():
            conv.bias.fill_(float("nan"))
        blank = ltx.generate_clip(clip_request(ltx), tmp_path / "np-blank")
    finally:
        with torch.no_grad():
            conv.bias.copy_(saved)
    assert (blank.folder, blank.reason) == (None, REASON_BLANK_CLIP)


def test_one_bad_value_or_an_all_black_clip_is_blank_in_tensors_and_arrays():
    import torch

    from pipeline.images.video_backends.manager import _uint8_frames

    video = torch.rand(3, 3, 8, 8)
    for bad in (float("nan"), float("inf"), float("-inf")):
        poisoned = video.clone()
        poisoned[2, 1, 5, 6] = bad
        assert _uint8_frames(poisoned) is None
        assert _uint8_frames(poisoned.permute(0, 2, 3, 1).numpy().copy()) is None
    assert _uint8_frames(torch.zeros(2, 3, 8, 8)) is None
    assert _uint8_frames(np.full((2, 8, 8, 3), 0.004, np.float32)) is None
    dim = torch.zeros(2, 3, 8, 8)
    dim[1, 0, 0, 0] = 0.02  # one faint pixel: dark, not blank
    made = _uint8_frames(dim)
    assert made is not None and made[1][0, 0, 0] == 5 and len(made) == 2
    as_arrays = video.permute(0, 2, 3, 1).numpy().copy()  # before: the tensor is converted in place
    assert [f.tolist() for f in _uint8_frames(video)] == [f.tolist() for f in _uint8_frames(as_arrays)]


def test_out_of_memory_retries_once_in_smaller_calls_then_says_so(tiny_ltx_dir, tmp_path, monkeypatch):
    import torch

    ltx = VideoModelManager(str(tiny_ltx_dir), "cpu", local_files_only=True, max_frames=33)
    assert ltx.load()
    transformer = ltx.pipeline.transformer
    real_forward, calls = transformer.forward, []

    def forward(*args, **kwargs):
        calls.append(kwargs["hidden_states"].shape[1])
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(transformer, "forward", forward)
    result = ltx.generate_clip(clip_request(ltx, 33), tmp_path / "retried")
    assert result.folder is not None and result.frames == 33
    assert ltx.pipeline.vae.use_tiling  # the retry decodes in tiles
    assert max(calls[1:]) < calls[0]  # and in calls of fewer frames (33 -> 17 here, so fewer tokens)

    monkeypatch.setattr(transformer, "forward", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    result = ltx.generate_clip(clip_request(ltx), tmp_path / "failed")
    assert (result.folder, result.reason) == (None, "out of GPU memory")


# --------------------------------------------------------------------------- loading failures


def test_a_missing_folder_fails_fast_with_a_reason(tmp_path):
    started = time.monotonic()
    model = VideoModelManager(str(tmp_path / "nowhere"), "cpu", local_files_only=True)
    assert not model.load()
    result = model.generate_clip(clip_request(model), tmp_path / "x")
    assert result.folder is None and "could not be loaded" in result.reason
    assert model.info().state == "failed" and time.monotonic() - started < 5


def test_the_default_video_model_offline_fails_fast_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    hub_access.forget()
    started = time.monotonic()
    model = VideoModelManager(None, "cpu")
    assert model.model_id == "Lightricks/LTX-Video-0.9.8-13B-distilled"
    assert not model.load()
    assert hub_access.OFFLINE_REASON in model.info().reason
    assert time.monotonic() - started < 5


def test_an_image_model_is_not_taken_for_a_video_model(tiny_model_dir, tmp_path):
    model = VideoModelManager(str(tiny_model_dir), "cpu", local_files_only=True)
    assert not model.load()
    assert "StableDiffusionPipeline checkpoint, not a video model" in model.info().reason


# --------------------------------------------------------------------------- Wan


def test_wan_makes_first_last_frame_transitions(wan, tmp_path):
    rules = wan.frame_rules()
    assert wan.family.name == "Wan"
    assert (rules.frame_step, rules.side_multiple, rules.fps, rules.last_frame) == (4, 16, 16.0, True)
    result = wan.generate_clip(clip_request(wan, 9, end=END), tmp_path / "bridge")
    frames = frames_of(Footage(result.folder))
    assert len(frames) == 9
    assert np.array_equal(frames[0], np.asarray(START)) and np.array_equal(frames[-1], np.asarray(END))


def test_a_long_wan_clip_continues_from_the_last_frame(wan, tmp_path):
    result = wan.generate_clip(clip_request(wan, 17), tmp_path / "long")  # calls of 9 frames, joined on 1
    frames = frames_of(Footage(result.folder))
    assert len(frames) == 17 and np.array_equal(frames[0], np.asarray(START))
    assert change(frames[0], frames[-1]) > 5


def test_a_wan_checkpoint_that_ignores_the_last_frame_says_so(tmp_path):
    from tiny_video_model import build_tiny_wan_ti2v_pipeline

    model = VideoModelManager(str(build_tiny_wan_ti2v_pipeline(tmp_path / "ti2v")), "cpu", local_files_only=True)
    assert model.load(), model.info()
    rules = model.frame_rules()
    assert not rules.last_frame and "ignores a last frame" in rules.last_frame_reason
    refused = model.generate_clip(clip_request(model, 9, end=END), tmp_path / "bridge")
    assert (refused.folder, refused.reason) == (None, rules.last_frame_reason)
    clip = model.generate_clip(clip_request(model, 9), tmp_path / "clip")  # it still animates a scene
    assert (model.default_steps, model.default_guidance) == (50, 5.0)  # TI2V-5B's own
    assert clip.frames == 9 and np.array_equal(Footage(clip.folder).frame(0), np.asarray(START))


@pytest.mark.parametrize("first_last_frame", [False, True])
def test_only_the_flf2v_kind_of_wan_21_takes_a_last_frame(tmp_path, first_last_frame):
    from tiny_video_model import build_tiny_wan21_pipeline

    folder = build_tiny_wan21_pipeline(tmp_path / "wan21", first_last_frame)
    model = VideoModelManager(str(folder), "cpu", local_files_only=True)
    assert model.load(), model.info()
    rules = model.frame_rules()
    assert rules.last_frame is first_last_frame
    assert (model.default_steps, model.default_guidance) == (50, 5.0)  # Wan 2.1's, read from its CLIP input
    result = model.generate_clip(clip_request(model, 9, end=END), tmp_path / "bridge")
    if first_last_frame:
        frames = frames_of(Footage(result.folder))
        assert np.array_equal(frames[0], np.asarray(START)) and np.array_equal(frames[-1], np.asarray(END))
    else:
        assert (result.folder, result.reason) == (None, rules.last_frame_reason)
        assert "not trained on a last frame" in result.reason


def test_each_video_family_runs_its_checkpoint_with_its_own_steps_and_guidance(ltx, wan):
    # Loaded: the distilled LTX-Video (the tiny one is named like the default) runs few steps without
    # guidance; a Wan 2.2 A14B-style checkpoint (no CLIP image input) its 40 steps at guidance 3.5.
    assert (ltx.default_steps, ltx.default_guidance) == (8, 1.0)
    assert (wan.default_steps, wan.default_guidance) == (40, 3.5)
    # Before loading, from the id alone.
    guesses = {"Lightricks/LTX-Video-0.9.8-13B-distilled": (8, 1.0), "Lightricks/LTX-Video-0.9.5": (50, 5.0),
               "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": (50, 5.0), "Wan-AI/Wan2.2-I2V-A14B-Diffusers": (40, 3.5),
               "Wan-AI/Wan2.2-TI2V-5B-Diffusers": (50, 5.0)}
    for model_id, expected in guesses.items():
        model = VideoModelManager(model_id, "cpu", local_files_only=True)
        assert (model.default_steps, model.default_guidance) == expected, model_id


# --------------------------------------------------------------------------- registry


def test_the_video_model_stays_loaded_beside_the_image_model(tiny_model_dir, tiny_ltx_dir, tmp_path):
    registry = ModelRegistry(max_resident=1)
    image = registry.manager(str(tiny_model_dir), "cpu", local_files_only=True)
    video = registry.video(str(tiny_ltx_dir), "cpu", local_files_only=True)
    assert registry.video(str(tiny_ltx_dir), "cpu", local_files_only=True) is video  # one shared instance
    assert image.load() and video.load()
    assert image.loaded and video.loaded  # the cap counts image and video models apart

    other = tmp_path / "other_ltx"
    import shutil

    shutil.copytree(tiny_ltx_dir, other)
    second = registry.video(str(other), "cpu", local_files_only=True)
    assert second.load()
    assert not video.loaded and image.loaded  # a second video model evicts the first, not the image model


# --------------------------------------------------------------------------- joining calls and GPU time


@settings(max_examples=60, deadline=None)
@given(step=st.sampled_from([4, 8]), calls=st.integers(1, 40), longest=st.integers(2, 20), overlap_steps=st.integers(0, 3))
def test_calls_add_up_to_the_clip(step, calls, longest, overlap_steps):
    total, max_frames, overlap = step * calls + 1, step * longest + 1, step * overlap_steps + 1
    if overlap >= max_frames:
        return
    plan = plan_calls(total, max_frames, step, overlap)
    assert sum(call.new_frames for call in plan) == total
    assert all(call.frames <= max_frames and (call.frames - 1) % step == 0 for call in plan)
    assert plan[0].overlap == 0 and all(call.overlap == overlap for call in plan[1:])
    written: list[np.ndarray] = []
    stitcher = ClipStitcher(written.append, hold=max(overlap, 3))
    for call in plan:
        stitcher.add_call([np.full((2, 2, 3), i, np.uint8) for i in range(call.frames)], call.overlap)
    assert stitcher.finish() == total == len(written)


def test_a_clip_asks_zerogpu_for_more_time_the_longer_and_larger_it_is():
    short = estimate_clip_gpu_seconds(frames=33, width=768, height=512, steps=8)
    five_seconds = estimate_clip_gpu_seconds(frames=129, width=768, height=512, steps=8)
    hd = estimate_clip_gpu_seconds(frames=129, width=1280, height=704, steps=8)
    assert short < five_seconds < hd
    assert estimate_clip_gpu_seconds(frames=9, width=64, height=64, steps=1) == 30
    assert estimate_clip_gpu_seconds(frames=100_000, width=1920, height=1088, steps=50, cap=300) == 300

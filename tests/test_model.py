"""ModelManager against a tiny random diffusers pipeline on the CPU (64 px images).

The CUDA-only paths (device and dtype choice, CPU offload, memory-based batch
size) are tested with torch.cuda functions patched, since there is no GPU here.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from keyframe_requests import request

from pipeline.images.batching import auto_batch_size, needs_cpu_offload
from pipeline.images.generation import REASON_BLANK, REASON_OUT_OF_MEMORY, REASON_STOPPED, GeneratedImage
from pipeline.images.resident import pick_dtype
from pipeline.images import registry as registry_module
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.model_names import (
    DEFAULT_MODEL_ID,
    MODEL_ENV_VAR,
    is_distilled_model,
    looks_like_sdxl,
    model_source,
    single_file_config_dir,
)
from pipeline.images.registry import get_image_model, get_model_manager
from pipeline.images.multi_gpu import MultiDeviceModel

REPO_ROOT = Path(__file__).resolve().parent.parent


def pixels(result: GeneratedImage) -> np.ndarray:
    assert result.image is not None, result.reason
    return np.asarray(result.image).astype(np.int16)


def count_calls(monkeypatch, module) -> list[int]:
    """Count calls of ``module.forward`` (a one-item list, read after the run)."""
    counter = [0]
    original = module.forward

    def counted(*args, **kwargs):
        counter[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward", counted)
    return counter


@pytest.fixture(scope="module")
def manager(tiny_model_dir: Path) -> ModelManager:
    """One loaded tiny model for the module; tests patch it only through monkeypatch."""
    loaded = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert loaded.load(), loaded.info()
    return loaded


# --------------------------------------------------------------------------- import cost


@pytest.mark.parametrize("module", ["pipeline.images.model_names", "pipeline.images.diffusers_backend", "pipeline.images.registry", "pipeline.images.batching", "pipeline.images.previews", "pipeline.images.multi_gpu", "pipeline.images.decoders"])
def test_importing_the_model_modules_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- generation


def test_generate_returns_images_of_the_requested_size(manager):
    results = manager.generate([request(0), request(1, size=(96, 64)), request(2, size=(60, 44))])
    assert [r.scene_index for r in results] == [0, 1, 2]
    assert [r.image.size for r in results] == [(64, 64), (96, 64), (60, 44)]
    assert all(r.reason == "" for r in results)
    assert manager.info().state == "loaded"


def test_same_seed_gives_the_same_image(manager):
    first = manager.generate([request(0, seed=42)])[0]
    again = manager.generate([request(0, seed=42)])[0]
    other = manager.generate([request(0, seed=43)])[0]
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_a_batch_gives_the_same_images_as_one_by_one(manager, monkeypatch):
    requests = [request(i, seed=100 + i, prompt=f"scene number {i}") for i in range(3)]
    batch_sizes: list[int] = []
    on_step = lambda indices, step, total, previews: batch_sizes.append(len(indices))  # noqa: E731
    monkeypatch.setattr(manager, "batch_size", 3)
    batched = manager.generate(requests, on_step=on_step)
    assert set(batch_sizes) == {3}
    monkeypatch.setattr(manager, "batch_size", 1)
    single = manager.generate(requests)
    for a, b in zip(batched, single):
        # Same noise (one seeded generator per image); CPU conv/matmul kernels may block a
        # batch differently from a single image, which can move a pixel by one level.
        assert np.abs(pixels(a) - pixels(b)).max() <= 1


def test_on_step_gets_every_step_with_previews(manager):
    calls = []
    manager.generate([request(0, steps=3), request(1, steps=3)], on_step=lambda *args: calls.append(args))
    assert [(c[0], c[1], c[2]) for c in calls] == [([0, 1], 1, 3), ([0, 1], 2, 3), ([0, 1], 3, 3)]
    for _indices, _step, _total, previews in calls:
        assert len(previews) == 2
        assert all(p.size == (8, 8) and p.mode == "RGB" for p in previews)


def test_should_stop_interrupts_within_one_step(manager, monkeypatch):
    unet_calls = count_calls(monkeypatch, manager.pipeline.unet)
    steps_seen: list[int] = []
    monkeypatch.setattr(manager, "batch_size", 1)
    results = manager.generate(
        [request(0, steps=4), request(1, steps=4)],
        on_step=lambda indices, step, total, previews: steps_seen.append(step),
        should_stop=lambda: bool(steps_seen),
    )
    assert steps_seen == [1]
    assert unet_calls == [1]  # one denoising step ran, the other three were skipped
    assert [r.reason for r in results] == [REASON_STOPPED, REASON_STOPPED]
    assert all(r.image is None for r in results)


def test_on_step_errors_do_not_cost_the_image(manager):
    def broken(*_args):
        raise KeyError("ui went away")

    result = manager.generate([request(0)], on_step=broken)[0]
    assert result.image is not None


# --------------------------------------------------------------------------- failures


def test_an_exception_in_the_pipeline_becomes_a_reason(manager, monkeypatch):
    def explode(*_args, **_kwargs):
        raise ValueError("boom\nwith a second line")

    monkeypatch.setattr(manager.pipeline.unet, "forward", explode)
    results = manager.generate([request(0), request(1)])
    assert [r.reason for r in results] == ["generation failed: ValueError: boom"] * 2
    assert all(r.image is None for r in results)


@pytest.mark.parametrize("fill", [float("nan"), -1.0], ids=["nan", "black"])
def test_a_blank_image_becomes_a_reason(manager, monkeypatch, fill):
    import torch

    vae = manager.pipeline.vae
    original = vae.decode

    def blank_decode(*args, **kwargs):
        image = original(*args, **kwargs)[0]
        return (torch.full_like(image, fill),)

    monkeypatch.setattr(vae, "decode", blank_decode)
    result = manager.generate([request(0)])[0]
    assert result.image is None
    assert result.reason == REASON_BLANK


def test_nan_latents_become_a_blank_reason(manager, monkeypatch):
    import torch

    unet = manager.pipeline.unet
    original = unet.forward

    def nan_unet(sample, *args, **kwargs):
        out = original(sample, *args, **kwargs)
        return (torch.full_like(out[0], float("nan")),)

    monkeypatch.setattr(unet, "forward", nan_unet)
    assert manager.generate([request(0)])[0].reason == REASON_BLANK


def test_out_of_memory_retries_with_a_smaller_batch(manager, monkeypatch):
    import torch

    reference = [manager.generate([r])[0] for r in [request(i) for i in range(3)]]
    unet = manager.pipeline.unet
    original = unet.forward
    seen: list[int] = []

    def small_gpu(sample, *args, **kwargs):
        seen.append(sample.shape[0])
        if sample.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", small_gpu)
    monkeypatch.setattr(manager, "batch_size", 3)
    results = manager.generate([request(i) for i in range(3)])
    assert seen[0] == 3 and set(seen[1:]) == {1}  # 3 failed, then 3 // 2 == 1 at a time
    assert all(r.image is not None for r in results)
    for got, want in zip(results, reference):
        assert np.array_equal(pixels(got), pixels(want))


def test_out_of_memory_at_batch_one_becomes_a_reason(manager, monkeypatch):
    def no_gpu(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(manager.pipeline.unet, "forward", no_gpu)
    monkeypatch.setattr(manager, "batch_size", 2)
    results = manager.generate([request(0), request(1)])
    assert [r.reason for r in results] == [REASON_OUT_OF_MEMORY] * 2


def test_a_bad_path_gives_every_scene_a_reason(tmp_path):
    missing = ModelManager(str(tmp_path / "no-such-model"), device="cpu", local_files_only=True)
    results = missing.generate([request(0), request(1)])
    assert [r.scene_index for r in results] == [0, 1]
    assert all(r.image is None and "could not be loaded" in r.reason for r in results)
    assert "\n" not in results[0].reason and len(results[0].reason) < 300
    assert missing.info().state == "failed" and missing.info().reason
    # Remembered: the next render does not try again.
    assert missing.generate([request(2)])[0].reason == results[0].reason


def test_the_default_hub_model_fails_fast_offline():
    started = time.monotonic()
    offline = ModelManager(DEFAULT_MODEL_ID, device="cpu")
    result = offline.generate([request(0)])[0]
    assert time.monotonic() - started < 10
    assert result.image is None
    assert result.reason.startswith(f"Model '{DEFAULT_MODEL_ID}' could not be loaded: ")
    assert "the model hub cannot be reached (offline)" in result.reason  # pipeline.images.hub_access


# --------------------------------------------------------------------------- loading once


def test_the_model_is_loaded_once(tiny_model_dir, monkeypatch):
    from diffusers import AutoPipelineForText2Image

    original = AutoPipelineForText2Image.from_pretrained
    loads: list[str] = []

    def counting(cls, *args, **kwargs):
        loads.append(str(args[0]))
        time.sleep(0.2)  # widen the window in which a second thread could also start a load
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", classmethod(counting))
    monkeypatch.setattr(registry_module, "REGISTRY", registry_module.ModelRegistry())
    shared = get_model_manager(str(tiny_model_dir), "cpu", local_files_only=True)
    assert get_model_manager(str(tiny_model_dir), "cpu", local_files_only=True) is shared
    assert shared.info().state == "not loaded"
    threads = [threading.Thread(target=shared.generate, args=([request(i)],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shared.generate([request(3)])[0].image is not None
    assert len(loads) == 1


def keyframes_of(events) -> list[np.ndarray]:
    """The keyframe pixels of a render, read while its files still exist."""
    from PIL import Image

    from pipeline import KeyframeReady

    frames = []
    for event in events:
        if isinstance(event, KeyframeReady):
            with Image.open(event.path) as image:
                frames.append(np.asarray(image.convert("RGB")).astype(np.int16))
        last = event
    return frames, last


def test_a_render_gets_ai_keyframes_from_the_first_render_of_a_process(tmp_path, tiny_model_dir):
    from pipeline import Done, Renderer, parse_storyboard
    from pipeline.images.placeholder import render_placeholder

    fresh = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)  # not loaded yet
    renderer = Renderer(tmp_path / "outputs", model=fresh)  # no cache: the model draws every time
    board = parse_storyboard({"scenes": [{"prompt": "a lighthouse at dusk", "duration": 0.5, "seed": 1},
                                         {"prompt": "waves on the rocks", "duration": 0.5, "seed": 2}],
                              "quality": "draft", "fps": 8, "transition": "cut", "steps": 2})
    first, done = keyframes_of(renderer.render(board))
    assert isinstance(done, Done) and [s.source for s in done.report.scenes] == ["ai", "ai"]
    assert fresh.loaded
    # The size is planned from the loaded model (64 px native -> 88x48 for 16:9), not from a guess
    # made before loading: the first render asks for what every later render asks for.
    assert [frame.shape[1::-1] for frame in first] == [fresh.generation_size(854, 480)] * 2 == [(88, 48)] * 2
    again, _ = keyframes_of(renderer.render(board))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    placeholder = np.asarray(render_placeholder("a lighthouse at dusk", 1, 88, 48)).astype(np.int16)
    assert np.abs(first[0] - placeholder).mean() > 10


def test_reset_allows_a_retry(tmp_path, tiny_model_dir):
    target = tmp_path / "model"
    flaky = ModelManager(str(target), device="cpu", local_files_only=True)
    assert not flaky.load()
    import shutil

    shutil.copytree(tiny_model_dir, target)
    assert not flaky.load()  # the failure is remembered
    flaky.reset()
    assert flaky.load()


def write_fake_checkpoint(path: Path, keys: list[str], metadata: dict[str, str] | None = None) -> Path:
    """A .safetensors file with a valid header naming ``keys`` (and ``metadata``) and no real weights."""
    import json
    import struct

    header: dict = {key: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
                    for i, key in enumerate(keys)}
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4 * len(keys))
    return path


def test_single_files_are_recognised_and_a_broken_one_gives_a_reason(tmp_path):
    sd = write_fake_checkpoint(tmp_path / "my-model.safetensors", ["model.diffusion_model.input_blocks.0.0.weight"])
    xl = write_fake_checkpoint(tmp_path / "other.safetensors", ["conditioner.embedders.1.model.ln_final.weight"])
    assert model_source(str(sd)) == "single_file" and model_source(str(tmp_path)) == "folder"
    assert model_source(DEFAULT_MODEL_ID) == "hub"
    assert not looks_like_sdxl(str(sd)) and looks_like_sdxl(str(xl))
    assert looks_like_sdxl("stabilityai/sdxl-turbo") and not looks_like_sdxl(DEFAULT_MODEL_ID)
    result = ModelManager(str(sd), device="cpu", local_files_only=True).generate([request(0)])[0]
    assert result.image is None and "could not be loaded" in result.reason


@pytest.mark.parametrize("model_id, safety_kwargs", [("org/some-model", True), ("org/some-xl-model", False)])
def test_half_precision_hub_loads_try_the_fp16_variant_first(monkeypatch, model_id, safety_kwargs):
    import torch
    from diffusers import AutoPipelineForText2Image

    calls: list[dict] = []

    def fake_from_pretrained(cls, name, **kwargs):
        calls.append(kwargs)
        if kwargs.get("variant"):
            raise ValueError("no fp16 variant")
        return "pipe"

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", classmethod(fake_from_pretrained))
    # The hub answers (tests run with HF_HUB_OFFLINE=1, which would make every load local-only).
    from pipeline.images import hub_access

    monkeypatch.setattr(hub_access, "hub_reachable", lambda: True)
    hub = ModelManager(model_id, device="cuda")
    hub._dtype = torch.float16
    assert hub._load_pretrained("hub") == "pipe"
    assert [c.get("variant") for c in calls] == ["fp16", None]
    assert all(c["dtype"] is torch.float16 and c["local_files_only"] is False for c in calls)
    assert all(("safety_checker" in c) is safety_kwargs for c in calls)


# --------------------------------------------------------------------------- sizes and names


def test_generation_size_follows_the_model(manager, monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    turbo = ModelManager()
    assert turbo.model_id == DEFAULT_MODEL_ID and turbo.is_distilled()
    width, height = turbo.generation_size(1280, 720)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width * height - 512 * 512) < 0.05 * 512 * 512
    assert abs(width / height - 16 / 9) < 0.03
    assert ModelManager("stabilityai/sdxl-turbo").generation_size(1024, 1024) == (1024, 1024)
    assert ModelManager("stabilityai/sdxl-turbo").generation_size(1920, 1080) == (1368, 768)
    assert not ModelManager("stable-diffusion-v1-5/stable-diffusion-v1-5").is_distilled()
    # Loaded: the UNet's sample size (8) times the VAE factor (8); never above the output.
    assert manager.generation_size(1280, 720) == (88, 48)
    assert manager.generation_size(40, 24) == (40, 24)
    monkeypatch.setenv(MODEL_ENV_VAR, "my/model-lcm")
    assert ModelManager().model_id == "my/model-lcm" and ModelManager().is_distilled()


# --------------------------------------------------------------------------- CUDA logic, mocked


def test_device_and_dtype_choice(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert ModelManager("x").device == "cuda"
    assert pick_dtype("cuda") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype("cuda:1") is torch.bfloat16
    assert pick_dtype("mps") is torch.float16
    assert pick_dtype("cpu") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert ModelManager("x").device == "mps"
    assert ModelManager("x", device="cpu").device == "cpu"


class FakeVae:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def enable_tiling(self) -> None:
        self.calls.append("tiling")

    def enable_slicing(self) -> None:
        self.calls.append("slicing")


class FakePipe:
    def __init__(self) -> None:
        import torch

        self.components = {"unet": torch.nn.Linear(1000, 1000)}  # 4 MB of weights
        self.vae = FakeVae()
        self.calls: list[tuple] = []

    def to(self, device):
        self.calls.append(("to", device))

    def enable_model_cpu_offload(self, device=None):
        self.calls.append(("offload", device))


@pytest.mark.parametrize("free_mb, offloaded", [(1, True), (40_000, False)])
def test_a_small_gpu_gets_cpu_offload(monkeypatch, free_mb, offloaded):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_mb * 2**20, 80 * 2**30))
    placed = ModelManager("x", device="cuda:1")
    pipe = FakePipe()
    placed._place(pipe, "cuda:1")
    assert placed._offloaded is offloaded
    if offloaded:
        assert pipe.calls == [("offload", "cuda:1")] and pipe.vae.calls == ["tiling", "slicing"]
        assert placed._batch_size_for(request(0)) == 1
    else:
        assert pipe.calls == [("to", "cuda:1")] and pipe.vae.calls == ["slicing"]
        assert placed._batch_size_for(request(0, size=(512, 512))) == 8


def test_memory_estimates():
    gib = 2**30
    assert needs_cpu_offload(weights_bytes=5 * gib, free_bytes=6 * gib)
    assert not needs_cpu_offload(weights_bytes=5 * gib, free_bytes=10 * gib)
    assert auto_batch_size(2 * gib, 512, 512, 0.0) == 1
    assert auto_batch_size(3 * gib, 512, 512, 0.0) == 3
    assert auto_batch_size(3 * gib, 512, 512, 7.5) == 1  # guidance doubles the UNet batch
    assert auto_batch_size(80 * gib, 1024, 1024, 0.0) == 8
    assert ModelManager("x", device="cpu")._batch_size_for(request(0)) == 4
    assert ModelManager("x", device="cpu", batch_size=2)._batch_size_for(request(0)) == 2


# --------------------------------------------------------------------------- several GPUs


def test_get_image_model_uses_every_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(registry_module, "REGISTRY", registry_module.ModelRegistry())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    multi = get_image_model("org/model")
    assert isinstance(multi, MultiDeviceModel) and get_image_model("org/model") is multi
    assert list(multi.managers) == ["cuda:0", "cuda:1"]
    assert multi.managers["cuda:1"] is get_model_manager("org/model", "cuda:1")
    assert not any(m.loaded for m in multi.managers.values())  # nothing is loaded until used
    assert get_image_model("org/model", device="cuda:1") is multi.managers["cuda:1"]


# --------------------------------------------------------------------------- steps and guidance per model


class PlanModel:
    """Just enough of an ImageModel for generation_settings."""

    model_id = "plan-model"

    def __init__(self, distilled: bool) -> None:
        self.distilled = distilled

    def is_distilled(self) -> bool:
        return self.distilled

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return 64, 40


def plan_for(distilled: bool, **board):
    from pipeline import parse_storyboard
    from pipeline.images.plan import generation_settings

    storyboard = parse_storyboard({"scenes": [{"prompt": "a fox", "duration": 1}], **board})
    plan = generation_settings(storyboard, PlanModel(distilled))
    return plan.steps, plan.guidance_scale


@pytest.mark.parametrize("quality", ["draft", "standard", "high", "premium"])
def test_generation_settings_defaults_suit_the_model(quality):
    from pipeline import PRESETS

    steps, guidance = plan_for(True, quality=quality)
    assert 1 <= steps <= 4 and guidance == 0.0
    assert plan_for(False, quality=quality) == (PRESETS[quality].steps_full, 7.5)


def test_generation_settings_follows_the_storyboard_overrides():
    assert plan_for(True, steps=8, guidance_scale=2.5) == (8, 2.5)
    assert plan_for(False, steps=3, guidance_scale=0.0) == (3, 0.0)  # an explicit 0 is not "unset"
    assert plan_for(False, quality="draft", steps=6) == (6, 7.5)
    assert plan_for(True, quality="draft", guidance_scale=1.0) == (1, 1.0)


def write_scheduler(folder: Path, class_name: str) -> Path:
    import json

    (folder / "scheduler").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": class_name}))
    return folder


def test_distilled_models_are_recognised_without_turbo_in_the_name(tmp_path, tiny_model_dir, manager):
    assert is_distilled_model(str(write_scheduler(tmp_path / "my-model", "LCMScheduler")))
    assert is_distilled_model(str(write_scheduler(tmp_path / "other", "TCDScheduler")))
    assert not is_distilled_model(str(write_scheduler(tmp_path / "sd15", "PNDMScheduler")))
    # The tiny model's EulerDiscrete "trailing" schedule is sd-turbo's, but also that of many full
    # models: no signal, so it keeps the full model's defaults (the storyboard can override them).
    assert not is_distilled_model(str(tiny_model_dir)) and not manager.is_distilled()
    titled = write_fake_checkpoint(tmp_path / "model.safetensors", ["x"], {"modelspec.title": "SDXL Turbo 1.0"})
    plain = write_fake_checkpoint(tmp_path / "v1-5.safetensors", ["x"], {"modelspec.title": "Stable Diffusion v1.5"})
    assert ModelManager(str(titled), device="cpu").is_distilled()
    assert not ModelManager(str(plain), device="cpu").is_distilled()
    bare = write_fake_checkpoint(tmp_path / "bare.safetensors", ["x"])
    assert not ModelManager(str(bare), device="cpu").is_distilled()


# --------------------------------------------------------------------------- one .safetensors file, offline

# The original (LDM / A1111) layout of a Stable Diffusion checkpoint, as diffusers' single-file
# converters read it: diffusers name prefix -> original prefix, with renames inside the block.
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_prefixes(config: dict) -> list[tuple[str, str, dict]]:
    per = config["layers_per_block"] + 1  # resnets per down block, plus its downsampler
    pairs = [("time_embedding.linear_1", "time_embed.0", {}), ("time_embedding.linear_2", "time_embed.2", {}),
             ("conv_in", "input_blocks.0.0", {}), ("conv_norm_out", "out.0", {}), ("conv_out", "out.2", {}),
             ("mid_block.resnets.0", "middle_block.0", _UNET_RESNET), ("mid_block.attentions.0", "middle_block.1", {}),
             ("mid_block.resnets.1", "middle_block.2", _UNET_RESNET)]
    for i, up_type in enumerate(config["up_block_types"]):
        for j in range(per - 1):
            pairs += [(f"down_blocks.{i}.resnets.{j}", f"input_blocks.{1 + i * per + j}.0", _UNET_RESNET),
                      (f"down_blocks.{i}.attentions.{j}", f"input_blocks.{1 + i * per + j}.1", {})]
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{i * per + per}.0.op", {}))
        for j in range(per):
            pairs += [(f"up_blocks.{i}.resnets.{j}", f"output_blocks.{i * per + j}.0", _UNET_RESNET),
                      (f"up_blocks.{i}.attentions.{j}", f"output_blocks.{i * per + j}.1", {})]
        slot = 2 if "CrossAttn" in up_type else 1  # the upsampler follows the attention, if any
        pairs.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{i * per + per - 1}.{slot}.conv", {}))
    return pairs


def _vae_prefixes(config: dict) -> list[tuple[str, str, dict]]:
    count = len(config["down_block_types"])
    pairs = []
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.conv_norm_out", f"{part}.norm_out", {}),
                  (f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", _VAE_RESNET),
                  (f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", _VAE_RESNET),
                  (f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", _VAE_ATTENTION)]
    for i in range(count):  # the original decoder numbers its up blocks from the bottom
        pairs += [(f"encoder.down_blocks.{i}.resnets", f"encoder.down.{i}.block", _VAE_RESNET),
                  (f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv", {}),
                  (f"decoder.up_blocks.{i}.resnets", f"decoder.up.{count - 1 - i}.block", _VAE_RESNET),
                  (f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{count - 1 - i}.upsample.conv", {})]
    return pairs


def _original_name(key: str, pairs: list[tuple[str, str, dict]]) -> str:
    for old, new, inner in sorted(pairs, key=lambda pair: -len(pair[0])):
        if key.startswith(old + "."):
            rest = key[len(old) + 1:]
            for name, original in inner.items():
                if rest.startswith(name + "."):
                    rest = original + rest[len(name):]
            return f"{new}.{rest}"
    return key


def write_single_file(folder: Path, target: Path) -> Path:
    """A diffusers SD folder's weights as one original-layout .safetensors checkpoint."""
    import json

    from safetensors.torch import load_file, save_file

    tensors = {}
    parts = (("unet", "model.diffusion_model.", _unet_prefixes), ("vae", "first_stage_model.", _vae_prefixes),
             ("text_encoder", "cond_stage_model.transformer.text_model.", lambda config: []))
    for part, prefix, prefixes in parts:
        pairs = prefixes(json.loads((folder / part / "config.json").read_text()))
        for key, tensor in load_file(str(next((folder / part).glob("*.safetensors")))).items():
            name = _original_name(key, pairs)
            if ".mid.attn_1." in name and name.endswith("weight") and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # the original VAE attention uses 1x1 convolutions
            tensors[prefix + name] = tensor.contiguous()
    save_file(tensors, str(target))
    return target


def copy_configs(folder: Path, target: Path) -> Path:
    """``folder``'s configs and tokenizer, without any weights."""
    import shutil

    return Path(shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin")))


def test_a_single_file_loads_offline_with_its_configs_beside_it(tmp_path, tiny_model_dir, manager):
    checkpoint = write_single_file(tiny_model_dir, tmp_path / "my-model.safetensors")
    without = ModelManager(str(checkpoint), device="cpu", local_files_only=True).generate([request(0)])[0]
    assert without.image is None and "diffusers configs" in without.reason  # says what to add
    copy_configs(tiny_model_dir, tmp_path / "my-model")
    assert single_file_config_dir(str(checkpoint)) == tmp_path / "my-model"
    single = ModelManager(str(checkpoint), device="cpu")  # not even local_files_only: nothing is fetched
    assert model_source(single.model_id) == "single_file"
    got = single.generate([request(0, seed=7)])[0]
    want = manager.generate([request(0, seed=7)])[0]
    assert single.info().state == "loaded"
    assert np.array_equal(pixels(got), pixels(want))  # the same weights, converted back by diffusers


def test_a_single_file_inside_a_diffusers_folder_uses_that_folder(tmp_path, tiny_model_dir):
    snapshot = copy_configs(tiny_model_dir, tmp_path / "snapshot")
    checkpoint = write_fake_checkpoint(snapshot / "sd_turbo.safetensors", ["x"])
    assert single_file_config_dir(str(checkpoint)) == snapshot
    assert single_file_config_dir(str(write_fake_checkpoint(tmp_path / "lone.safetensors", ["x"]))) is None


# --------------------------------------------------------------------------- one load across renders


def test_two_renders_through_one_pool_load_the_model_once(tmp_path, tiny_model_dir, monkeypatch):
    from diffusers import AutoPipelineForText2Image

    from pipeline import Settings, parse_storyboard
    from pipeline.service import RendererPool

    original = AutoPipelineForText2Image.from_pretrained
    loads: list[str] = []
    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained",
                        classmethod(lambda cls, *a, **kw: loads.append(str(a[0])) or original(*a, **kw)))
    monkeypatch.setattr(registry_module, "REGISTRY", registry_module.ModelRegistry())
    pool = RendererPool(Settings(model=str(tiny_model_dir), device="cpu", output_dir=tmp_path / "out",
                                 cache_dir=tmp_path / "cache"))
    for prompt in ("a lighthouse", "a harbour"):  # different prompts: no keyframe comes from the cache
        board = parse_storyboard({"scenes": [{"prompt": prompt, "duration": 0.5}], "quality": "draft", "fps": 4,
                                  "transition": "cut", "steps": 1})
        done = list(pool.get(None).render(board))[-1]
        assert [s.source for s in done.report.scenes] == ["ai"], done
    assert loads == [str(tiny_model_dir)]

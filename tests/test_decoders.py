"""The decoder setting: full VAE, tiny autoencoder (AutoencoderTiny) or auto, end to end on the tiny model.

The tiny decoder here is a random ``AutoencoderTiny`` built in code and saved beside the tiny
model (``tiny_decoder_dir``); the hub's taesd is unreachable in tests, which is the fallback case.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keyframe_requests import request

from pipeline import ConfigError, Done, KeyframeReady, Renderer, StoryboardError, parse_storyboard
from pipeline.contract.settings import add_settings_arguments, settings_from_args, settings_from_env
from pipeline.images.cache import KeyframeCache
from pipeline.images.decoders import TinyDecoder, wanted_decoder
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.slots import ImageSlots
from pipeline.images.stage import ImageStage
from pipeline.images.model_names import known_tiny_decoder, pipeline_family


@pytest.fixture(scope="module")
def manager(tiny_model_dir: Path, tiny_decoder_dir: Path) -> ModelManager:
    """The tiny model with its tiny decoder beside it, on the CPU, decoder setting ``auto``."""
    loaded = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True, tiny_decoder=str(tiny_decoder_dir))
    assert loaded.load() and loaded.tiny_vae is not None, loaded.info()
    return loaded


def spy_on_tiny(monkeypatch, manager: ModelManager) -> list[tuple[int, ...]]:
    """Record the latent shape of every call of the tiny decoder's network (calls go through)."""
    shapes: list[tuple[int, ...]] = []
    network = manager.tiny_vae.decoder
    original = network.forward

    def recorded(x, *args, **kwargs):
        shapes.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(network, "forward", recorded)
    return shapes


def keyframes(model, tmp_path: Path, **board) -> list[tuple[KeyframeReady, np.ndarray]]:
    """Run the keyframe stage for a one-scene storyboard; each KeyframeReady with its pixels."""
    storyboard = parse_storyboard({"scenes": [{"prompt": "a lighthouse at dusk", "duration": 1, "seed": 3}],
                                   "steps": 2, **board})
    work = tmp_path / f"work-{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    out = []
    cancel = threading.Event()
    for event in ImageStage(model).run(storyboard, work, ImageSlots(cancel), cancel, lambda event: None):
        if isinstance(event, KeyframeReady):
            with Image.open(event.path) as image:
                out.append((event, np.asarray(image.convert("RGB")).astype(np.int16)))
    return out


# --------------------------------------------------------------------------- choosing


@pytest.mark.parametrize("choice, quality, device, expected", [
    ("auto", "draft", "cuda", "tiny"), ("auto", "standard", "cuda", "full"), ("auto", "premium", "mps", "full"),
    ("auto", "standard", "cpu", "tiny"), ("auto", "high", "cpu", "tiny"), ("", "draft", "cuda:1", "tiny"),
    ("full", "draft", "cpu", "full"), ("tiny", "premium", "cuda", "tiny"), ("TINY ", "high", "cuda", "tiny"),
])
def test_auto_is_tiny_for_drafts_and_on_a_cpu(choice, quality, device, expected):
    assert wanted_decoder(choice, quality, device) == expected


def test_known_tiny_decoders_by_family():
    assert known_tiny_decoder("StableDiffusionPipeline") == "madebyollin/taesd"
    assert known_tiny_decoder("LatentConsistencyModelPipeline") == "madebyollin/taesd"
    assert known_tiny_decoder("StableDiffusionXLPipeline") == "madebyollin/taesdxl"
    assert pipeline_family("StableDiffusion3Pipeline") is None and known_tiny_decoder("FluxPipeline") is None


def test_the_decoder_setting_by_flag_env_and_storyboard():
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    assert settings_from_env({}).decoder == "auto" and settings_from_env({}).tiny_decoder is None
    env = {"SCENE2VIDEO_DECODER": "Full", "SCENE2VIDEO_TINY_DECODER": "/models/taesd"}
    assert (settings_from_env(env).decoder, settings_from_env(env).tiny_decoder) == ("full", "/models/taesd")
    flags = settings_from_args(parser.parse_args(["--decoder", "tiny", "--tiny-decoder", "org/taesd"]), env)
    assert (flags.decoder, flags.tiny_decoder) == ("tiny", "org/taesd")
    with pytest.raises(ConfigError, match="decoder must be one of auto, full, tiny"):
        settings_from_env({"SCENE2VIDEO_DECODER": "fast"})
    scenes = [{"prompt": "x", "duration": 1}]
    assert parse_storyboard({"scenes": scenes}).decoder is None  # blank: the server's setting
    board = parse_storyboard({"scenes": scenes, "decoder": "Tiny"})
    assert board.decoder == "tiny" and parse_storyboard(board.to_json()) == board
    with pytest.raises(StoryboardError, match="Storyboard: decoder 'vae' is not allowed; choose one of auto, full"):
        parse_storyboard({"scenes": scenes, "decoder": "vae"})


# --------------------------------------------------------------------------- decoding


def test_tiny_and_auto_at_draft_use_the_tiny_decoder_and_full_does_not(manager, tmp_path, monkeypatch):
    calls = spy_on_tiny(monkeypatch, manager)
    [(full_event, full)] = keyframes(manager, tmp_path, quality="draft", decoder="full")
    # The tiny decoder, once loaded, draws the two step previews; the keyframe itself is the full VAE's.
    assert len(calls) == 2 and full_event.decoder == "full" and full_event.source == "ai"
    for board in ({"quality": "draft"}, {"quality": "draft", "decoder": "auto"}, {"quality": "high", "decoder": "tiny"}):
        calls.clear()
        [(event, tiny)] = keyframes(manager, tmp_path, **board)
        assert event.decoder == "tiny" and event.source == "ai", board
        # One call per step (the previews, pooled) plus the final decode of the full-size latents.
        assert calls == [(1, 4, 3, 5)] * 2 + [(1, 4, 6, 11)], (board, calls)
        assert tiny.shape == full.shape and np.abs(tiny - full).mean() > 5  # a different decoder's picture


def test_a_batch_decodes_as_one_image_at_a_time(manager, monkeypatch):
    requests = [replace(request(i), decoder="tiny") for i in range(3)]
    batched = manager.generate(requests)
    monkeypatch.setattr(manager, "batch_size", 1)
    single = manager.generate(requests)
    for a, b in zip(batched, single):
        assert a.decoder == b.decoder == "tiny"
        assert np.abs(np.asarray(a.image).astype(np.int16) - np.asarray(b.image)).max() <= 1


def test_step_previews_are_decoded_by_the_tiny_decoder(manager, monkeypatch):
    calls = spy_on_tiny(monkeypatch, manager)
    previews: list[list[Image.Image]] = []
    manager.generate([request(0, steps=3), request(1, steps=3)], on_step=lambda *args: previews.append(args[3]))
    # 8x8 latents (64 px) pooled by 2: 32 px pictures, not the 8 px latent approximations.
    assert [[p.size for p in step] for step in previews] == [[(32, 32), (32, 32)]] * 3
    assert calls == [(2, 4, 4, 4)] * 3  # only the previews: the final decode was the full VAE's
    assert np.asarray(previews[-1][0]).std() > 1  # a picture, not a flat colour


def test_previews_of_large_latents_are_pooled(manager):
    import torch

    previews = TinyDecoder(None)
    previews.vae = manager.tiny_vae
    assert [p.size for p in previews.previews(torch.randn(1, 4, 64, 40))] == [(104, 168)]  # by 3, to 21x13
    assert [p.size for p in previews.previews(torch.randn(2, 4, 200, 96))] == [(80, 176)] * 2  # by 9, to 22x10
    assert [p.size for p in previews.previews(torch.randn(1, 4, 1, 9))] == [(72, 8)]  # not pooled below one latent


def test_without_the_tiny_decoder_the_full_vae_is_used_and_the_model_line_says_why(tiny_model_dir, tmp_path):
    missing = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True,
                           tiny_decoder=str(tmp_path / "no-such-taesd"))
    assert missing.load() and missing.tiny_vae is None
    assert "could not be loaded (offline or not found)" in missing.info().decoder
    assert missing.decoder_for("tiny", "draft") == "full" and missing.decoder_for(None, "draft") == "full"
    [(event, _)] = keyframes(missing, tmp_path, quality="draft")
    assert event.decoder == "full" and event.source == "ai"
    # A request that still asks for tiny gets the full VAE, and says so.
    [result] = missing.generate([replace(request(0), decoder="tiny")])
    assert result.image is not None and result.decoder == "full"
    # The known id for an SD pipeline, offline: the same fallback, naming the id.
    offline = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert offline.load() and offline.decoder_for("tiny", "draft") == "full"
    assert "madebyollin/taesd" in offline.info().decoder


def test_full_setting_loads_no_tiny_decoder_until_a_storyboard_asks(tiny_model_dir, tiny_decoder_dir):
    lazy = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True, decoder="full",
                        tiny_decoder=str(tiny_decoder_dir))
    assert lazy.load() and lazy.tiny_vae is None and lazy.info().decoder == "full VAE"
    assert lazy.decoder_for(None, "draft") == "full"
    assert lazy.decoder_for("tiny", "standard") == "tiny" and lazy.tiny_vae is not None
    assert TinyDecoder(None).describe() == "tiny decoder not loaded"


def test_the_report_and_the_cache_key_say_which_decoder_made_each_scene(manager, tmp_path):
    renderer = Renderer(tmp_path / "out", model=manager, cache=KeyframeCache(tmp_path / "cache"))

    def render(**board) -> list[tuple[str, str]]:
        storyboard = parse_storyboard({"scenes": [{"prompt": "a fox", "duration": 0.5, "seed": 4}], "fps": 4,
                                       "quality": "draft", "steps": 1, "transition": "cut", **board})
        done = list(renderer.render(storyboard))[-1]
        assert isinstance(done, Done), done
        return [(scene["source"], scene["decoder"]) for scene in done.report.to_dict()["scenes"]]

    assert render() == [("ai", "tiny")]
    assert render() == [("cache", "tiny")]
    assert render(decoder="full") == [("ai", "full")]  # another key: not the tiny decoder's cached picture
    assert render(decoder="full") == [("cache", "full")]
    assert render(use_ai=False) == [("placeholder", "")]


def test_the_page_model_line_names_the_decoder_and_why_it_is_the_full_vae(tiny_model_dir, tmp_path):
    from pipeline.contract.settings import Settings
    from pipeline.service import RendererPool

    settings = Settings(model=str(tiny_model_dir), device="cpu", output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", tiny_decoder=str(tmp_path / "no-such-taesd"))
    pool = RendererPool(settings)
    pool.preload()
    import ui.layout

    _, handlers = ui.layout.build_page(pool)
    line, _timer = handlers.model_line(None)
    assert "loaded (cpu, float32)" in line and " · **decoder:** auto: full VAE only: tiny decoder" in line
    assert "could not be loaded (offline or not found)" in line

"""Scenes that belong together: style text, chained look, reference image, ControlNet layout guidance.

The plan and the stage are tested with a recording stand-in; what the pictures do is tested
with the tiny random diffusers model (and a tiny random ControlNet) built in code.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import KeyframeReady, Preview, Renderer, StoryboardError, parse_storyboard
from pipeline.contract.reference import resolve_reference, with_uploaded_reference
from pipeline.images.cache import KeyframeCache
from pipeline.images.generation import GeneratedImage
from pipeline.images.look import canny_edges, lab_statistics, match_colors
from pipeline.images.plan import plan_images
from pipeline.images.slots import ImageSlots
from pipeline.images.stage import ImageStage
from stand_in_model import StandInModel


def storyboard(prompts, **board):
    scenes = [{"prompt": p, "duration": 0.5, "seed": i + 1} for i, p in enumerate(prompts)]
    return parse_storyboard({"scenes": scenes, "quality": "draft", "fps": 4, "transition": "cut", "steps": 2,
                             **board})


def reference_file(folder: Path, name: str = "ref.png") -> Path:
    """A 96x64 picture with a bright diagonal band and a dark square: clear edges, clear colours."""
    y, x = np.mgrid[0:64, 0:96]
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[..., 0] = np.where(abs(x - y) < 12, 230, 40)
    pixels[..., 2] = np.where((20 < x) & (x < 50) & (30 < y) & (y < 56), 20, 180)
    path = folder / name
    Image.fromarray(pixels).save(path)
    return path


class Recorder(StandInModel):
    """Draws a flat colour from the seed and the start picture's mean; records each call's requests."""

    model_id = "recorder"

    def __init__(self, fail_prompts=()):
        self.calls: list[list] = []
        self.fail_prompts = set(fail_prompts)

    def generate(self, requests, on_step=None, should_stop=None):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            if r.prompt in self.fail_prompts:
                out.append(GeneratedImage(r.scene_index, None, "generation failed: boom"))
                continue
            start = r.pictures.init if r.pictures is not None and r.pictures.init is not None else None
            base = np.asarray(start).mean(axis=(0, 1)) if start is not None else np.zeros(3)
            colour = tuple(int(v) for v in (base * 0.5 + (r.seed * 37 % 256, 90, 140)) % 256)
            out.append(GeneratedImage(r.scene_index, Image.new("RGB", (r.width, r.height), colour)))
        return out


def run_stage(stage: ImageStage, board, folder: Path) -> tuple[dict[int, KeyframeReady], list]:
    """Run the image stage alone; its KeyframeReady by scene, and everything emitted."""
    folder.mkdir(parents=True, exist_ok=True)
    cancel = threading.Event()
    emitted: list = []
    ready = {e.scene_index: e for e in stage.run(board, folder, ImageSlots(cancel), cancel, emitted.append)
             if isinstance(e, KeyframeReady)}
    return ready, emitted


def pixels_of(ready: KeyframeReady) -> np.ndarray:
    with Image.open(ready.path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


# --------------------------------------------------------------------------- storyboard and plan


def test_the_new_fields_have_defaults_and_limits():
    board = storyboard(["a"])
    assert (board.style, board.look, board.look_strength, board.reference_image, board.reference_scenes) == (
        "", "independent", 0.6, None, "first")
    assert parse_storyboard(board.to_dict()) == board
    with pytest.raises(StoryboardError, match="look 'sideways' is not allowed; choose one of independent, chained"):
        storyboard(["a"], look="sideways")
    with pytest.raises(StoryboardError, match="look_strength must be between 0 and 1"):
        storyboard(["a"], look_strength=1.5)


def test_style_is_added_to_every_prompt_and_negative_prompt():
    board = storyboard(["a fox", "a bear"], style="watercolor, soft light", style_negative="text")
    plan = plan_images(board, Recorder())
    assert [r.prompt for r in plan.requests] == ["a fox, watercolor, soft light", "a bear, watercolor, soft light"]
    assert [r.negative_prompt for r in plan.requests] == ["text", "text"]


def test_chained_scenes_depend_on_the_previous_one():
    plan = plan_images(storyboard(["a", "b", "c"], look="chained", look_strength=0.4), Recorder())
    assert [r.depends_on for r in plan.requests] == [(), ("scene-1",), ("scene-2",)]
    assert [r.init.request_id if r.init else None for r in plan.requests] == [None, "scene-1", "scene-2"]
    assert plan.requests[1].init.strength == 0.4
    assert [r.made_from() for r in plan.requests] == [("text",), ("text", "previous scene"), ("text", "previous scene")]
    independent = plan_images(storyboard(["a", "b", "c"]), Recorder())
    assert all(r.depends_on == () and r.init is None for r in independent.requests)


def test_chained_cache_keys_change_from_the_edited_scene_on():
    def keys(prompts, look):
        return list(plan_images(storyboard(prompts, look=look), Recorder()).cache_keys("m").values())

    before, after = keys(["a", "b", "c"], "chained"), keys(["a", "B", "c"], "chained")
    assert [x == y for x, y in zip(before, after)] == [True, False, False]
    before, after = keys(["a", "b", "c"], "independent"), keys(["a", "B", "c"], "independent")
    assert [x == y for x, y in zip(before, after)] == [True, False, True]


def test_a_morph_between_chained_scenes_walks_between_them_without_a_start_picture(tmp_path):
    board = resolve_reference(storyboard(["a", "b"], look="chained", transition="morph", transition_duration=1.0,
                                         reference_image=str(reference_file(tmp_path))))
    board = replace(board, scenes=tuple(replace(s, duration=2.0) for s in board.scenes))
    plan = plan_images(board, Recorder(), controlnet="org/canny")
    inbetweens = [r for r in plan.requests if r.kind == "inbetween"]
    assert inbetweens and all(r.init is None and r.control is None and not r.guided for r in inbetweens)
    assert plan.requests[1].made_from() == ("text", "previous scene", "control image")


@pytest.mark.parametrize("scenes, look, expected", [
    ("first", "independent", ["reference image", None, None]),
    ("every", "independent", ["reference image", "reference image", "reference image"]),
    ("every", "chained", ["reference image", "previous scene", "previous scene"]),
])
def test_the_reference_image_starts_scene_one_or_every_scene(tmp_path, scenes, look, expected):
    board = resolve_reference(storyboard(["a", "b", "c"], reference_image=str(reference_file(tmp_path)),
                                         reference_scenes=scenes, look=look))
    plan = plan_images(board, Recorder())
    assert [r.made_from()[1] if len(r.made_from()) > 1 else None for r in plan.requests] == expected
    assert all(r.control is None for r in plan.requests)  # no ControlNet on this server


def test_a_controlnet_guides_every_scene_only_with_a_reference_image(tmp_path):
    with_reference = resolve_reference(storyboard(["a", "b"], reference_image=str(reference_file(tmp_path))))
    plan = plan_images(with_reference, Recorder(), controlnet="org/canny")
    assert [r.made_from() for r in plan.requests] == [("text", "reference image", "control image"),
                                                      ("text", "control image")]
    assert plan_images(with_reference, Recorder(), controlnet="org/other").cache_keys("m") != plan.cache_keys("m")
    assert all(r.control is None for r in plan_images(storyboard(["a"]), Recorder(), "org/canny").requests)


def test_a_missing_or_unreadable_reference_image_names_the_field(tmp_path):
    with pytest.raises(StoryboardError) as missing:
        resolve_reference(storyboard(["a"], reference_image="nowhere/ref.png"), tmp_path)
    assert str(missing.value) == "Storyboard: reference_image 'ref.png' was not found."
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(StoryboardError) as unreadable:
        resolve_reference(storyboard(["a"], reference_image="notes.png"), tmp_path)
    assert str(unreadable.value).startswith("Storyboard: reference_image 'notes.png' is not a picture")
    assert str(tmp_path) not in str(missing.value) + str(unreadable.value)  # no server folder in the message


def test_the_page_and_api_take_an_upload_never_a_server_path(tmp_path):
    upload = reference_file(tmp_path)
    with pytest.raises(StoryboardError, match="reference_image must be uploaded"):
        with_uploaded_reference(storyboard(["a"], reference_image="/etc/hostname"), None)
    board = with_uploaded_reference(storyboard(["a"], reference_image="ref.png"), upload)
    assert board.reference_image == str(upload.resolve())
    assert with_uploaded_reference(storyboard(["a"]), None).reference_image is None


def test_a_reference_path_that_did_not_pass_the_door_is_never_read(tmp_path):
    from pipeline import Failed

    secret = reference_file(tmp_path, "server_file.png")  # a picture on the server, named in typed JSON
    board = storyboard(["a"], reference_image=str(secret))
    model = Recorder()
    events = list(Renderer(tmp_path / "out", model=model).render(board))
    assert isinstance(events[-1], Failed) and model.calls == []
    assert events[-1].message == "Storyboard: reference_image must be uploaded as a file here; a path on the " \
                                 "server is not accepted."


def test_the_cli_reads_the_reference_next_to_the_storyboard_file(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    folder = tmp_path / "story"
    folder.mkdir()
    reference_file(folder, "look.png")
    board = {"scenes": [{"prompt": "a", "duration": 0.5}], "quality": "draft", "fps": 4, "use_ai": False,
             "reference_image": "look.png"}
    (folder / "sb.json").write_text(json.dumps(board))
    monkeypatch.chdir(tmp_path)  # not the storyboard's folder
    args = ["render", str(folder / "sb.json"), "-o", str(tmp_path / "o.mp4"), "--quiet", "--cache-dir",
            str(tmp_path / "c")]
    assert main(args) == 0
    (folder / "sb.json").write_text(json.dumps({**board, "reference_image": "gone.png"}))
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == "error: Storyboard: reference_image 'gone.png' was not found."


def test_the_look_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, pipeline.images.look, pipeline.images.img2img_generation, pipeline.contract.reference; "
            "print('torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- the stage, with a stand-in


def test_chained_scenes_run_in_order_from_the_previous_image_and_independent_ones_batch(tmp_path):
    model = Recorder()
    ready, _ = run_stage(ImageStage(model, color_match=False), storyboard(["a", "b", "c"], look="chained"),
                         tmp_path / "chained")
    assert [[r.id for r in call] for call in model.calls] == [["scene-1"], ["scene-2"], ["scene-3"]]
    first = Image.open(ready[0].path)
    assert np.array_equal(np.asarray(model.calls[1][0].pictures.init), np.asarray(first))
    assert [ready[i].made_from for i in range(3)] == [("text",), ("text", "previous scene"), ("text", "previous scene")]
    model = Recorder()
    run_stage(ImageStage(model), storyboard(["a", "b", "c"]), tmp_path / "independent")
    assert [[r.id for r in call] for call in model.calls] == [["scene-1"], ["scene-2", "scene-3"]]


def test_chained_cache_regenerates_the_edited_scene_and_those_after_it(tmp_path):
    model = Recorder()
    renderer = Renderer(tmp_path / "out", model=model, cache=KeyframeCache(tmp_path / "cache"))
    list(renderer.render(storyboard(["a", "b", "c"], look="chained")))
    model.calls.clear()
    done = list(renderer.render(storyboard(["a", "B", "c"], look="chained")))[-1]
    assert [r.prompt for call in model.calls for r in call] == ["B", "c"]
    assert [s.source for s in done.report.scenes] == ["cache", "ai", "ai"]
    assert done.report.to_dict()["scenes"][1]["made_from"] == ["text", "previous scene"]


def test_a_chain_after_a_placeholder_goes_on_from_text_and_is_not_cached(tmp_path):
    model = Recorder(fail_prompts={"b"})
    cache = KeyframeCache(tmp_path / "cache")
    ready, _ = run_stage(ImageStage(model, cache), storyboard(["a", "b", "c", "d"], look="chained"), tmp_path / "r")
    assert [ready[i].source for i in range(4)] == ["ai", "placeholder", "ai", "ai"]
    assert ready[2].made_from == ("text",) and ready[3].made_from == ("text", "previous scene")
    assert model.calls[2][0].pictures is None or model.calls[2][0].pictures.init is None
    model.fail_prompts.clear()
    ready, _ = run_stage(ImageStage(model, cache), storyboard(["a", "b", "c", "d"], look="chained"), tmp_path / "r2")
    assert [ready[i].source for i in range(4)] == ["cache", "ai", "ai", "ai"]


def test_color_matching_pulls_a_picture_to_the_target_colours():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    target = Image.fromarray((rng.random((48, 64, 3)) * [255, 90, 40]).astype(np.uint8))
    matched = match_colors(image, target)
    assert matched.size == image.size
    gap = lambda a, b: np.abs(lab_statistics(a)[0] - lab_statistics(b)[0]).sum()  # noqa: E731
    assert gap(matched, target) < 0.2 * gap(image, target)
    edges = np.asarray(canny_edges(target, 32, 24))
    assert edges.shape == (24, 32, 3) and set(np.unique(edges)) <= {0, 255}


# --------------------------------------------------------------------------- the tiny diffusers model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from pipeline.images.diffusers_backend import ModelManager

    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert manager.load(), manager.info()
    return manager


@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory) -> str:
    from tiny_model import build_tiny_controlnet

    return str(build_tiny_controlnet(tmp_path_factory.mktemp("tiny_controlnet")))


def test_in_a_chain_changing_scene_one_changes_scene_two_and_independent_scenes_do_not(tiny, tmp_path):
    def second_keyframe(first_prompt, look, name):
        board = storyboard([first_prompt, "the same second scene"], look=look, look_strength=0.5)
        ready, emitted = run_stage(ImageStage(tiny), board, tmp_path / name)
        assert [ready[i].source for i in range(2)] == ["ai", "ai"], ready
        return pixels_of(ready[1]), emitted

    chained_a, emitted = second_keyframe("a red fox", "chained", "ca")
    chained_b, _ = second_keyframe("a blue whale", "chained", "cb")
    assert np.abs(chained_a - chained_b).mean() > 1.0
    assert any(isinstance(e, Preview) and e.scene_index == 1 for e in emitted)  # chained scenes still preview
    independent_a, _ = second_keyframe("a red fox", "independent", "ia")
    independent_b, _ = second_keyframe("a blue whale", "independent", "ib")
    assert np.array_equal(independent_a, independent_b)
    chained_again, _ = second_keyframe("a red fox", "chained", "ca2")
    assert np.array_equal(chained_a, chained_again)  # reproducible


def test_image_to_image_shares_the_resident_weights(tiny):
    from pipeline.images.img2img_generation import guided_pipeline

    img2img = guided_pipeline(tiny, image_to_image=True)
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert img2img.unet is tiny.pipeline.unet and img2img.vae is tiny.pipeline.vae  # no second load
    assert guided_pipeline(tiny, image_to_image=True) is img2img  # built once


def test_unloading_the_model_frees_its_guided_pipelines(tiny_model_dir, tiny_controlnet):
    import gc

    from pipeline.images import img2img_generation
    from pipeline.images.diffusers_backend import ModelManager

    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert manager.load()
    img2img_generation.guided_pipeline(manager, image_to_image=False, controlnet=tiny_controlnet)
    assert manager.pipeline in img2img_generation._BUILT
    before = len(img2img_generation._BUILT)
    manager.reset()  # what the registry does when another model is picked
    gc.collect()
    assert len(img2img_generation._BUILT) == before - 1


def test_strength_zero_keeps_the_start_picture(tiny):
    from keyframe_requests import request

    from pipeline.images.generation import InitImage, Pictures

    start = Image.new("RGB", (64, 64), (10, 200, 30))
    guided = replace(request(0), init=InitImage(0.0, path="ref.png", digest="d"), pictures=Pictures(init=start))
    result = tiny.generate([guided])[0]
    assert np.array_equal(np.asarray(result.image), np.asarray(start))


def test_turbo_steps_are_raised_so_a_low_strength_still_runs_a_step():
    from pipeline.images.img2img_generation import steps_for_strength

    assert steps_for_strength(1, 0.5) == 2 and steps_for_strength(2, 0.5) == 2 and steps_for_strength(4, 0.2) == 5
    assert all(int(steps_for_strength(1, s) * s) >= 1 for s in np.linspace(0.01, 1.0, 100))


def test_colour_matching_keeps_a_ten_scene_chain_near_scene_one(tiny, tmp_path):
    board = storyboard([f"scene {i} of a long walk" for i in range(10)], look="chained", look_strength=0.7)

    def drift(color_match: bool) -> float:
        ready, _ = run_stage(ImageStage(tiny, color_match=color_match), board, tmp_path / str(color_match))
        first, last = (Image.open(ready[i].path) for i in (0, 9))
        return float(np.linalg.norm(lab_statistics(last)[0] - lab_statistics(first)[0]))

    with_matching, without = drift(True), drift(False)
    print(f"mean Lab distance of scene 10 from scene 1: {with_matching:.2f} matched, {without:.2f} not")
    assert with_matching < without
    assert with_matching < 2.0, (with_matching, without)


def test_the_reference_and_control_images_change_the_output_reproducibly(tiny, tiny_controlnet, tmp_path):
    plain = storyboard(["a lighthouse at dusk"])
    guided = resolve_reference(replace(plain, reference_image=str(reference_file(tmp_path))))

    def keyframe(board, name, controlnet=""):
        ready, _ = run_stage(ImageStage(tiny, controlnet=controlnet), board, tmp_path / name)
        assert ready[0].source == "ai", ready[0].reason
        return pixels_of(ready[0]), ready[0].made_from

    text_only, made = keyframe(plain, "plain")
    assert made == ("text",)
    from_reference, made = keyframe(guided, "ref")
    assert made == ("text", "reference image") and np.abs(from_reference - text_only).mean() > 1.0
    controlled, made = keyframe(guided, "control", tiny_controlnet)
    assert made == ("text", "reference image", "control image")
    assert np.abs(controlled - from_reference).mean() > 1.0
    assert np.array_equal(keyframe(guided, "control-again", tiny_controlnet)[0], controlled)  # reproducible


def test_the_control_image_alone_steers_a_scene_made_from_text(tiny, tiny_controlnet, tmp_path):
    prompts = ["a lighthouse at dusk", "a harbour at night"]
    guided = resolve_reference(storyboard(prompts, reference_image=str(reference_file(tmp_path))))
    ready, _ = run_stage(ImageStage(tiny, controlnet=tiny_controlnet), guided, tmp_path / "guided")
    plain, _ = run_stage(ImageStage(tiny), storyboard(prompts), tmp_path / "plain")
    assert ready[1].made_from == ("text", "control image") and ready[1].source == "ai"
    assert np.abs(pixels_of(ready[1]) - pixels_of(plain[1])).mean() > 1.0


# --------------------------------------------------------------------------- the API


def test_the_api_takes_a_reference_image_file_and_refuses_server_paths(tmp_path):
    from gradio_client import Client, handle_file
    from server import app_settings, running_app

    board = {"scenes": [{"prompt": "x", "duration": 0.5}], "use_ai": False, "quality": "draft", "fps": 4}
    with running_app(app_settings(tmp_path)) as (url, _pool):
        client = Client(url, verbose=False)
        _, report = client.predict(json.dumps(board), reference_image=handle_file(str(reference_file(tmp_path))),
                                   api_name="/render")
        assert report["frames"] == 2
        _, report = client.predict(json.dumps(board), api_name="/render")  # the file is optional
        assert report["frames"] == 2
        with pytest.raises(Exception, match="reference_image must be uploaded as a file here"):
            client.predict(json.dumps({**board, "reference_image": "/etc/hostname"}), api_name="/render")
        (tmp_path / "bad.png").write_text("not a picture")
        with pytest.raises(Exception, match="reference_image 'bad.png' is not a picture"):
            client.predict(json.dumps(board), reference_image=handle_file(str(tmp_path / "bad.png")),
                           api_name="/render")


def test_the_controlnet_setting_reaches_the_render_and_the_report(tmp_path, tiny_model_dir, tiny_controlnet):
    from pipeline.cli import main

    reference_file(tmp_path, "look.png")
    board = {"scenes": [{"prompt": "a fox", "duration": 0.5, "seed": 3}, {"prompt": "a den", "duration": 0.5}],
             "quality": "draft", "fps": 4, "transition": "cut", "steps": 1, "look": "chained",
             "look_strength": 0.5, "style": "ink drawing", "reference_image": "look.png"}
    (tmp_path / "sb.json").write_text(json.dumps(board))
    code = main(["render", str(tmp_path / "sb.json"), "-o", str(tmp_path / "o.mp4"), "--report",
                 str(tmp_path / "r.json"), "--cache-dir", str(tmp_path / "c"), "--device", "cpu", "--quiet",
                 "--model", str(tiny_model_dir), "--controlnet-model", tiny_controlnet])
    assert code == 0
    scenes = json.loads((tmp_path / "r.json").read_text())["scenes"]
    assert [s["source"] for s in scenes] == ["ai", "ai"], scenes
    assert [s["made_from"] for s in scenes] == [["text", "reference image", "control image"],
                                                ["text", "previous scene", "control image"]]

"""The real server, called the way API users call it: gradio_client and an MCP client against /render;
the page's own render view (ui.render_view.PageRender) fed by a real render."""

import json
import logging
import re
import time

import pytest
from gradio_client import Client
from gradio_client.utils import Status

from pathlib import Path

from media import moov_before_mdat, probe
from pipeline import Progress, parse_storyboard
from server import (app_settings, assert_stopped, counting_unet_calls, ffmpeg_children, path_without,
                    render_folders, running_app, wait_until)

STORYBOARD = {
    "scenes": [{"prompt": "a lighthouse at dusk", "duration": 1.0}, {"prompt": "waves on rocks", "duration": 1.0}],
    "quality": "draft", "transition": "crossfade", "transition_duration": 0.4, "fps": 12,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("app")
    settings = app_settings(tmp, model=str(tiny_model_dir))
    with running_app(settings, mcp_server=True) as (url, pool):
        yield url, pool


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


def test_render_endpoint_returns_mp4_and_report(client):
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    info = probe(video)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frames) == ("h264", "yuv420p", 854, 480, 24)
    assert moov_before_mdat(video)
    assert report["frames"] == 24 and report["width"] == 854
    assert [scene["source"] for scene in report["scenes"]] in (["ai", "ai"], ["cache", "cache"], ["ai", "cache"])


def test_render_endpoint_and_page_make_a_morph(client, app):
    morph = dict(STORYBOARD, transition="morph", transition_duration=1.0, morph_frames=3, morph_ease=False)
    video, report = client.predict(json.dumps(morph), api_name="/render")
    assert probe(video).frames == 24
    (transition,) = report["transitions"]
    assert (transition["kind"], transition["made"], transition["generated"]) == ("morph", "generated", 3)
    # The page offers it too: the transition dropdown and a widget for each morph field, by name.
    import ui.layout

    _, handlers = ui.layout.build_page(app[1])
    widgets = handlers.form.widgets
    assert "morph" in [choice for choice, _ in widgets["transition"].choices]
    board = parse_storyboard(morph)
    assert handlers.storyboard(handlers.show(board)) == board.with_changes(model=app[1].settings.model)
    updates = list(page_outputs().updates(app[1].get().render(board)))
    page_report = next(value(out["report"]) for out in updates if "report" in out and value(out["report"]))
    assert [(t["made"], t["generated"]) for t in page_report["transitions"]] == [("generated", 3)]


def test_render_endpoint_rejects_bad_storyboard_with_the_field(client, capfd, caplog):
    bad = dict(STORYBOARD, scenes=[{"prompt": "ok", "duration": 1}, {"prompt": "too long", "duration": 500}])
    capfd.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(Exception) as info:
        client.predict(json.dumps(bad), api_name="/render")
    assert "Scene 2: duration must be between 0.5 and 60 seconds" in str(info.value)
    # Issue 26: each refusal printed a 38-line traceback; now one line in the log (the traceback at debug).
    assert "Traceback" not in capfd.readouterr().err
    refused = [r.getMessage() for r in caplog.records if r.name == "ui.handlers" and r.levelno == logging.INFO]
    assert refused == ["Refused a /render request: Scene 2: duration must be between 0.5 and 60 seconds (got 500)."]


def test_the_api_is_render_alone_typed_and_documented(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(endpoints) == ["/render"], "the page's own events are not a public API"
    render = endpoints["/render"]
    assert [p["parameter_name"] for p in render["parameters"]] == ["storyboard_json", "audio",
                                                                            "reference_image", "source_video"]
    assert render["parameters"][0]["type"]["type"] == "string"
    assert render["returns"][0]["python_type"]["type"] == "filepath" and "storyboard" in render["description"]
    # Written from the field descriptions (issue 26: morph, morph_frames and decoder were missing).
    from pipeline.contract.fields import BOARD_FIELDS, SCENE_FIELDS, TRANSITIONS

    for spec in (*SCENE_FIELDS, *BOARD_FIELDS):
        assert f'"{spec.name}"' in render["description"], spec.name
    assert f"({', '.join(TRANSITIONS)})" in render["description"] and "morph" in TRANSITIONS
    assert '"decoder" (auto, full, tiny)' in render["description"]


def test_an_mcp_client_lists_render_and_calls_it(app):
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def call() -> tuple:
        async with streamablehttp_client(app[0] + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = (await session.list_tools()).tools
                board = {"scenes": [{"prompt": "mcp scene", "duration": 1}], "quality": "draft", "use_ai": False}
                result = await session.call_tool("render", {"storyboard_json": json.dumps(board)})
                return tools, result

    tools, result = asyncio.run(call())
    assert [tool.name for tool in tools] == ["render"]
    assert "storyboard_json" in tools[0].inputSchema["properties"] and "Render a storyboard" in tools[0].description
    text = " ".join(getattr(item, "text", "") for item in result.content)
    assert not result.isError and ".mp4" in text and "'frames': 24" in text, text


def page_outputs(stream: bool = True):
    """A PageRender whose outputs are named by themselves, so updates read as {name: value}."""
    from ui.render_view import OUTPUT_NAMES, PageRender

    return PageRender({name: name for name in OUTPUT_NAMES}, stream)


def value(update):
    """A component update's value (updates made with gr.Image(...) etc. carry it in constructor_args)."""
    return update.constructor_args.get("value") if hasattr(update, "constructor_args") else update


def test_the_page_streams_keyframes_in_order_and_previews_before_the_video(app):
    _, pool = app
    board = parse_storyboard({"scenes": [{"prompt": f"scene {i} of a storm", "duration": 0.5, "seed": 40 + i}
                                         for i in range(3)], "quality": "draft", "fps": 12, "steps": 3})
    updates = list(page_outputs().updates(pool.get().render(board)))
    galleries = [i for i, out in enumerate(updates) if "gallery" in out]
    previews = [i for i, out in enumerate(updates) if "preview" in out and value(out["preview"]) is not None]
    video_at = next(i for i, out in enumerate(updates) if "video" in out)
    shown = [value(updates[i]["gallery"]) for i in galleries]
    assert [len(g) for g in shown] == [1, 2, 3]  # the gallery grows a keyframe at a time
    assert [caption.split(" · ")[0] for _, caption in shown[-1]] == ["1", "2", "3"]  # in scene order
    assert len(previews) >= 3  # a preview per denoising step (the 3 scenes run as one batch of 3 steps)
    assert previews[0] < galleries[0] < galleries[-1] < video_at
    assert value(updates[video_at]["report"])["frames"] == 18
    assert Path(value(updates[video_at]["video"])).name == "scene2video.mp4"


RUNNING = (Status.PROCESSING, Status.ITERATING, Status.PROGRESS)


def board_json(scenes, **changes) -> str:
    return json.dumps({"scenes": scenes, "quality": "draft", "transition": "crossfade", "transition_duration": 0.4,
                       "fps": 12, **changes})


def test_cancel_through_the_api_stops_the_model_and_cleans_up(app, client):
    _, pool = app
    model = pool.get().model
    steps = 100  # a full render: >= 100 UNet calls per batch, many seconds on CPU
    scenes = [{"prompt": f"cancelled scene {i}", "duration": 1, "seed": 100 + i} for i in range(6)]
    before = render_folders(pool.settings.output_dir)
    with counting_unet_calls(model, step_s=0.02) as calls:  # >= 2 s for one batch's 100 steps
        job = client.submit(board_json(scenes, steps=steps), api_name="/render")
        # The server is denoising (counted there, not when a preview reaches this client, which may lag).
        wait_until(lambda: calls[0] > 0 and job.status().code in RUNNING, 120)
        assert render_folders(pool.settings.output_dir) - before, "the render should have its folder by now"
        cancelled_at, calls_then = time.monotonic(), calls[0]
        job.cancel()
        assert_stopped(pool.settings.output_dir, before, cancelled_at, calls)
        # Gradio closes the render at its next update (<= 0.2 s), the model stops at the end of its step.
        assert calls[0] - calls_then <= 25, f"{calls[0] - calls_then} denoising steps ran after the cancel"
        assert calls[0] < steps, f"{calls[0]} UNet calls ({calls_then} at the cancel): the first batch finished"
    assert not any(out and out[0] for out in job.outputs()), "a cancelled job returned a video"
    assert model.loaded, "the cancel unloaded the model"
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    assert probe(video).frames == 24 and model.loaded


def test_cancel_while_encoding_kills_ffmpeg_and_removes_partial_files(app, client):
    _, pool = app
    # Placeholders at 1080p, 40 s: composing and encoding take far longer than the test waits.
    scenes = [{"prompt": f"long encoded scene {i}", "duration": 10, "motion": "zoom_in"} for i in range(4)]
    before = render_folders(pool.settings.output_dir)
    job = client.submit(board_json(scenes, use_ai=False, quality="high", fps=None), api_name="/render")

    def encoding() -> bool:
        partial = render_folders(pool.settings.output_dir) - before
        return bool(ffmpeg_children()) and any(any(folder.iterdir()) for folder in partial)

    wait_until(encoding, 120)
    cancelled_at = time.monotonic()
    job.cancel()
    assert_stopped(pool.settings.output_dir, before, cancelled_at)
    assert not any(out and out[0] for out in job.outputs())
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    assert probe(video).frames == 24


TIME_LEFT = r"about (\d+ s|\d+ min \d\d s) left"


def test_progress_names_the_stage_the_scene_and_the_time_left(app):
    _, pool = app
    board = parse_storyboard({"scenes": [{"prompt": f"progress scene {i}", "duration": 1.5, "seed": 300 + i,
                                          "motion": "zoom_in"} for i in range(4)],
                              "quality": "draft", "fps": 12, "steps": 10})
    bars = [out["progress"] for out in page_outputs().updates(pool.get().render(board))
            if "s2v-progress" in str(out.get("progress", ""))]
    shown = [(re.search(r'data-stage="(\w+)"', bar).group(1), int(re.search(r'data-percent="(\d+)"', bar).group(1)),
              re.search(r'class="s2v-text">(.*?)</div>', bar).group(1)) for bar in bars]
    for stage, _, text in shown:
        assert text.startswith(stage.capitalize() + " · "), f"the text does not name its stage: {text!r}"
    keyframes = [text for stage, _, text in shown if stage == "keyframes"]
    later = [text for stage, percent, text in shown if stage in ("composing", "encoding") and percent < 100]
    assert any(re.search(r"scene [1-4] of 4 .*" + TIME_LEFT, text) for text in keyframes), keyframes
    assert any(re.search(TIME_LEFT, text) for text in later), later  # composing/encoding: the time left too
    assert shown[-1][:2] == ("done", 100)


def test_progress_bar_never_goes_backwards(app):
    # Batches of several scenes: their step progress and the per-scene "ready" progress must agree.
    _, pool = app
    storyboard = parse_storyboard({"scenes": [{"prompt": f"monotone {i}", "duration": 0.5, "seed": 400 + i}
                                              for i in range(4)], "quality": "draft", "fps": 12, "steps": 3})
    fractions = [event.fraction for event in pool.get().render(storyboard) if isinstance(event, Progress)]
    assert fractions == sorted(fractions), fractions


def test_without_system_ffmpeg_the_app_says_so_once_and_serves_the_finished_mp4(
        tmp_path, tiny_model_dir, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(path_without(tmp_path / "bin", "ffmpeg", "ffprobe")))
    settings = app_settings(tmp_path, model=str(tiny_model_dir))
    with caplog.at_level(logging.WARNING), running_app(settings) as (url, pool):
        client = Client(url, verbose=False)
        texts = [c["props"].get("value") or "" for c in client.config["components"] if c["type"] == "markdown"]
        live = next(c for c in client.config["components"] if c["props"].get("elem_id") == "live")
        board = parse_storyboard({"scenes": [{"prompt": f"no ffmpeg scene {i}", "duration": 1.5, "seed": 500 + i,
                                              "motion": "zoom_in"} for i in range(2)],
                                  "quality": "draft", "fps": 12, "steps": 2})
        updates = list(page_outputs(stream=False).updates(pool.get().render(board)))
        video, _ = client.predict(board.to_json(), api_name="/render")
    said = [r for r in caplog.records if "ffmpeg" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(said) == 1, [r.getMessage() for r in said]  # said once, at start, not per render
    assert sum("no system ffmpeg/ffprobe" in text for text in texts) == 1 and live["props"]["visible"] is False
    assert not any("live_video" in out and value(out["live_video"]) for out in updates), "nothing streamed"
    notices = [out["notice"] for out in updates if "notice" in out]
    assert "Done" in notices[-1] and not any("❌" in n for n in notices), notices
    monkeypatch.undo()
    info = probe(video)
    assert (info.codec, info.frames, info.width) == ("h264", 36, 854)  # 2 x 1.5 s at 12 fps, one whole MP4

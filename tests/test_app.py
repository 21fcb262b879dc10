"""The real server, called the way API users call it: gradio_client against /render and /generate."""

import json
import logging
import re
import time

import pytest
from gradio_client import Client
from gradio_client.utils import Status

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
    with running_app(settings) as (url, pool):
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


def test_render_endpoint_and_page_make_a_morph(client):
    morph = dict(STORYBOARD, transition="morph", transition_duration=1.0, morph_frames=3, morph_ease=False)
    video, report = client.predict(json.dumps(morph), api_name="/render")
    assert probe(video).frames == 24
    (transition,) = report["transitions"]
    assert (transition["kind"], transition["made"], transition["generated"]) == ("morph", "generated", 3)
    # The page's transition dropdown offers it too (its other morph fields keep their defaults).
    rows = [["a storm at sea", 1.0, 7, "", "none"], ["a calm harbour", 1.0, 8, "", "zoom_in"]]
    job = client.submit(**dict(generate_args(rows, steps=1), transition="morph", transition_duration=1.0),
                        api_name="/generate")
    job.result(timeout=300)
    page_report = next(out[REPORT] for out in job.outputs() if isinstance(out[VIDEO], str))
    assert [(t["made"], t["generated"]) for t in page_report["transitions"]] == [("generated", 8)]


def test_render_endpoint_rejects_bad_storyboard_with_the_field(client):
    bad = dict(STORYBOARD, scenes=[{"prompt": "ok", "duration": 1}, {"prompt": "too long", "duration": 500}])
    with pytest.raises(Exception) as info:
        client.predict(json.dumps(bad), api_name="/render")
    assert "Scene 2: duration must be between 0.5 and 60 seconds" in str(info.value)


def test_api_page_lists_render_and_generate_with_clear_names(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/render" in endpoints and "/generate" in endpoints
    assert [p["parameter_name"] for p in endpoints["/render"]["parameters"]] == ["storyboard_json", "audio",
                                                                                 "reference_image"]
    names = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert names[:3] == ["scenes", "quality", "transition"]


def changed(value) -> bool:
    """False for gradio_client's "no change" marker."""
    return bool(value) and not (isinstance(value, dict) and set(value) == {"__type__"})


def generate_args(rows, steps=0, use_ai=True, quality="draft", fps=12):
    headers = ["Prompt", "Duration (s)", "Seed", "Negative prompt", "Motion"]
    return dict(scenes={"headers": headers, "data": rows}, quality=quality, transition="crossfade",
                transition_duration=0.4, fps=fps, use_ai=use_ai, steps=steps, guidance_scale=None, model=None)


# /generate's outputs, in ui.render_view.OUTPUT_NAMES order
GALLERY, PREVIEW, PROGRESS, LIVE_VIDEO, VIDEO, REPORT, NOTICE = range(7)
RUNNING = (Status.PROCESSING, Status.ITERATING, Status.PROGRESS)


def test_generate_streams_keyframes_and_previews_before_the_video(client):
    rows = [[f"scene {i} of a storm", 0.5, 40 + i, "", "none"] for i in range(3)]
    job = client.submit(**generate_args(rows, steps=3), api_name="/generate")
    job.result(timeout=300)
    outputs = job.outputs()  # one tuple per yield, in order; "no change" comes as an update dict
    gallery = [i for i, out in enumerate(outputs) if isinstance(out[0], list)]
    previews = [i for i, out in enumerate(outputs) if changed(out[1])]
    video_at = next(i for i, out in enumerate(outputs) if isinstance(out[4], str))
    assert [len(outputs[i][0]) for i in gallery] == [1, 2, 3]  # the gallery grows a keyframe at a time
    assert len(previews) >= 3  # a preview per denoising step (the 3 scenes run as one batch of 3 steps)
    assert previews[0] < gallery[0] < gallery[-1] < video_at
    assert outputs[video_at][5]["frames"] == 18


def test_cancel_through_the_api_stops_the_model_and_cleans_up(app, client):
    _, pool = app
    model = pool.get().model
    steps, scenes = 100, 6  # a full render: >= 100 UNet calls per batch, many seconds on CPU
    rows = [[f"cancelled scene {i}", 1, 100 + i, "", "none"] for i in range(scenes)]
    before = render_folders(pool.settings.output_dir)
    with counting_unet_calls(model, step_s=0.02) as calls:  # >= 2 s for one batch's 100 steps
        job = client.submit(**generate_args(rows, steps=steps), api_name="/generate")
        # The server is denoising (counted there, not when a preview reaches this client, which may lag).
        wait_until(lambda: calls[0] > 0 and job.status().code in RUNNING, 120)
        assert render_folders(pool.settings.output_dir) - before, "the render should have its folder by now"
        cancelled_at, calls_then = time.monotonic(), calls[0]
        job.cancel()
        assert_stopped(pool.settings.output_dir, before, cancelled_at, calls)
        # Gradio closes the render at its next update (<= 0.2 s), the model stops at the end of its step.
        assert calls[0] - calls_then <= 25, f"{calls[0] - calls_then} denoising steps ran after the cancel"
        assert calls[0] < steps, f"{calls[0]} UNet calls ({calls_then} at the cancel): the first batch finished"
    assert not any(isinstance(out[VIDEO], str) for out in job.outputs()), "a cancelled job returned a video"
    assert model.loaded, "the cancel unloaded the model"
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    assert probe(video).frames == 24 and model.loaded


def test_cancel_while_encoding_kills_ffmpeg_and_removes_partial_files(app, client):
    _, pool = app
    # Placeholders at 1080p, 40 s: composing and encoding take far longer than the test waits.
    rows = [[f"long encoded scene {i}", 10, 200 + i, "", "zoom_in"] for i in range(4)]
    before = render_folders(pool.settings.output_dir)
    job = client.submit(**generate_args(rows, use_ai=False, quality="high", fps=0), api_name="/generate")

    def encoding() -> bool:
        stages = re.findall(r'data-stage="(\w+)"', " ".join(out[PROGRESS] for out in job.outputs()
                                                                if isinstance(out[PROGRESS], str)))
        return bool(stages) and stages[-1] in ("composing", "encoding") and bool(ffmpeg_children())

    wait_until(encoding, 120)
    partial = render_folders(pool.settings.output_dir) - before
    assert partial and any(any(folder.iterdir()) for folder in partial), "expected partial files while encoding"
    cancelled_at = time.monotonic()
    job.cancel()
    assert_stopped(pool.settings.output_dir, before, cancelled_at)
    assert not any(isinstance(out[VIDEO], str) for out in job.outputs())
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    assert probe(video).frames == 24


TIME_LEFT = r"about (\d+ s|\d+ min \d\d s) left"


def test_progress_names_the_stage_the_scene_and_the_time_left(client):
    rows = [[f"progress scene {i}", 1.5, 300 + i, "", "zoom_in"] for i in range(4)]
    job = client.submit(**generate_args(rows, steps=10), api_name="/generate")
    job.result(timeout=300)
    bars = [out[PROGRESS] for out in job.outputs() if "s2v-progress" in str(out[PROGRESS])]
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
    with caplog.at_level(logging.WARNING), running_app(settings) as (url, _):
        client = Client(url, verbose=False)
        rows = [[f"no ffmpeg scene {i}", 1.5, 500 + i, "", "zoom_in"] for i in range(2)]
        job = client.submit(**generate_args(rows, steps=2), api_name="/generate")
        job.result(timeout=300)
        outputs = job.outputs()
        texts = [c["props"].get("value") or "" for c in client.config["components"] if c["type"] == "markdown"]
    said = [r for r in caplog.records if "ffmpeg" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(said) == 1, [r.getMessage() for r in said]  # said once, at start, not per render
    assert sum("no system ffmpeg/ffprobe" in text for text in texts) == 1
    assert not any(changed(out[LIVE_VIDEO]) for out in outputs), "nothing may be streamed without ffmpeg"
    videos = [out[VIDEO] for out in outputs if isinstance(out[VIDEO], str)]
    notices = [out[NOTICE] for out in outputs if isinstance(out[NOTICE], str)]
    assert len(videos) == 1 and "Done" in notices[-1] and not any("❌" in n for n in notices), notices
    monkeypatch.undo()
    info = probe(videos[0])
    assert (info.codec, info.frames, info.width) == ("h264", 36, 854)  # 2 x 1.5 s at 12 fps, one whole MP4

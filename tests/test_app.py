"""The real server, called the way API users call it: gradio_client against /render and /generate."""

import json
import time

import pytest
from gradio_client import Client

from media import moov_before_mdat, probe
from server import app_settings, running_app

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


def test_render_endpoint_rejects_bad_storyboard_with_the_field(client):
    bad = dict(STORYBOARD, scenes=[{"prompt": "ok", "duration": 1}, {"prompt": "too long", "duration": 500}])
    with pytest.raises(Exception) as info:
        client.predict(json.dumps(bad), api_name="/render")
    assert "Scene 2: duration must be between 0.5 and 60 seconds" in str(info.value)


def test_api_page_lists_render_and_generate_with_clear_names(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/render" in endpoints and "/generate" in endpoints
    assert [p["parameter_name"] for p in endpoints["/render"]["parameters"]] == ["storyboard_json"]
    names = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert names[:3] == ["scenes", "quality", "transition"]


def changed(value) -> bool:
    """False for gradio_client's "no change" marker."""
    return bool(value) and not (isinstance(value, dict) and set(value) == {"__type__"})


def generate_args(rows, steps=0, use_ai=True):
    headers = ["Prompt", "Duration (s)", "Seed", "Negative prompt", "Motion"]
    return dict(scenes={"headers": headers, "data": rows}, quality="draft", transition="crossfade",
                transition_duration=0.4, fps=12, use_ai=use_ai, steps=steps, guidance_scale=None, model=None)


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


def test_cancel_through_the_api_ends_the_render_quickly(app, client):
    url, pool = app
    rows = [[f"slow scene {i}", 1, 100 + i, "", "none"] for i in range(6)]
    job = client.submit(**generate_args(rows, steps=60), api_name="/generate")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(changed(out[1]) for out in job.outputs()):
        time.sleep(0.05)  # wait for the first step preview: the model is denoising
    assert any(changed(out[1]) for out in job.outputs()), "no preview arrived"
    cancelled_at = time.monotonic()
    job.cancel()
    model = pool.get().model
    while model._gpu_lock.locked() and time.monotonic() - cancelled_at < 30:
        time.sleep(0.01)
    idle_after = time.monotonic() - cancelled_at
    assert idle_after < 2.0, f"model still busy {idle_after:.2f}s after cancel"
    # the model stays loaded and the next render works
    video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
    assert probe(video).frames == 24 and model.loaded

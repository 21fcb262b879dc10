"""Issue 16 on the real server: a public Space cannot be abused, and /render honours a cancel at any moment.

Upload limit, the login page without the API description, oversized bodies refused before they are
read (server memory stays flat), model ids allow-listed with one message, safetensors only, and
``job.cancel()`` at 0-0.5 s into a ``/render`` call.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import psutil
import pytest
from gradio_client import Client

from media import probe
from pipeline import StoryboardError, parse_storyboard
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.model_names import check_model_id
from pipeline.service import RendererPool
from server import app_settings, ffmpeg_children, render_folders, running_app, wait_until
from ui.examples import example_names, load_example

# Long enough (18 s of video, several seconds to render) that no render can finish before its cancel arrives:
# 6 s of placeholders once finished in the 0.5 s + latency of the last cancel, and kept its folder as it should.
BOARD = {"scenes": [{"prompt": f"cancel me {i}", "duration": 3} for i in range(6)], "quality": "draft",
         "use_ai": False}
SMALL = {"scenes": [{"prompt": "a lighthouse", "duration": 1}], "quality": "draft", "fps": 12, "use_ai": False}
NOT_ALLOWED_START = "Model '"
NOT_ALLOWED_END = "' is not allowed on this server: use a hub id (org/name) or a model under the server's model folders."


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir) -> Path:
    """A model root holding a copy of the tiny model."""
    root = tmp_path_factory.mktemp("model_root")
    shutil.copytree(tiny_model_dir, root / "tiny")
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory, models):
    tmp = tmp_path_factory.mktemp("abuse")
    settings = app_settings(tmp, model=str(models / "tiny"), model_roots=str(models), max_upload_mb=1)
    with running_app(settings) as (url, pool):
        yield url, pool


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


# --------------------------------------------------------------------------- cancel at any moment


def test_a_cancel_at_any_moment_in_the_first_half_second_stops_render(app, client):
    _, pool = app
    output = pool.settings.output_dir
    for delay in [0.0, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5]:
        before = render_folders(output)
        job = client.submit(json.dumps(BOARD), api_name="/render")
        time.sleep(delay)
        job.cancel()
        # A render that was not stopped has its folder from its first moment, and keeps it (finished or not).
        time.sleep(0.8)
        try:
            wait_until(lambda: not (render_folders(output) - before) and not ffmpeg_children(), 3)
        except AssertionError:
            left = {p.name: sorted(x.name for x in p.iterdir()) for p in render_folders(output) - before}
            raise AssertionError(f"cancel at {delay} s: folders {left}, ffmpeg {ffmpeg_children()}") from None
    video, report = client.predict(json.dumps(SMALL), api_name="/render")
    assert probe(video).frames == 12 and report["frames"] == 12
    wait_until(lambda: not ffmpeg_children(), 5)


# --------------------------------------------------------------------------- bad input through /render


@pytest.mark.parametrize("text, expected", [
    ('{"scenes": [{"prompt": "a", "duration": 1' + "0" * 400 + "}]}", "Scene 1: duration is far too large"),
    ('{"scenes": ' + "[" * 50_000, "nested more than 20 levels"),
    ('{"scenes": [{"prompt": "\\ud800x", "duration": 1}]}', "Scene 1: prompt is not valid Unicode text"),
    ('{"scenes": [{"prompt": "a", "duration": 0.5}], "fps": 1}', "gives no frame at 1 fps"),
    ('{"scenes": [{"prompt": 123, "duration": 1}]}', "Scene 1: prompt must be text"),
], ids=["huge", "deep", "surrogate", "0-frames", "number-prompt"])
def test_bad_storyboards_through_render_get_one_line(client, text, expected):
    with pytest.raises(Exception) as info:
        client.predict(text, api_name="/render")
    message = str(info.value)
    assert expected in message and "\n" not in message and len(message) <= 300, message


def test_invalid_utf8_in_a_request_is_a_400_and_the_server_goes_on(app, client):
    url, _ = app
    fn = next(d["id"] for d in client.config["dependencies"] if d.get("api_name") == "render")
    body = b'{"data": ["caf\xe9"], "fn_index": %d, "session_hash": "x"}' % fn
    response = httpx.post(url + "gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert client.predict(json.dumps(SMALL), api_name="/render")[1]["frames"] == 12


# --------------------------------------------------------------------------- limits on what is sent


def test_uploads_over_the_limit_are_refused(app, client):
    url, _ = app
    assert client.config["max_file_size"] == 1024 * 1024
    small = httpx.post(url + "gradio_api/upload", files={"files": ("ok.json", b"{}" * 1000)})
    assert small.status_code == 200, small.text
    big = httpx.post(url + "gradio_api/upload", files={"files": ("big.json", b" " * (3 * 1024 * 1024))})
    assert big.status_code == 413


def _stream(total: int, chunk: int = 1 << 20):
    sent = 0
    while sent < total:
        yield b"x" * min(chunk, total - sent)
        sent += chunk


def _post(url: str, size: int, with_length: bool) -> int:
    headers = {"content-type": "application/json"}
    if with_length:
        headers["content-length"] = str(size)
    try:
        return httpx.post(url, content=_stream(size), headers=headers, timeout=30).status_code
    except httpx.TransportError:
        return 413  # the server answered 413 and closed while the body was still being sent


def test_oversized_bodies_are_refused_before_they_are_read_and_memory_stays_flat(app, client):
    url, _ = app
    join = url + "gradio_api/queue/join"
    assert _post(join, 5 * 1024 * 1024, with_length=True) == 413
    assert _post(join, 5 * 1024 * 1024, with_length=False) == 413  # chunked: read only up to the limit
    server = psutil.Process()  # the server runs in this process (tests/server.py)
    before = server.memory_info().rss
    for number in range(30):
        assert _post(join, 20 * 1024 * 1024, with_length=number % 3 != 0) == 413
    grown = (server.memory_info().rss - before) / 2**20
    assert grown < 40, f"server memory grew by {grown:.0f} MB over 30 refused 20 MB bodies"
    assert client.predict(json.dumps(SMALL), api_name="/render")[1]["frames"] == 12


# --------------------------------------------------------------------------- the login page


def test_the_login_page_carries_no_api_description_example_or_model_path(tmp_path, monkeypatch):
    secret_model = "/srv/private-models/house-style"
    monkeypatch.setenv("HF_TOKEN", "hf_keyThatMustNeverShow")
    settings = app_settings(tmp_path, auth="ann:secret", model=secret_model)
    example = load_example(example_names()[0]).scenes[0].prompt
    with running_app(settings) as (url, _):
        page = httpx.get(url).text
        assert "auth_required" in page  # it is the login page
        for leak in (secret_model, "private-models", example, "storyboard_json", "named_endpoints", "/render"):
            assert leak not in page, f"the login page shows {leak!r}"
        assert httpx.get(url + "openapi.json").status_code == 404
        logged_in = httpx.Client()
        assert logged_in.post(url + "login", data={"username": "ann", "password": "secret"}).status_code == 200
        page = logged_in.get(url).text
        assert "storyboard_json" in page  # once logged in, the page has its API info
        for key in ("hf_keyThatMustNeverShow", "ann:secret"):  # keys: never in any page or config
            assert key not in page and key not in logged_in.get(url + "config").text


# --------------------------------------------------------------------------- which models may load


@pytest.mark.parametrize("model_id", ["/etc", "/etc/passwd", "/root", "/no/such/folder", "../../etc", "~/.ssh",
                                      "/etc/../etc/passwd", " /etc/passwd ", "./etc", "a" * 5000, "org/name/../../x"])
def test_every_refused_model_gets_the_same_message(models, model_id):
    with pytest.raises(StoryboardError) as info:
        check_model_id(model_id, (models,), default=str(models / "tiny"))
    message = str(info.value)
    assert message.startswith(NOT_ALLOWED_START) and message.endswith(NOT_ALLOWED_END), message
    assert "exist" not in message and "file" not in message.split(":")[0]


def test_hub_ids_models_under_the_roots_and_the_configured_model_are_allowed(models, tmp_path):
    roots = (models,)
    assert check_model_id("stabilityai/sd-turbo", roots) == "stabilityai/sd-turbo"
    assert check_model_id(str(models / "tiny"), roots) == str((models / "tiny").resolve())
    assert check_model_id(str(models / "not-yet-there"), roots)  # inside a root: its load says if it is missing
    (tmp_path / "outside").mkdir()
    assert check_model_id(str(tmp_path / "outside"), roots, default=str(tmp_path / "outside"))
    link = models / "escape"
    link.symlink_to(tmp_path / "outside")
    with pytest.raises(StoryboardError):
        check_model_id(str(link), roots)  # a link out of the root is judged by where it points


def test_the_page_cannot_load_a_server_path_and_refused_ids_are_not_kept(app):
    import types

    import ui.layout

    _, pool = app
    kept = set(pool._renderers)
    _, handlers = ui.layout.build_page(pool)  # the page's own handlers, fed by field name
    board = parse_storyboard({"scenes": [{"prompt": "a fox", "duration": 1, "seed": 1}], "quality": "draft"})
    request = types.SimpleNamespace(session_hash="visitor")
    messages = set()
    for model_id in ["/etc", "/etc/passwd", "/root", "/no/such/thing"]:
        data = {**handlers.show(board), handlers.form.widgets["model"]: model_id}
        updates = [handlers.start(data, request), *handlers.generate(data, request)]
        notices = [str(out[handlers.outputs["notice"]]) for out in updates if handlers.outputs["notice"] in out]
        assert len(notices) == 2 and handlers.outputs["token"] not in updates[0], "a refused model queues no render"
        assert not any(handlers.outputs["video"] in out for out in updates)
        messages.add(" ".join(notices).replace(model_id, "<id>"))
    assert len(messages) == 1 and NOT_ALLOWED_END in messages.pop()
    assert set(pool._renderers) == kept


def test_pickled_weights_load_only_when_the_owner_allows_them(tmp_path, tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    pickled = tmp_path / "pickled"
    StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True).save_pretrained(
        pickled, safe_serialization=False)
    unet = pickled / "unet"  # (transformers always writes safetensors for the text encoder)
    assert not list(unet.glob("*.safetensors")) and list(unet.glob("*.bin"))
    refused = ModelManager(str(pickled), device="cpu", local_files_only=True)
    assert not refused.load() and "safetensors" in refused.load_error.lower(), refused.load_error
    assert ModelManager(str(pickled), device="cpu", local_files_only=True, allow_pickle=True).load()
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"not even a pickle")
    single = ModelManager(str(checkpoint), device="cpu", local_files_only=True)
    assert not single.load() and "pickles; this server loads only .safetensors" in single.load_error
    pool = RendererPool(app_settings(tmp_path, allow_pickle_weights=True, model=str(pickled)))
    assert pool.get().model.allow_pickle is True


def test_the_model_status_line_says_the_same_for_every_refused_path(tmp_path, models):
    import ui.layout

    _, handlers = ui.layout.build_page(RendererPool(app_settings(tmp_path, model_roots=str(models))))
    lines = {handlers.model_line(path)[0].replace(path, "<id>") for path in ["/etc", "/etc/passwd", "/root", "/nope"]}
    assert len(lines) == 1 and NOT_ALLOWED_END in lines.pop()
    assert "not loaded" in handlers.model_line(str(models / "tiny"))[0]

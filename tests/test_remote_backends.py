"""The openai and hf-inference backends, with the real client libraries, against a local server
(tests/remote_server.py) that speaks their APIs: renders, size fitting, notes, retries and
fallbacks with reasons, the in-flight limit, Stop, the cache, and no key anywhere it must not be."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import Done, Failed, KeyframeReady, parse_storyboard
from pipeline.images import registry
from pipeline.images.backends.hf_inference import HFInferenceModel
from pipeline.images.backends.openai_images import NOTE_NEGATIVE, NOTE_SEED, OpenAIImageModel, service_size
from pipeline.images.backends.retry import RetryPolicy, scrub
from pipeline.images.backends.sizes import aspect_size, closest_size
from pipeline.images.generation import REASON_STOPPED, ImageRequest
from pipeline.service import RendererPool
from pipeline.contract.settings import Settings
from remote_server import HF_KEY, OPENAI_KEY, image_service
from server import STOP_BOUND_S, app_settings

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0)
BACKENDS = ("openai", "hf-inference")


@pytest.fixture
def service(monkeypatch):
    """The local server, with both backends' keys and base URLs pointing at it (environment only)."""
    import huggingface_hub.constants

    # conftest turns the hub off for the whole suite; these requests go to 127.0.0.1 only.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    fresh = registry.ModelRegistry()
    monkeypatch.setattr(registry, "REGISTRY", fresh)
    with image_service() as (url, state):
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
        monkeypatch.setenv("HF_TOKEN", HF_KEY)
        monkeypatch.setenv("HF_INFERENCE_ENDPOINT", url)
        try:
            yield url, state
        finally:  # each backend's event loop thread and client go with the test
            for model in [*_MADE, *fresh._models.values()]:
                getattr(model, "close", lambda: None)()
            _MADE.clear()


_MADE: list = []


def make_model(backend: str, **kwargs):
    kwargs.setdefault("retry", FAST_RETRY)
    if backend == "openai":
        model = OpenAIImageModel(kwargs.pop("model", "gpt-image-1"), **kwargs)
    else:
        model = HFInferenceModel(kwargs.pop("model", "org/tiny-flux"), **kwargs)
    _MADE.append(model)
    return model


def requests_for(*prompts: str, width: int = 854, height: int = 480, negative: str = "") -> list[ImageRequest]:
    return [ImageRequest(i, p, negative, 100 + i, 4, 0.0, width, height) for i, p in enumerate(prompts)]


def square_box(image: Image.Image) -> tuple[int, int]:
    """Width and height of the dark square the server draws in the middle of every image."""
    dark = np.asarray(image.convert("L")) < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def pool_for(tmp_path: Path, **changes) -> RendererPool:
    settings = Settings(output_dir=tmp_path / "out", cache_dir=tmp_path / "cache", max_requests_in_flight=4)
    return RendererPool(replace(settings, **changes))


def render(pool: RendererPool, storyboard, cancel=None, backend=None) -> list:
    return list(pool.get(backend=backend).render(storyboard, cancel))


STORYBOARD = {
    "scenes": [{"prompt": "a lighthouse at dusk", "duration": 0.5, "seed": 7},
               {"prompt": "waves on rocks", "duration": 0.5, "negative_prompt": "people, text"},
               {"prompt": "a gull over the sea", "duration": 0.5}],
    "quality": "draft", "fps": 8, "transition": "cut",
}


# --------------------------------------------------------------------------- sizes


def test_service_sizes_keep_the_preset_aspect_and_are_cover_fitted():
    assert service_size("gpt-image-1", 1920, 1080) == (1536, 1024)
    assert service_size("gpt-image-1", 1080, 1920) == (1024, 1536)
    assert service_size("gpt-image-1", 1000, 1000) == (1024, 1024)
    assert service_size("dall-e-3", 854, 480) == (1792, 1024)
    assert service_size("dall-e-3", 720, 1280) == (1024, 1792)
    assert closest_size([(256, 256), (512, 512), (1024, 1024)], 854, 480) == (1024, 1024)  # ties: the larger
    for width, height in ((854, 480), (1280, 720), (1920, 1080), (480, 854)):
        w, h = aspect_size(width, height)
        assert w % 16 == 0 and h % 16 == 0 and w * h <= 1024 * 1024 * 1.05
        assert abs(w / h - width / height) < 0.03


# --------------------------------------------------------------------------- a render through each backend


def test_a_render_through_openai_sends_what_the_api_takes_and_notes_what_it_ignores(service, tmp_path):
    url, state = service
    events = render(pool_for(tmp_path, backend="openai"), parse_storyboard(STORYBOARD))
    done = events[-1]
    assert isinstance(done, Done), done
    report = done.report
    assert report.model == "openai:gpt-image-1" and report.device.startswith("remote: OpenAI Images API")
    assert [s.source for s in report.scenes] == ["ai", "ai", "ai"]
    assert [s.notes for s in report.scenes] == [(NOTE_SEED,), (NOTE_NEGATIVE, NOTE_SEED), (NOTE_SEED,)]
    assert json.loads(done.report_path.read_text())["scenes"][1]["notes"] == [NOTE_NEGATIVE, NOTE_SEED]
    assert len(state.records) == 3 and all(r.status == 200 for r in state.records)
    for record in state.records:
        assert record.path == "/v1/images/generations" and record.authorization == f"Bearer {OPENAI_KEY}"
        assert record.body == {"model": "gpt-image-1", "prompt": record.body["prompt"], "n": 1, "size": "1536x1024"}
    for event in (e for e in events if isinstance(e, KeyframeReady)):
        with Image.open(event.path) as keyframe:
            assert keyframe.size == (854, 480)  # the preset's exact size
            width, height = square_box(keyframe)
            assert abs(width - height) <= 2, (width, height)  # cropped, never stretched


def test_the_quality_setting_is_sent_and_keys_the_cache(service, tmp_path):
    url, state = service
    cheap = render(pool_for(tmp_path, backend="openai", remote_quality="low"), parse_storyboard(STORYBOARD))[-1]
    assert cheap.report.model == "openai:gpt-image-1@low" and {r.body["quality"] for r in state.records} == {"low"}
    default = render(pool_for(tmp_path, backend="openai"), parse_storyboard(STORYBOARD))[-1]
    assert [s.source for s in default.report.scenes] == ["ai"] * 3  # another quality: not the cached images
    assert len(state.records) == 6 and "quality" not in state.records[-1].body
    answer = make_model("openai", model="dall-e-3", quality="low").generate(requests_for("a"))[0]
    assert answer.reason == "the service rejected the request (HTTP 400): Invalid quality 'low' for dall-e-3"


def test_dall_e_3_gets_its_own_sizes_and_b64_json(service):
    url, state = service
    answers = make_model("openai", model="dall-e-3").generate(requests_for("tall", width=720, height=1280))
    assert answers[0].image.size == (720, 1280)
    assert state.records[0].body["size"] == "1024x1792" and state.records[0].body["response_format"] == "b64_json"


def test_a_render_through_hf_inference_sends_negative_prompt_seed_steps_and_size(service, tmp_path):
    url, state = service
    pool = pool_for(tmp_path, backend="hf-inference", remote_model="black-forest-labs/FLUX.1-schnell")
    done = render(pool, parse_storyboard({**STORYBOARD, "steps": 3}))[-1]
    assert isinstance(done, Done), done
    assert done.report.model == "hf-inference:black-forest-labs/FLUX.1-schnell"
    assert [s.source for s in done.report.scenes] == ["ai", "ai", "ai"]
    assert all(not s.notes for s in done.report.scenes)  # every field was sent
    bodies = {r.body["inputs"]: r for r in state.records}
    waves = bodies["waves on rocks"]
    assert waves.path == "/models/black-forest-labs/FLUX.1-schnell" and waves.authorization == f"Bearer {HF_KEY}"
    assert waves.body["parameters"]["negative_prompt"] == "people, text"
    assert waves.body["parameters"]["num_inference_steps"] == 3
    assert (waves.body["parameters"]["width"], waves.body["parameters"]["height"]) == (848, 480)
    assert bodies["a lighthouse at dusk"].body["parameters"]["seed"] == 7
    assert "negative_prompt" not in bodies["a lighthouse at dusk"].body["parameters"]


def test_the_cli_renders_with_backend_openai(service, tmp_path, capsys):
    from pipeline.cli import main

    board = tmp_path / "board.json"
    board.write_text(json.dumps(STORYBOARD), encoding="utf-8")
    out, report = tmp_path / "video.mp4", tmp_path / "report.json"
    code = main(["render", str(board), "-o", str(out), "--report", str(report), "--quiet", "--backend", "openai",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0 and out.stat().st_size > 0
    data = json.loads(report.read_text())
    assert data["model"] == "openai:gpt-image-1" and [s["source"] for s in data["scenes"]] == ["ai"] * 3
    assert len(service[1].records) == 3
    printed = capsys.readouterr().out
    assert f"note: scene(s) 1, 2, 3: {NOTE_SEED}" in printed and f"note: scene(s) 2: {NOTE_NEGATIVE}" in printed


# --------------------------------------------------------------------------- cache


def test_a_cached_scene_costs_no_request_and_the_key_holds_backend_and_model(service, tmp_path):
    url, state = service
    board = parse_storyboard(STORYBOARD)
    pool = pool_for(tmp_path, backend="openai")
    render(pool, board)
    assert len(state.records) == 3
    again = render(pool, board)[-1]
    assert [s.source for s in again.report.scenes] == ["cache"] * 3 and len(state.records) == 3
    assert again.report.scenes[1].notes == (NOTE_NEGATIVE, NOTE_SEED)  # a cached image was still made without them
    # Same storyboard, same cache folder, another backend or model: new requests.
    other = render(pool_for(tmp_path, backend="hf-inference"), board)[-1]
    assert [s.source for s in other.report.scenes] == ["ai"] * 3 and len(state.records) == 6
    dalle = render(pool_for(tmp_path, backend="openai", remote_model="dall-e-3"), board)[-1]
    assert [s.source for s in dalle.report.scenes] == ["ai"] * 3 and len(state.records) == 9


# --------------------------------------------------------------------------- retries and fallbacks


@pytest.mark.parametrize("backend", BACKENDS)
def test_429_is_retried_after_the_retry_after_the_service_asks_for(service, backend):
    url, state = service
    state.retry_after = "1"
    answers = make_model(backend).generate(requests_for("busy sea !429x1"))
    assert answers[0].image is not None and answers[0].reason == ""
    first, second = state.records
    assert (first.status, second.status) == (429, 200)
    assert second.started - first.finished >= 0.95  # honoured Retry-After: 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prompt, reason, requests", [
    ("sea !500x9", "service error (HTTP 500) after 4 tries", 4),
    ("sea !429x9", "rate limit or quota reached (HTTP 429) after 4 tries", 4),
    ("sea !policy", "refused by the content policy: ", 1),
    ("sea !401", "the service refused the API key (HTTP 401); check ", 1),
])
def test_each_failure_becomes_a_placeholder_reason(service, backend, prompt, reason, requests):
    url, state = service
    state.retry_after = "0.05"
    answer = make_model(backend).generate(requests_for(prompt))[0]
    assert answer.image is None and answer.reason.startswith(reason), answer.reason
    assert len(state.records) == requests


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rejected_request_says_what_the_service_said(service, backend):
    url, state = service
    model = make_model(backend, model="dall-e-3" if backend == "openai" else "org/m")
    # A size the server does not take: dall-e-3 at a gpt-image-1 size; hf-inference without width/height.
    wrong = {"openai": lambda client, request: client.images.generate(model="dall-e-3", prompt="x", n=1,
                                                                       size="1536x1024", response_format="b64_json"),
             "hf-inference": lambda client, request: client.text_to_image("x", model=f"{url}/models/org/m")}[backend]

    async def call(client, request):
        return await wrong(client, request)

    model.call = call
    answer = model.generate(requests_for("a"))[0]
    expected = ("Invalid size '1536x1024' for dall-e-3" if backend == "openai"
                else "parameters.width must be an integer")
    assert answer.reason == f"the service rejected the request (HTTP 400): {expected}"
    assert len(state.records) == 1  # not retried


def test_an_empty_openai_quota_is_not_retried_and_stops_the_batch(service):
    url, state = service
    answers = make_model("openai", max_in_flight=1).generate(requests_for("a !quota", "b", "c"))
    assert all(a.image is None and a.reason.startswith("quota used up (HTTP 429)") for a in answers)
    assert len(state.records) == 1  # the other scenes sent nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wrong_key_fails_every_scene_with_few_requests(service, monkeypatch, backend):
    url, state = service
    monkeypatch.setenv("OPENAI_API_KEY" if backend == "openai" else "HF_TOKEN", "sk-wrongwrongwrong")
    answers = make_model(backend, max_in_flight=2).generate(requests_for(*[f"scene {i}" for i in range(6)]))
    assert all(a.image is None and "refused the API key (HTTP 401)" in a.reason for a in answers)
    assert len(state.records) <= 2  # at most the first requests in flight; nothing after the first 401


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slow_answer_times_out(service, backend):
    url, state = service
    started = time.monotonic()
    answer = make_model(backend, timeout=0.5).generate(requests_for("slow sea !slow=5"))[0]
    assert answer.image is None and answer.reason == "timed out after 0.5 s"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_key_on_the_server_says_so_and_sends_nothing(service, monkeypatch, backend):
    url, state = service
    monkeypatch.delenv("OPENAI_API_KEY" if backend == "openai" else "HF_TOKEN")
    model = make_model(backend)
    answers = model.generate(requests_for("a", "b"))
    name = "OPENAI_API_KEY" if backend == "openai" else "HF_TOKEN"
    assert [a.reason for a in answers] == [f"{name} is not set on this server"] * 2
    info = model.info()
    assert (info.state, info.reason) == ("failed", f"{name} is not set on this server") and not state.records


def test_a_render_shows_each_fallback_reason_in_the_report(service, tmp_path):
    url, state = service
    board = parse_storyboard({"scenes": [{"prompt": "fine", "duration": 0.5},
                                         {"prompt": "bad !policy", "duration": 0.5},
                                         {"prompt": "broken !500x9", "duration": 0.5}], "quality": "draft", "fps": 8})
    pool = pool_for(tmp_path, backend="openai")
    pool.get().model.retry = FAST_RETRY
    done = render(pool, board)[-1]
    assert [s.source for s in done.report.scenes] == ["ai", "placeholder", "placeholder"]
    assert done.report.scenes[1].reason.startswith("refused by the content policy")
    assert done.report.scenes[2].reason == "service error (HTTP 500) after 4 tries"


# --------------------------------------------------------------------------- in flight, and Stop


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("limit", [1, 3])
def test_no_more_requests_in_flight_than_the_setting(service, backend, limit):
    url, state = service
    state.latency = 0.4  # long enough that the requests overlap even on a loaded machine
    answers = make_model(backend, max_in_flight=limit).generate(requests_for(*[f"scene {i}" for i in range(7)]))
    assert all(a.image is not None for a in answers)
    assert state.max_in_flight == limit


def test_two_renders_at_once_share_the_limit(service):
    url, state = service
    state.latency = 0.4  # long enough that the requests overlap even on a loaded machine
    model = make_model("hf-inference", max_in_flight=3)
    answers = []
    workers = [threading.Thread(target=lambda: answers.extend(model.generate(requests_for(*"abcde"))))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert len(answers) == 10 and all(a.image is not None for a in answers)
    assert state.max_in_flight == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_cancels_the_requests_in_flight(service, backend):
    url, state = service
    state.latency = 30
    stop = threading.Event()
    box = {}
    worker = threading.Thread(target=lambda: box.update(answers=make_model(backend, max_in_flight=3).generate(
        requests_for(*[f"scene {i}" for i in range(6)]), should_stop=stop.is_set)))
    worker.start()
    deadline = time.monotonic() + 10
    while state.in_flight < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.in_flight == 3
    stopped = time.monotonic()
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.monotonic() - stopped < STOP_BOUND_S
    assert [a.reason for a in box["answers"]] == [REASON_STOPPED] * 6
    deadline = time.monotonic() + 2
    while state.disconnected < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.disconnected == 3 and len(state.records) == 3  # hung up on, and nothing new was sent


def test_stop_during_a_render_ends_it_promptly(service, tmp_path):
    url, state = service
    state.latency = 30
    cancel = threading.Event()
    pool = pool_for(tmp_path, backend="hf-inference")
    events = pool.get().render(parse_storyboard(STORYBOARD), cancel)
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    last = list(events)[-1]
    assert isinstance(last, Failed) and last.cancelled and time.monotonic() - started < 3
    assert not list((tmp_path / "out").iterdir())  # the render's folder is gone


# --------------------------------------------------------------------------- keys stay secret


class _LeakyOpenAI(OpenAIImageModel):
    """A call whose exception text carries the key, as a careless library might."""

    async def call(self, client, request):
        raise RuntimeError(f"connection failed with headers {{'Authorization': 'Bearer {self._key}'}}")


def test_exception_text_never_carries_the_key_into_a_reason(service):
    leaky = _LeakyOpenAI("gpt-image-1", retry=FAST_RETRY)
    _MADE.append(leaky)
    answer = leaky.generate(requests_for("a"))[0]
    assert answer.image is None and answer.reason.startswith("request failed") and OPENAI_KEY not in answer.reason
    assert scrub(f"key={OPENAI_KEY} and {HF_KEY}") == "key=[key] and [key]"
    assert repr(make_model("openai")).count("sk-") == 0


@pytest.mark.slow
def test_the_keys_appear_in_no_log_report_video_folder_page_or_export(service, tmp_path, caplog):
    import ui
    import ui.layout

    url, state = service
    caplog.set_level(logging.DEBUG)  # every logger, the client libraries' own included
    board = parse_storyboard({**STORYBOARD, "scenes": [*STORYBOARD["scenes"], {"prompt": "x !policy", "duration": 0.5},
                                                       {"prompt": "y !500x1", "duration": 0.5}]})
    found = []
    for backend in BACKENDS:
        pool = pool_for(tmp_path / backend, backend=backend)
        pool.get().model.retry = FAST_RETRY
        done = render(pool, board)[-1]
        assert isinstance(done, Done)
        demo, handlers = ui.layout.build_page(pool)
        texts = [json.dumps(done.report.to_dict()), handlers.model_line(None, backend)[0], board.to_json(),
                 repr(pool.get().model.info()), demo.get_config_file().__repr__()]
        blobs = [path.read_bytes() for path in (tmp_path / backend).rglob("*") if path.is_file()]
        found += [t for t in texts if OPENAI_KEY in t or HF_KEY in t or url in t]
        found += [b[:40] for b in blobs if OPENAI_KEY.encode() in b or HF_KEY.encode() in b]
    assert len(state.records) == 11 and any(r.status == 400 for r in state.records)  # 5 + a retry, then 5
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # the libraries did log
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert OPENAI_KEY not in logged and HF_KEY not in logged
    assert not found


# --------------------------------------------------------------------------- choosing the backend


def test_backend_settings_from_flag_and_environment():
    import argparse

    from pipeline.contract.errors import ConfigError
    from pipeline.contract.settings import add_settings_arguments, settings_from_args, settings_from_env

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    env = {"SCENE2VIDEO_BACKEND": "hf-inference", "SCENE2VIDEO_MAX_REQUESTS_IN_FLIGHT": "8"}
    settings = settings_from_args(parser.parse_args(["--backend", "openai", "--remote-timeout", "30"]), env)
    assert (settings.backend, settings.max_requests_in_flight, settings.remote_timeout) == ("openai", 8, 30.0)
    assert Settings().backend == "auto" and Settings().max_requests_in_flight == 4
    with pytest.raises(ConfigError, match="backend must be one of auto, diffusers, openai, hf-inference"):
        settings_from_env({"SCENE2VIDEO_BACKEND": "midjourney"})
    with pytest.raises(ConfigError, match="remote_model must be a name, not a URL"):
        settings_from_env({"SCENE2VIDEO_REMOTE_MODEL": "http://elsewhere.example/steal"})
    with pytest.raises(ConfigError, match="max_requests_in_flight must be between 1 and 64"):
        settings_from_env({"SCENE2VIDEO_MAX_REQUESTS_IN_FLIGHT": "0"})
    space = settings_from_env({"SPACE_ID": "team/scene2video"})
    assert space.allow_backend_change is False and space.backend == "auto"


def test_auto_prefers_a_gpu_then_openai_then_hf_then_the_cpu(monkeypatch):
    import pipeline.images.backends as backends

    monkeypatch.setattr(backends, "gpu_present", lambda: False)
    both = {"OPENAI_API_KEY": "sk-x", "HF_TOKEN": "hf_x"}
    assert backends.choose_backend("auto", env=both) == backends.BackendChoice(
        "openai", "auto: no GPU, OPENAI_API_KEY is set")
    assert backends.choose_backend("auto", env={"HF_TOKEN": "hf_x"}).name == "hf-inference"
    assert backends.choose_backend("auto", env={}) == backends.BackendChoice(
        "diffusers", "auto: no GPU and no remote key")
    assert backends.choose_backend("auto", device="cpu", env=both).name == "diffusers"  # --device means local
    assert backends.choose_backend("hf-inference", env={}).name == "hf-inference"
    monkeypatch.setattr(backends, "gpu_present", lambda: True)
    assert backends.choose_backend("auto", env=both) == backends.BackendChoice("diffusers", "auto: a GPU is present")


def test_the_model_line_says_which_backend_and_why(service, monkeypatch, tmp_path):
    import pipeline.images.backends as backends
    import ui.layout

    monkeypatch.setattr(backends, "gpu_present", lambda: False)
    line = ui.layout.build_page(pool_for(tmp_path))[1].model_line(None)[0]
    assert "`openai:gpt-image-1`" in line and "remote: OpenAI Images API (auto: no GPU, OPENAI_API_KEY is set)" in line
    assert "**backend:** openai" in line
    local = ui.layout.build_page(RendererPool(app_settings(tmp_path)))[1].model_line(None)[0]
    assert "**backend:** diffusers (auto: --device cpu was given)" in local


def test_a_visitor_picks_the_backend_only_where_the_owner_allows_it(service, tmp_path):
    import ui

    locked = RendererPool(app_settings(tmp_path, allow_backend_change=False))
    assert locked.get(backend="openai").model.model_id.endswith("sd-turbo")  # the configured (diffusers) one
    open_ = RendererPool(app_settings(tmp_path, allow_backend_change=True))
    assert open_.get(backend="openai").model.model_id == "openai:gpt-image-1"
    assert open_.get("org/any-model", backend="openai").model.model_id == "openai:gpt-image-1"  # never a visitor's
    for pool, interactive in ((locked, False), (open_, True)):
        config = ui.build_demo(pool).get_config_file()
        dropdown = next(c for c in config["components"] if c["props"].get("label") == "Image backend")
        names = ("auto", "diffusers", "openai", "hf-inference")
        assert [tuple(c) for c in dropdown["props"]["choices"]] == [(b, b) for b in names]
        assert dropdown["props"]["interactive"] is interactive


def test_on_zerogpu_a_remote_backend_renders_here_without_borrowing_a_gpu(service, monkeypatch, tmp_path):
    import importlib
    import sys

    from pipeline.images.diffusers_backend import ModelManager
    from pipeline.images.stage import ImageStage

    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "zerogpu_stand_in"))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.invalidate_caches()
    try:
        assert ImageStage(ModelManager("org/local", "cpu"))._on_zerogpu is not None  # a local model borrows it
        stage = ImageStage(make_model("openai"))
        assert stage._on_zerogpu is None
        done = render(pool_for(tmp_path, backend="openai"), parse_storyboard(STORYBOARD))[-1]
        assert [s.source for s in done.report.scenes] == ["ai"] * 3
    finally:
        sys.modules.pop("spaces", None)


@pytest.mark.slow
def test_the_served_app_renders_through_openai_and_its_api_never_shows_the_key(service, tmp_path):
    """The real server on a Space's settings: /render uses the owner's backend; /generate cannot switch it."""
    import urllib.request

    from gradio_client import Client

    from server import running_app

    url, state = service
    settings = app_settings(tmp_path, device=None, backend="openai", allow_backend_change=False)
    with running_app(settings) as (app_url, pool):
        client = Client(app_url, verbose=False)
        video, report = client.predict(json.dumps(STORYBOARD), api_name="/render")
        assert report["model"] == "openai:gpt-image-1" and [s["source"] for s in report["scenes"]] == ["ai"] * 3
        assert report["scenes"][1]["notes"] == [NOTE_NEGATIVE, NOTE_SEED] and len(state.records) == 3
        # A visitor's page picks another backend: the render still uses the owner's.
        import types

        import ui.layout

        _, handlers = ui.layout.build_page(pool)
        board = parse_storyboard({"scenes": [{"prompt": "a new scene", "duration": 0.5, "seed": 5}], "quality": "draft",
                                  "transition": "cut", "fps": 8})
        data = {**handlers.show(board), handlers.backend: "hf-inference"}
        updates = list(handlers.generate(data, types.SimpleNamespace(session_hash="visitor")))
        assert any("video" in {name for name, c in handlers.outputs.items() if c in out} for out in updates)
        assert [r.path for r in state.records] == ["/v1/images/generations"] * 4  # still the owner's backend
        page = urllib.request.urlopen(app_url, timeout=30).read().decode("utf-8")
        config = urllib.request.urlopen(app_url + "config", timeout=30).read().decode("utf-8")
        api = json.dumps(client.view_api(print_info=False, return_format="dict"))
    for text in (page, config, api, json.dumps(report), Path(video).read_bytes().decode("latin-1")):
        assert OPENAI_KEY not in text and HF_KEY not in text and url not in text


def test_one_client_serves_every_render_of_a_backend_and_close_ends_its_thread(service):
    model = make_model("hf-inference")
    model.generate(requests_for("a"))
    client = model._client
    model.generate(requests_for("b", "c"))
    assert model._client is client  # made once: its TLS setup and open connections are reused
    names = {t.name for t in threading.enumerate()}
    assert "scene2video-hf-inference" in names
    model.close()
    deadline = time.monotonic() + 5
    while any(t.name == "scene2video-hf-inference" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "scene2video-hf-inference" for t in threading.enumerate())


def test_the_first_batch_of_a_render_fills_the_requests_in_flight(service, tmp_path):
    url, state = service
    state.latency = 0.5
    board = parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 0.5} for i in range(6)],
                              "quality": "draft", "fps": 8})
    done = render(pool_for(tmp_path, backend="hf-inference", max_requests_in_flight=3), board)[-1]
    assert [s.source for s in done.report.scenes] == ["ai"] * 6
    starts = sorted(r.started for r in state.records)
    assert starts[2] - starts[0] < 0.4  # scenes 1-3 went out together, not scene 1 alone


def test_a_morph_through_a_remote_backend_falls_back_to_a_crossfade_with_the_reason(service, tmp_path):
    url, state = service
    board = parse_storyboard({**STORYBOARD, "transition": "morph", "transition_duration": 0.4, "morph_frames": 2})
    done = render(pool_for(tmp_path, backend="openai"), board)[-1]
    assert isinstance(done, Done) and [s.source for s in done.report.scenes] == ["ai"] * 3
    assert len(state.records) == 3  # the keyframes only: no request for an in-between
    assert {(t.kind, t.made) for t in done.report.transitions} == {("morph", "crossfade")}
    assert all("makes text-to-image keyframes only" in t.reason for t in done.report.transitions)

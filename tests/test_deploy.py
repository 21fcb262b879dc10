"""Ready for Spaces, share links and public use: front matter, flags, limits, auth, file serving."""

import json
import os
import re
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.error import HTTPError

import gradio as gr
import pytest
import yaml
from gradio_client import Client

import app as app_module
from pipeline import ConfigError
from pipeline.outputs import remove_old_outputs
from pipeline.contract.settings import settings_from_env
from server import app_settings, running_app

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---")[1])


def test_readme_front_matter_agrees_with_requirements_and_installed_gradio():
    meta = front_matter()
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.split("[")[0]] = version  # gradio[mcp] pins gradio
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["python_version"] == "3.11"
    assert meta["sdk_version"] == gr.__version__ == pins["gradio"]
    assert pins["torch"] == "2.13.0"
    assert meta["models"] == ["stabilityai/sd-turbo"]
    for key in ("title", "emoji", "colorFrom", "colorTo", "suggested_hardware", "license"):
        assert meta[key]
    assert "ffmpeg" in (ROOT / "packages.txt").read_text().split()


def record_launch(monkeypatch):
    calls = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.update(kw))
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    # No background load of the default model: its thread would outlive the test.
    monkeypatch.setattr("pipeline.service.RendererPool.warm_up", lambda self: None)
    return calls


def test_share_auth_host_and_port_reach_launch(monkeypatch, tmp_path):
    calls = record_launch(monkeypatch)
    app_module.main(["--share", "--auth", "ann:secret", "--host", "0.0.0.0", "--port", "7999",
                     "--output-dir", str(tmp_path)])
    assert calls["share"] is True and calls["auth"] == ("ann", "secret") and calls["mcp_server"] is False
    assert calls["server_name"] == "0.0.0.0" and calls["server_port"] == 7999


def test_without_host_and_port_gradio_defaults_apply(monkeypatch, tmp_path):
    calls = record_launch(monkeypatch)
    app_module.main(["--output-dir", str(tmp_path)])
    assert calls["server_name"] is None and calls["server_port"] is None and calls["share"] is False
    app_module.main(["--output-dir", str(tmp_path), "--mcp"])
    assert calls["mcp_server"] is True


def test_zerogpu_loads_the_model_at_start(monkeypatch, tmp_path):
    stand_in = tmp_path / "spaces"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text("def GPU(fn=None, duration=60):\n    return (lambda f: f) if fn is None else fn\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    record_launch(monkeypatch)
    loaded = []
    monkeypatch.setattr("pipeline.service.RendererPool.preload", lambda self: loaded.append(self.settings.model))
    app_module.main(["--output-dir", str(tmp_path / "out")])
    assert loaded == ["stabilityai/sd-turbo"]


def test_locally_the_page_is_served_first_then_the_model_loads_in_the_background(monkeypatch, tmp_path,
                                                                                  tiny_model_dir):
    order = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: order.append("page served"))
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    pools = record_pool(monkeypatch)
    original = app_module.RendererPool.warm_up
    monkeypatch.setattr(app_module.RendererPool, "warm_up",
                        lambda self: order.append("warm-up") or threads.append(original(self)))
    threads: list = []
    app_module.main(["--model", str(tiny_model_dir), "--device", "cpu", "--output-dir", str(tmp_path),
                     "--cache-dir", str(tmp_path / "cache")])
    assert order == ["page served", "warm-up"]
    threads[0].join(timeout=120)
    assert pools[0].get().model.loaded  # the first Generate will not wait for the weights


def record_pool(monkeypatch) -> list:
    """The RendererPool app.main hands to ui.build_demo (a one-item list once it ran)."""
    pools = []
    original = app_module.ui.build_demo
    monkeypatch.setattr(app_module.ui, "build_demo",
                        lambda pool, *args, **kwargs: pools.append(pool) or original(pool, *args, **kwargs))
    return pools


def test_model_flag_and_env_reach_the_app_s_model_manager(monkeypatch, tmp_path):
    from pipeline.images import registry as model_module

    monkeypatch.setattr(model_module, "REGISTRY", model_module.ModelRegistry())
    record_launch(monkeypatch)  # also keeps warm_up from importing torch here
    pools = record_pool(monkeypatch)
    monkeypatch.setenv("SCENE2VIDEO_MODEL", "org/from-env")
    app_module.main(["--output-dir", str(tmp_path), "--device", "cpu"])
    app_module.main(["--model", "org/from-flag", "--output-dir", str(tmp_path), "--device", "cpu"])
    env_model, flag_model = (pool.get().model for pool in pools)
    assert env_model is model_module.get_model_manager("org/from-env", "cpu") and not env_model.loaded
    assert flag_model is model_module.get_model_manager("org/from-flag", "cpu")


def test_the_model_status_line_follows_the_model_dropdown(tmp_path):
    import ui
    from pipeline.service import RendererPool

    demo, handlers = ui.layout.build_page(RendererPool(app_settings(tmp_path)))
    config = demo.config
    dropdown = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "field-model")
    line = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "model-line")
    refreshes = [d for d in config["dependencies"] if [dropdown, "change"] in [list(t) for t in d["targets"]]]
    on_load = [d for d in config["dependencies"] if "load" in [event for _, event in d["targets"]]]
    assert len(refreshes) == 1 and refreshes[0]["inputs"][0] == dropdown and line in refreshes[0]["outputs"]
    assert any(line in d["outputs"] for d in on_load)
    text, _timer = handlers.model_line("org/picked")
    assert "`org/picked`" in text and "not loaded" in text


def test_limits_from_env_and_safe_public_defaults():
    space = settings_from_env({"SPACE_ID": "team/scene2video"})
    assert (space.max_scenes, space.max_total_seconds, space.max_quality, space.allow_model_change, space.preload) == (
        20, 120.0, "high", False, True)
    local = settings_from_env({"SCENE2VIDEO_MAX_SCENES": "3", "SCENE2VIDEO_MAX_QUALITY": "draft"})
    assert local.max_scenes == 3 and local.limits().allowed_qualities == ("draft",) and local.allow_model_change
    with pytest.raises(ConfigError, match="SCENE2VIDEO_MAX_SCENES='many' is not a valid value"):
        settings_from_env({"SCENE2VIDEO_MAX_SCENES": "many"})
    with pytest.raises(ConfigError, match="user:password"):
        settings_from_env({"SCENE2VIDEO_AUTH": "nocolon"})


def test_old_outputs_are_removed(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    os.utime(old, (time.time() - 3 * 3600,) * 2)
    assert remove_old_outputs(tmp_path, max_age_hours=2) == 1
    assert not old.exists() and new.exists()


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("public")
    settings = replace(app_settings(tmp), max_scenes=2, max_quality="standard", allow_model_change=False,
                       max_total_seconds=100.0)
    with running_app(settings) as (url, pool):
        yield url, pool


def test_readme_client_example_runs(public_app, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- api-example.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code.replace("http://127.0.0.1:7860/", public_app[0]), "README example", "exec"), {})
    printed = capsys.readouterr().out
    assert ".mp4 4.0 ['placeholder', 'placeholder']" in printed


def test_going_over_a_public_limit_gives_a_clear_message(public_app):
    client = Client(public_app[0], verbose=False)
    three = {"scenes": [{"prompt": str(i), "duration": 1} for i in range(3)], "use_ai": False}
    with pytest.raises(Exception, match="3 scenes given; the most allowed is 2"):
        client.predict(json.dumps(three), api_name="/render")
    with pytest.raises(Exception, match="quality 'high' is not allowed"):
        client.predict(json.dumps({"scenes": [{"prompt": "x", "duration": 1}], "quality": "high"}), api_name="/render")
    long = {"scenes": [{"prompt": "x", "duration": 60}, {"prompt": "y", "duration": 50}], "use_ai": False}
    with pytest.raises(Exception, match="the scenes add up to 110 seconds; the most allowed is 100 seconds"):
        client.predict(json.dumps(long), api_name="/render")


def test_visitors_cannot_make_the_server_load_another_model(public_app):
    from pipeline.images import registry as model_module

    url, pool = public_app
    client = Client(url, verbose=False)
    board = {"scenes": [{"prompt": "a pier at night", "duration": 0.5}], "quality": "draft", "model": "evil/weights"}
    with pytest.raises(Exception, match="model 'evil/weights' cannot be used on this server"):
        client.predict(json.dumps(board), api_name="/render")
    _, report = client.predict(json.dumps(dict(board, model=pool.settings.model)), api_name="/render")
    assert report["model"] == pool.settings.model  # naming the server's own model is fine
    assert not [model_id for model_id in model_module.REGISTRY.model_ids() if "evil/weights" in model_id]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except HTTPError as exc:
        return exc.code


def test_server_refuses_files_outside_its_folders(public_app):
    url, pool = public_app
    client = Client(url, verbose=False)
    video, _ = client.predict(json.dumps({"scenes": [{"prompt": "x", "duration": 1}], "use_ai": False,
                                          "quality": "draft"}), api_name="/render")
    outputs = pool.settings.output_dir.resolve()
    render_dirs = [p for p in outputs.iterdir() if p.is_dir()]
    assert render_dirs and all(len(p.name) >= 20 for p in render_dirs)  # unguessable names
    guessed = outputs / "0000000000000000000000" / "scene2video.mp4"
    for path in [ROOT / "app.py", ROOT / "pipeline" / "contract" / "settings.py", Path("/etc/passwd"), guessed,
                 outputs / ".." / ".." / "app.py", outputs, Path(sys.executable)]:
        for prefix in ("gradio_api/file=", "file="):
            assert status(url + prefix + str(path)) in (403, 404), path
    assert status(url + "gradio_api/file=../../app.py") in (403, 404)


def test_auth_protects_page_and_api(tmp_path):
    settings = replace(app_settings(tmp_path), auth="ann:secret")
    with running_app(settings) as (url, _):
        assert status(url + "config") == 401 and status(url + "gradio_api/info") == 401  # the page's data too
        with pytest.raises(Exception):
            Client(url, verbose=False).predict("{}", api_name="/render")
        client = Client(url, auth=("ann", "secret"), verbose=False)
        _, report = client.predict(json.dumps({"scenes": [{"prompt": "x", "duration": 0.5}], "use_ai": False,
                                               "quality": "draft"}), api_name="/render")
        assert report["frames"] == 12

"""python -m pipeline render: the same storyboard contract on the command line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from media import probe

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_renders_and_writes_the_report(tmp_path):
    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "héllo 世界 🌍", "duration": 1}, {"prompt": "b", "duration": 1.5}],
                              "quality": "draft", "transition": "slide", "use_ai": False}))
    result = cli("render", sb, "-o", tmp_path / "out.mp4", "--report", tmp_path / "r.json",
                 "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    info = probe(tmp_path / "out.mp4")
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 854, 480, 60)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["duration"] == 2.5 and [s["source"] for s in report["scenes"]] == ["placeholder"] * 2
    assert re.search(r"100%\|[█#]+\|", result.stderr), result.stderr  # the tqdm bar reached the end


def test_cli_says_once_per_reason_which_scenes_and_morphs_fell_back(tmp_path):
    """Issue 26: the same long reason was repeated once per scene and once per morph."""
    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": p, "duration": 1} for p in "abcd"],
                              "quality": "draft", "fps": 12, "transition": "morph", "use_ai": False}))
    result = cli("render", sb, "-o", tmp_path / "out.mp4", "--report", tmp_path / "r.json", "--quiet")
    assert result.returncode == 0, result.stderr
    said = result.stderr + result.stdout
    assert "Morphs 1→2, 2→3, 3→4: crossfade instead of the morph — AI frames are switched off" in said, said
    assert "Scenes 1–4: placeholder — AI frames are switched off" in said, said
    assert said.count("AI frames are switched off") == 2, said
    transitions = json.loads((tmp_path / "r.json").read_text())["transitions"]
    assert [(t["made"], t["frames"]) for t in transitions] == [("crossfade", 6)] * 3


@pytest.mark.parametrize("name", ["x.txt", "video"])
def test_an_output_that_is_not_an_mp4_is_refused(tmp_path, name):
    """Issue 26: `-o x.txt` silently wrote an MP4 named .txt."""
    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "a", "duration": 1}], "use_ai": False, "quality": "draft"}))
    result = cli("render", sb, "-o", tmp_path / name, "--quiet")
    assert result.returncode == 2 and not (tmp_path / name).exists()
    assert result.stderr == (f"error: -o/--output must name an .mp4 file (got '{name}'), "
                             f"e.g. {Path(name).with_suffix('.mp4')}.\n")


def test_cli_bad_storyboard_exits_2_with_one_line(tmp_path):
    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": -1}]}))
    result = cli("render", sb, "-o", tmp_path / "out.mp4")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Scene 2: duration must be between 0.5 and 60 seconds (got -1)."
    assert not (tmp_path / "out.mp4").exists()


@pytest.fixture(scope="module")
def offline_default_run(tmp_path_factory):
    """One CLI render with the default hub model and no network (HF_HUB_OFFLINE=1, set by conftest.py):
    four scenes, so the placeholders arrive while the first frames are composed. (result, report)"""
    tmp = tmp_path_factory.mktemp("offline-default")
    sb = tmp / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": f"scene {i}", "duration": 1.5} for i in range(4)],
                              "quality": "draft"}))
    result = cli("render", sb, "-o", tmp / "out.mp4", "--report", tmp / "r.json", "--cache-dir", tmp / "cache",
                 "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return result, json.loads((tmp / "r.json").read_text())


def test_default_model_offline_falls_back_with_the_reason(offline_default_run):
    result, report = offline_default_run
    assert [s["source"] for s in report["scenes"]] == ["placeholder"] * 4
    assert all("Model 'stabilityai/sd-turbo' could not be loaded" in s["reason"] for s in report["scenes"])
    assert "Scenes 1–4: placeholder" in result.stderr + result.stdout


def render_in_process(tmp_path, *flags) -> tuple[int, dict]:
    """Run ``python -m pipeline render`` in this process (the offline hub, the shared model registry)."""
    from pipeline.cli import main

    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "a fox", "duration": 0.5, "seed": 3}], "quality": "draft",
                              "fps": 4, "transition": "cut", "steps": 1}))
    code = main(["render", str(sb), "-o", str(tmp_path / "o.mp4"), "--report", str(tmp_path / "r.json"),
                 "--cache-dir", str(tmp_path / "c"), "--device", "cpu", "--quiet", *map(str, flags)])
    return code, json.loads((tmp_path / "r.json").read_text()) if code == 0 else {}


def test_model_flag_reaches_the_model_manager(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("SCENE2VIDEO_MODEL", "org/not-this-one")  # the flag wins over the environment
    code, report = render_in_process(tmp_path, "--model", tiny_model_dir)
    assert code == 0
    assert report["model"] == str(Path(tiny_model_dir).resolve())
    assert [s["source"] for s in report["scenes"]] == ["ai"]


def test_model_env_reaches_the_model_manager(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENE2VIDEO_MODEL", "org/env-model")
    code, report = render_in_process(tmp_path)
    assert code == 0 and report["model"] == "org/env-model"
    assert report["scenes"][0]["reason"].startswith("Model 'org/env-model' could not be loaded")
    assert "offline" in report["scenes"][0]["reason"]


def test_render_help_lists_only_render_flags_each_with_help():
    result = cli("render", "--help")
    assert result.returncode == 0
    flags = re.findall(r"^  (-\w|--[a-z-]+)", result.stdout, re.M)
    assert set(flags) == {"-h", "-o", "--report", "--no-ai", "--quiet", "--model", "--device",
                          "--batch-size", "--cache-dir", "--cache-max-mb", "--backend", "--remote-model", "--remote-provider",
                          "--remote-quality", "--max-requests-in-flight", "--remote-timeout",
                          "--allow-pickle-weights", "--max-scenes", "--max-total-seconds", "--max-quality",
                          "--controlnet-model", "--decoder", "--tiny-decoder", "--video-model", "--clip-size"}, flags
    for flag in flags:  # every flag says what it does, on its own line or the next
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(flag))
        following = result.stdout.splitlines()[result.stdout.splitlines().index(line) + 1]
        assert len(line.split(None, 2)) > 2 or following.startswith(" " * 10), f"{flag} has no help"
    assert "--max-queue" not in result.stdout and "--auth" not in result.stdout
    from dataclasses import fields

    from pipeline.contract.settings import SETTING_HELP, Settings

    assert set(SETTING_HELP) == {item.name for item in fields(Settings)}  # app.py's flags have help too


def assert_one_bar_with_messages_above_it(stderr: str) -> None:
    order = ["loading", "keyframes", "composing", "encoding"]
    stages = [m for m in re.findall(r"(?:^|\r)(\w+)\s+\d+%\|", stderr, re.M)]
    ranks = [order.index(stage) for stage in stages]
    assert ranks and ranks == sorted(ranks), stages  # the bar never flips back to an earlier stage
    for line in stderr.split("\n"):  # a message is a line of its own, never inside a bar update
        text = line.split("\r")[-1]
        assert not re.search(r"\d+%\|.*(WARNING|Scene \d+:|\[transformers\]|\[diffusers\])", text), line
    assert "requires torchvision" not in stderr  # advice to install what this project leaves out on purpose
    assert not re.search(r"\|\s*,", stderr), stderr  # the message follows the bar, with no stray comma
    assert re.search(r"\| scene \d+ of \d+", stderr), stderr


def test_no_ai_bar_keeps_its_stage_order_and_warnings_sit_above_it(tmp_path):
    sb = tmp_path / "sb.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "a", "duration": 1.5}, {"prompt": "b", "duration": 1.5}],
                              "quality": "draft", "use_ai": True}))
    result = cli("render", sb, "-o", tmp_path / "out.mp4", "--report", tmp_path / "r.json", "--no-ai",
                 "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert [s["source"] for s in json.loads((tmp_path / "r.json").read_text())["scenes"]] == ["placeholder"] * 2
    assert_one_bar_with_messages_above_it(result.stderr)


def test_offline_default_model_bar_keeps_its_stage_order_and_library_messages_sit_above_it(offline_default_run):
    """The default hub model offline: diffusers and transformers are imported mid-render, and the
    placeholders arrive while the first frames are composed (the bar used to flip back to keyframes,
    and transformers printed into the bar)."""
    assert_one_bar_with_messages_above_it(offline_default_run[0].stderr)


def test_cli_says_which_animated_scenes_are_stills_and_why(tmp_path, tiny_model_dir):
    sb = tmp_path / "moving.json"
    sb.write_text(json.dumps({"scenes": [{"prompt": "a fox", "duration": 0.5, "seed": 3, "motion_prompt": "it runs"},
                                         {"prompt": "a lake", "duration": 0.5, "seed": 4}],
                              "quality": "draft", "fps": 8, "transition": "generated", "animate": True, "steps": 1}))
    result = cli("render", sb, "-o", tmp_path / "out.mp4", "--report", tmp_path / "r.json", "--model", tiny_model_dir,
                 "--device", "cpu", "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    # No GPU here, so no video model unless --video-model names one: each scene a still, the reason said once.
    said = result.stdout + result.stderr
    assert "Scenes 1, 2: a still, not a clip — no video model on this server" in said
    assert said.count("a still, not a clip") == 1
    assert "Transition 1→2: crossfade instead of the generated transition — no video model on this server" in said
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(s["source"], s["frames"]) for s in report["scenes"]] == [("ai", "still"), ("ai", "still")]
    assert all("no video model" in s["clip_reason"] for s in report["scenes"])
    assert report["transitions"][0]["made"] == "crossfade"

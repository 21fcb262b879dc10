"""In the browser, the live video plays while later keyframes are still being made (one event stream)."""

import shutil
import time

import pytest

from pipeline.images.plan import generation_settings
from server import app_settings, counting_unet_calls, running_app
from ui.examples import example_names, load_example

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
              pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                 reason="streaming needs the system ffmpeg and ffprobe")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECONDS_PER_IMAGE = 2.0

PLAYING_AND_KEYFRAMES = """() => ({
    playing: [...document.querySelectorAll('video')].some(v => v.currentTime > 0 && !v.paused),
    keyframes: document.querySelectorAll('#gallery img').length,
})"""


def test_the_live_video_plays_before_the_last_keyframe_exists(tmp_path, tiny_model_dir):
    from playwright.sync_api import sync_playwright

    storyboard = load_example(example_names()[0])  # what the page opens with
    # One image per model call, so each keyframe takes its own 2 s (a batch would make them all at once).
    with running_app(app_settings(tmp_path, model=str(tiny_model_dir), batch_size=1)) as (url, pool):
        model = pool.get().model
        model.load()
        steps = generation_settings(storyboard, model).steps
        with counting_unet_calls(model, step_s=SECONDS_PER_IMAGE / steps), sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#generate")
            page.click("#generate")
            deadline, seen = time.monotonic() + 120, []
            while time.monotonic() < deadline:
                state = page.evaluate(PLAYING_AND_KEYFRAMES)
                seen.append(state)
                if state["playing"]:
                    break
                page.wait_for_timeout(50)
            browser.close()
    assert seen[-1]["playing"], f"the live video never played: {seen[-3:]}"
    assert seen[-1]["keyframes"] < len(storyboard.scenes), "the video only played once every keyframe existed"

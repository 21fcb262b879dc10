"""In the browser, the live video plays while later keyframes are still being made (one event stream)."""

import shutil
import time
from contextlib import contextmanager

import pytest

from server import app_settings, running_app
from test_browser import FLAGS, edit
from ui.examples import example_names, load_example

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
              pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                 reason="streaming needs the system ffmpeg and ffprobe")]

SECONDS_PER_IMAGE = 3.0

PLAYING_AND_KEYFRAMES = """() => ({
    playing: [...document.querySelectorAll('video')].some(v => v.currentTime > 0 && !v.paused),
    keyframes: document.querySelectorAll('#gallery img').length,
})"""


@contextmanager
def seconds_per_image(model, seconds: float):
    """Make the loaded tiny model's one denoising step take ``seconds`` per image of the batch, like a
    real model on a slow machine (sleeping, so the server and the browser keep running meanwhile)."""
    model.load()
    unet = model.pipeline.unet
    original = unet.forward

    def forward(sample, *args, **kwargs):
        images = sample.shape[0] // (2 if model.pipeline.do_classifier_free_guidance else 1)
        time.sleep(seconds * images)
        return original(sample, *args, **kwargs)

    unet.forward = forward
    try:
        yield
    finally:
        del unet.forward  # the class's own forward again


def test_the_live_video_plays_before_the_last_keyframe_exists(tmp_path, tiny_model_dir):
    from playwright.sync_api import sync_playwright

    storyboard = load_example(example_names()[0])  # what the page opens with
    with running_app(app_settings(tmp_path, model=str(tiny_model_dir))) as (url, pool):
        with seconds_per_image(pool.get().model, SECONDS_PER_IMAGE), sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#generate")
            # A first scene long enough for whole segments to be encoded before scene 2 exists
            # (x264 looks ahead a second or so before it closes a segment).
            edit(page, 0, 1, 8)
            # One step per image: a batch then sends no step preview until all its images exist.
            page.get_by_text("Advanced", exact=True).click()
            steps = page.locator("label:has-text('Steps') input")
            for _ in range(3):  # a field just shown may reset once
                steps.fill("1")
                steps.press("Tab")
                page.wait_for_timeout(200)
                if steps.input_value() == "1":
                    break
            page.click("#generate")
            started = time.monotonic()
            deadline, seen = time.monotonic() + 120, []
            while time.monotonic() < deadline:
                state = page.evaluate(PLAYING_AND_KEYFRAMES)
                state["at"] = round(time.monotonic() - started, 1)
                seen.append(state)
                if state["playing"]:
                    break
                page.wait_for_timeout(50)
            browser.close()
    assert seen[-1]["playing"], f"the live video never played: {seen[-3:]}"
    changes = [state for before, state in zip([{}, *seen], seen) if state["keyframes"] != before.get("keyframes")]
    assert seen[-1]["keyframes"] < len(storyboard.scenes), f"played only once every keyframe existed: {changes}"

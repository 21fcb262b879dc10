"""Restyling through the real server: the page's video upload in headless Chromium, and /render with a video file."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file

from server import app_settings, running_app
from source_clips import make_clip

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restyle_app")
    clip = make_clip(tmp / "two shots.mp4", (1.0, 1.5))
    with running_app(app_settings(tmp, model="no/such-model")) as (url, _pool):
        yield url, clip


def test_the_uploaded_video_becomes_its_shots_in_the_table(app):
    from playwright.sync_api import sync_playwright

    from ui.table import COLUMNS

    url, clip = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#scenes [data-row='0'][data-col='0']")
            page.click("text=Restyle a video")
            page.locator("#field-source_video input[type=file]").set_input_files(str(clip))
            page.wait_for_function("() => document.querySelector('#notice').innerText.includes('shot(s) found')",
                                   timeout=60_000)
            assert "2 shot(s) found" in page.locator("#notice").inner_text()
            start, end = COLUMNS.index("source_start"), COLUMNS.index("source_end")
            page.wait_for_selector(f"#scenes [data-row='1'][data-col='{end}']")
            cells = [[page.locator(f"#scenes [data-row='{r}'][data-col='{c}']").inner_text().strip()
                      for c in (start, end)] for r in (0, 1)]
            assert cells == [["0", "1"], ["1", "2.5"]]
            assert page.locator("#scenes [data-row='2'][data-col='0']").count() == 0
        finally:
            browser.close()


def test_render_api_takes_the_video_as_a_file_and_keeps_its_sound(app):
    url, clip = app
    client = Client(url, verbose=False)
    board = json.dumps({"scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1},
                                   {"prompt": "chalk", "source_start": 1, "source_end": 2.5}],
                        "quality": "draft", "fps": 12, "use_ai": False, "transition": "cut"})
    video, report = client.predict(board, None, None, handle_file(str(clip)), api_name="/render")
    assert report["frames"] == 30 and report["audio"] and [s["length"] for s in report["scenes"]] == [1.0, 1.5]

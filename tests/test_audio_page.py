"""The soundtrack through the real server: /render with an audio file, and the page in headless Chromium."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from gradio_client import Client, handle_file

from server import app_settings, running_app
from sound import click_track, probe_audio_stream, write_wav

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
CLICKS = 0.37 + 0.5 * np.arange(20)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audio_app")
    write_wav(tmp / "clicks.wav", click_track(10.0, CLICKS))
    with running_app(app_settings(tmp, model="no/such-model")) as (url, _pool):
        yield url, tmp / "clicks.wav"


def storyboard(**fields) -> str:
    return json.dumps({"scenes": [{"prompt": "a drum", "duration": 1.3}, {"prompt": "a bass", "duration": 1.4}],
                       "quality": "draft", "use_ai": False, "transition": "cut", **fields})


def test_render_api_takes_the_audio_as_a_file(app):
    url, song = app
    client = Client(url, verbose=False)
    video, report = client.predict(storyboard(cut_on_beats=True, fit="scenes"), handle_file(str(song)),
                                   api_name="/render")
    assert report["audio"] is True and len(report["beats"]) == 1
    assert abs(report["scenes"][1]["start"] - 1.37) <= 1 / 24
    audio = probe_audio_stream(video)
    assert audio.codec == "aac" and abs(audio.duration - report["duration"]) <= 1 / 24


def test_render_api_refuses_a_path_in_the_json(app):
    url, song = app
    with pytest.raises(Exception, match="audio must be sent as a file"):
        Client(url, verbose=False).predict(storyboard(audio=str(song)), api_name="/render")


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_page_uploads_a_song_cuts_on_its_beats_and_the_live_video_has_sound(app):
    from playwright.sync_api import sync_playwright

    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("the live video needs the system ffmpeg and ffprobe")
    url, song = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#generate")
            page.click("text=Soundtrack")
            page.locator("#audio input[type=file]").set_input_files(str(song))
            page.wait_for_selector("#audio #waveform", state="attached", timeout=20_000)  # its waveform is drawn
            page.locator("#cut-on-beats input").check()
            page.get_by_text("Advanced", exact=True).click()
            page.locator("label:has-text('Use the AI model') input").uncheck()
            page.click("#generate")
            # The live player decodes sound from the streamed segments while the render goes on.
            page.wait_for_function("() => { const v = document.querySelector('#live video');"
                                   " return v && v.webkitAudioDecodedByteCount > 0 }", timeout=120_000)
            page.wait_for_function("() => document.querySelector('#notice').innerText.includes('fitting to the audio')",
                                   timeout=120_000)
            notice = page.locator("#notice").inner_text()
            assert "cuts on" in notice and "beat" in notice
            page.wait_for_function("() => { const v = document.querySelector('#video video');"
                                   " return v && v.readyState >= 2 }", timeout=60_000)
        finally:
            browser.close()

"""A user in headless Chromium: edits the table, presses Generate, watches, stops, fixes a bad row."""

import os
import shutil
import time
from pathlib import Path

import pytest

from server import STOP_BOUND_S, app_settings, assert_stopped, counting_unet_calls, render_folders, running_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    settings = app_settings(tmp_path_factory.mktemp("browser"), model=str(tiny_model_dir))
    with running_app(settings) as (url, pool):
        yield url, pool


@pytest.fixture(scope="module")
def app_url(app):
    return app[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector("#generate")
    yield page
    page.close()


def cell(page, row, col):
    return page.locator(f'#scenes [data-row="{row}"][data-col="{col}"]')


def edit(page, row, col, text):
    """Type into a table cell the way a user does: double-click, replace the text, Enter."""
    for _ in range(3):
        cell(page, row, col).dblclick()
        page.wait_for_function("() => document.activeElement && document.activeElement.tagName === 'TEXTAREA'",
                               timeout=5_000)
        page.keyboard.press("Control+A")
        page.keyboard.type(str(text))
        page.keyboard.press("Enter")
        page.wait_for_timeout(200)
        if cell(page, row, col).inner_text().split("\n")[0].strip() == str(text):
            return
    raise AssertionError(f"could not edit cell {row},{col}")


def set_number(page, label, value):
    """Type into a number field and make sure the page kept it (a field just shown may reset once)."""
    field = page.locator(f"label:has-text('{label}') input")
    for _ in range(3):
        field.fill(str(value))
        field.press("Tab")
        page.wait_for_timeout(200)
        if field.input_value() == str(value):
            return
    raise AssertionError(f"could not set {label} to {value}")


def delete_scene(page, number):
    page.locator("label:has-text('Scene #') input").fill(str(number))
    page.click("button:has-text('✕ Delete')")
    page.wait_for_timeout(300)


def table_text(page):
    return [cell(page, row, col).inner_text().split("\n")[0] for row in range(4) for col in range(2)
            if cell(page, row, col).count()]


def video_state(page, selector):
    return page.evaluate(f"""() => {{ const v = document.querySelector('{selector} video');
        return v ? {{ready: v.readyState, duration: v.duration, time: v.currentTime, paused: v.paused}} : null }}""")


def test_generate_shows_keyframes_then_a_playing_video(page):
    delete_scene(page, 4)
    delete_scene(page, 3)
    edit(page, 0, 0, "a lighthouse in a storm, dramatic clouds")
    edit(page, 0, 1, 1.5)
    page.click("#generate")
    page.wait_for_selector("#generate[disabled], #generate:disabled", timeout=5000)  # one render at a time
    page.wait_for_selector("#gallery img", timeout=120_000)
    page.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 2 }",
                           timeout=180_000)
    state = video_state(page, "#video")
    assert abs(state["duration"] - 4.5) <= 1 / 24 + 0.01
    page.evaluate("document.querySelector('#video video').play()")
    page.wait_for_function("() => document.querySelector('#video video').currentTime > 0.3", timeout=20_000)
    assert page.locator("#gallery img").count() >= 2
    assert "Done" in page.locator("#notice").inner_text()
    assert page.locator("#generate").is_enabled()
    if os.environ.get("SCENE2VIDEO_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


LIVE_AND_PROGRESS = """() => {
    const video = document.querySelector('#live video');
    const bar = document.querySelector('#progress .s2v-progress[data-percent]');
    return {time: video ? video.currentTime : null, percent: bar ? Number(bar.dataset.percent) : null,
            text: bar ? bar.innerText : null, finished: !!document.querySelector('#video video')};
}"""


def test_live_video_plays_while_the_render_is_still_running(page):
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("streaming needs the system ffmpeg and ffprobe")
    page.click("text=Advanced")
    page.locator("label:has-text('Use the AI model') input").uncheck()
    for row in range(4):
        edit(page, row, 1, 5)  # 20 s of placeholders (10 segments): seconds of composing and encoding
    page.click("#generate")
    deadline, seen = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        state = page.evaluate(LIVE_AND_PROGRESS)  # one read: playback position and progress together
        seen.append(state)
        if state["time"] and state["percent"] is not None and state["percent"] < 100 and not state["finished"]:
            break  # the live video plays while the server still reports progress
        assert not state["finished"] and state["percent"] != 100, f"the render ended before playback: {seen[-5:]}"
        page.wait_for_timeout(50)
    else:
        raise AssertionError(f"playback never started: {seen[-5:]}")
    page.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 2 }",
                           timeout=180_000)
    assert abs(video_state(page, "#video")["duration"] - 20) <= 1 / 24 + 0.01


def test_bad_row_shows_a_message_and_keeps_the_table(page):
    edit(page, 1, 1, 500)
    before = table_text(page)
    page.click("#generate")
    page.wait_for_function(  # the notice under the buttons says which row and what to fix
        "() => document.querySelector('#notice').innerText.includes("
        "'Scene 2: duration must be between 0.5 and 60 seconds')", timeout=10_000)
    assert table_text(page) == before
    page.wait_for_function("() => !document.querySelector('#generate').disabled", timeout=10_000)
    edit(page, 1, 1, 1)
    for number in (4, 3):
        delete_scene(page, number)
    page.click("#generate")
    page.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 2 }",
                           timeout=180_000)


SHOWN_ERRORS = """() => [...document.querySelectorAll('[data-testid="toast-body"].error, .error')]
    .filter(e => e.offsetParent !== null).map(e => e.innerText)"""


def test_stop_ends_the_render_on_the_server_and_the_next_generate_works(page, app):
    _, pool = app
    output_dir, model, steps = pool.settings.output_dir, pool.get().model, 100  # the most allowed
    page.click("text=Advanced")
    set_number(page, "Steps", steps)
    before = render_folders(output_dir)
    with counting_unet_calls(model, step_s=0.02) as calls:  # >= 2 s for one batch's 100 steps
        page.click("#generate")
        page.wait_for_function(  # denoising, with the steps asked for
            f"() => document.querySelector('#preview img') && document.querySelector('#preview')"
            f".innerText.includes('of {steps}')", timeout=120_000)
        stopped_at = time.monotonic()
        page.click("#stop")
        page.get_by_text("Render stopped.").first.wait_for(timeout=10_000)
        page.wait_for_function("() => !document.querySelector('#generate').disabled", timeout=10_000)
        assert time.monotonic() - stopped_at < 5, "the page took too long to say the render stopped"
        assert_stopped(output_dir, before, stopped_at, calls, bound_s=STOP_BOUND_S + 1)  # + the click's round trip
        assert calls[0] < steps, f"{calls[0]} UNet calls: the first scene finished, Stop did not stop it"
    assert page.locator("#video video").count() == 0
    assert page.evaluate(SHOWN_ERRORS) == [], "Stop is not an error"
    assert "❌" not in page.locator("#notice").inner_text()
    assert model.loaded
    set_number(page, "Steps", 1)
    page.click("#generate")
    page.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 2 }",
                           timeout=180_000)
    assert "Done" in page.locator("#notice").inner_text() and page.evaluate(SHOWN_ERRORS) == []


def test_a_second_visitor_waits_in_the_queue_and_sees_their_place(browser, app_url):
    pages = []
    for _ in range(2):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        page.wait_for_selector("#generate")
        page.click("text=Advanced")
        set_number(page, "Steps", 100)
        pages.append(page)
    first, second = pages
    first.click("#generate")
    first.wait_for_function("() => document.querySelector('#progress').innerText.includes('·')", timeout=60_000)
    second.click("#generate")
    second.wait_for_function("() => document.querySelector('#progress').innerText.includes('queue')", timeout=20_000)
    assert "queue: 1/1" in second.locator("#progress").inner_text()
    assert second.locator("#generate").is_disabled()
    first.click("#stop")  # the line moves on: the second render starts
    second.wait_for_function("() => document.querySelector('#progress').innerText.includes('scene')",
                             timeout=60_000)
    second.click("#stop")
    for page in pages:
        page.close()

"""pipeline.images.placeholder and pipeline.video.imaging: size, determinism, odd text, marks drawn, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.images import placeholder
from pipeline.video.imaging import fit_cover, load_rgb
from pipeline.images.placeholder import FONT_DIR, prompt_colours, render_placeholder

ODD_PROMPTS = [
    "Crème brûlée über café — naïve façade, Ærøskøbing",
    "東京の夜景、ネオンが光る街並み",
    "a fox 🦊 under the 🌌 with 👩‍👩‍👧 family 🏳️‍🌈",
    "x" * 500,
    "first line\nsecond line\n\n\nfourth\ttabbed",
    "control \x00 \x07 \x1b[31m chars and a lone surrogate \ud800",
    "مرحبا بالعالم — שלום עולם",
    "e\u0301 combining   marks" + " word" * 120,
    " ",
]


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_bundled_fonts_and_licence_exist() -> None:
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE-DejaVu.txt"):
        assert (FONT_DIR / name).is_file()


@pytest.mark.parametrize("width, height", [(854, 480), (1280, 720), (128, 72), (16, 9), (1, 1)])
def test_exact_size_and_mode(width: int, height: int) -> None:
    image = render_placeholder("a red fox in snow", 3, width, height)
    assert image.size == (width, height) and image.mode == "RGB"


@pytest.mark.parametrize("prompt", ODD_PROMPTS)
@pytest.mark.parametrize("width, height", [(854, 480), (128, 72)])
def test_odd_prompts_do_not_crash(prompt: str, width: int, height: int) -> None:
    image = render_placeholder(prompt, 12, width, height)
    assert image.size == (width, height)


def test_same_prompt_same_image_and_colours() -> None:
    first = render_placeholder("a lighthouse at night", 2, 96, 54)
    second = render_placeholder("a lighthouse at night", 2, 96, 54)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert prompt_colours("a lighthouse at night") == prompt_colours("a lighthouse at night")


def test_different_prompts_usually_differ() -> None:
    colours = {prompt_colours(f"scene about thing number {i}") for i in range(30)}
    assert len(colours) >= 28
    corner = {tuple(np.asarray(render_placeholder(f"prompt {i}", 1, 96, 54))[-1, 0]) for i in range(10)}
    assert len(corner) >= 8  # bottom-left corner: background only


def test_text_label_and_badge_are_drawn_over_the_gradient() -> None:
    width, height, prompt = 854, 480, "a red fox in snow"
    start, end = prompt_colours(prompt)
    plain = _array(Image.fromarray(placeholder._gradient(start, end, placeholder._angle(prompt), width, height)))
    drawn = _array(render_placeholder(prompt, 3, width, height))
    changed = np.abs(drawn - plain).max(axis=2) > 40
    top, right = slice(0, height // 8), slice(width * 3 // 4, width)
    assert changed[top, right].mean() > 0.05, "no PLACEHOLDER badge in the top-right corner"
    assert changed[top, : width // 4].any(), "no scene label in the top-left corner"
    assert changed[height // 3: 2 * height // 3, width // 4: 3 * width // 4].any(), "no prompt in the middle"
    assert not changed[-height // 8:].any(), "the bottom strip should be plain background"


def test_badge_is_amber() -> None:
    pixels = np.asarray(render_placeholder("anything", 1, 854, 480))[: 480 // 8, 854 * 3 // 4:]
    amber = np.all(np.abs(pixels.astype(int) - placeholder._BADGE_COLOUR) < 8, axis=2)
    assert amber.sum() > 200


def test_scene_number_changes_only_the_label() -> None:
    three = _array(render_placeholder("same prompt", 3, 854, 480))
    four = _array(render_placeholder("same prompt", 4, 854, 480))
    differs = np.abs(three - four).max(axis=2) > 0
    assert differs[: 480 // 8, : 854 // 4].any()
    assert not differs[480 // 4:].any()


def test_ink_contrasts_with_the_background() -> None:
    assert placeholder._contrasting_ink((20, 20, 40), (40, 10, 30)) == (255, 255, 255)
    assert placeholder._contrasting_ink((240, 230, 250), (220, 200, 230))[0] < 128


def test_text_that_does_not_fit_is_ellipsised() -> None:
    font, lines = placeholder._fit_text("word " * 400, 700, 260, 480)
    assert lines[-1].endswith("…")
    assert all(font.getlength(line) <= 700 for line in lines)
    assert len(lines) * placeholder._line_height(font) <= 260 + placeholder._line_height(font)


def test_long_word_is_broken_to_fit() -> None:
    font = placeholder._font("DejaVuSans.ttf", 20)
    lines = placeholder._wrap("a" + "b" * 300 + " c", font, 200)
    assert len(lines) > 2 and all(font.getlength(line) <= 200 for line in lines)
    assert "".join(lines).replace(" ", "") == "a" + "b" * 300 + "c"


def test_fast_at_720p() -> None:
    render_placeholder("warm-up", 1, 1280, 720)
    started = time.perf_counter()
    for i in range(5):
        render_placeholder(f"a long prompt {i} about mountains, a lake and a sunset over the water", i, 1280, 720)
    per_image = (time.perf_counter() - started) / 5
    assert per_image < 0.060, f"{per_image * 1000:.0f} ms per 1280x720 placeholder (target < 30 ms)"


# --- imaging --------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(512, 512), (1024, 576), (300, 900), (2000, 500), (64, 36)])
def test_fit_cover_gives_exact_size_without_stretching(size: tuple[int, int]) -> None:
    # A white disc on black: stretched, its bounding box would stop being square.
    source = Image.new("L", size, 0)
    radius, cx, cy = min(size) // 4, size[0] // 2, size[1] // 2
    ImageDraw.Draw(source).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    fitted = fit_cover(source.convert("RGBA"), 160, 90)
    assert fitted.size == (160, 90) and fitted.mode == "RGB"
    rows, cols = np.nonzero(np.asarray(fitted)[:, :, 0] > 127)
    if rows.size and rows.min() > 0 and rows.max() < 89:  # disc wholly inside: it must still be round
        assert abs((cols.max() - cols.min()) - (rows.max() - rows.min())) <= 2


def test_load_rgb_fits_when_asked(tmp_path) -> None:
    path = tmp_path / "key.png"
    Image.new("RGBA", (64, 64), (10, 20, 30, 128)).save(path)
    raw = load_rgb(path)
    assert raw.shape == (64, 64, 3) and raw.dtype == np.uint8
    fitted = load_rgb(path, 96, 54)
    assert fitted.shape == (54, 96, 3) and fitted.flags.c_contiguous and np.all(fitted == (10, 20, 30))


def test_cjk_prompt_uses_a_cjk_font_when_the_system_has_one():
    from pipeline.images import placeholder

    if placeholder._cjk_font_path() is None:
        pytest.skip("no Noto CJK font installed (Debian: fonts-noto-cjk)")
    assert placeholder._text_font_name("東京の夜景 at night").endswith(".ttc")
    assert placeholder._text_font_name("café at night") == placeholder._REGULAR


def _ink(prompt: str, width: int = 854, height: int = 480, number: int = 1) -> np.ndarray:
    """Where anything is drawn over the plain gradient (True per pixel)."""
    start, end = prompt_colours(prompt)
    plain = _array(Image.fromarray(placeholder._gradient(start, end, placeholder._angle(prompt), width, height)))
    return np.abs(_array(render_placeholder(prompt, number, width, height)) - plain).max(axis=2) > 0


def test_everything_drawn_stays_where_camera_motion_never_crops() -> None:
    from pipeline.video.timeline import PAN_FRACTION, ZOOM_AMOUNT

    zoom_crop = (1 - 1 / (1 + ZOOM_AMOUNT)) / 2
    assert placeholder.SAFE_X >= max(PAN_FRACTION, zoom_crop) and placeholder.SAFE_Y >= zoom_crop
    for prompt in ("w" * 300, "a lighthouse in a storm " * 20, "Ünïcödé wörds " * 30):
        ink = _ink(prompt, number=100)
        ys, xs = np.nonzero(ink)
        assert xs.min() >= 854 * placeholder.SAFE_X - 1 and xs.max() <= 854 * (1 - placeholder.SAFE_X) + 1
        assert ys.min() >= 480 * placeholder.SAFE_Y - 1 and ys.max() <= 480 * (1 - placeholder.SAFE_Y) + 1


def test_emoji_are_left_out_never_drawn_as_boxes() -> None:
    assert not _ink("🦊🌌👩‍👩‍👧🏳️‍🌈")[480 // 4: 3 * 480 // 4].any(), "emoji drew something (a box?)"
    assert placeholder._clean("a fox 🦊 under the 🌌 sky") == "a fox under the sky"

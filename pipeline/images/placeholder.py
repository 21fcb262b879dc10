"""A placeholder keyframe for a scene the model could not draw (or when AI is off).

It should look intended, not broken: a smooth two-colour gradient derived from
the prompt (same prompt, same colours), the prompt itself word-wrapped in the
middle, "Scene N" in the top-left corner and a "PLACEHOLDER" badge in the
top-right. Any text is accepted: CJK is drawn with Noto Sans CJK when the system has
it, emoji are left out (never drawn as boxes), and text that does not fit is ellipsised.
Everything drawn stays inside a safe area that camera motion never crops.
"""

from __future__ import annotations

import colorsys
import hashlib
import unicodedata
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(__file__).resolve().parents[2] / "assets" / "fonts"
_REGULAR = "DejaVuSans.ttf"
_BOLD = "DejaVuSans-Bold.ttf"
_MIN_FONT_PX = 6
_BADGE_COLOUR = (255, 196, 0)  # amber, readable over any gradient with black text
_Colour = tuple[int, int, int]
# Camera motion crops the frame's edges (pipeline.video.timeline): a pan sees 90% of the width and
# travels the other 10%, a zoom to 1.12x hides 5.4% per side. Text and marks stay inside these margins.
SAFE_X = 0.11
SAFE_Y = 0.07


def render_placeholder(prompt: str, scene_number: int, width: int, height: int) -> Image.Image:
    """Return an RGB image of exactly ``width`` x ``height`` standing in for scene ``scene_number``.

    Deterministic: the same arguments give the same pixels. Never raises for
    odd text (accents, CJK, emoji, newlines, very long words, control characters).
    """
    if width < 1 or height < 1:
        raise ValueError(f"Placeholder size must be positive, got {width}x{height}.")
    start, end = prompt_colours(prompt)
    image = Image.fromarray(_gradient(start, end, _angle(prompt), width, height))
    draw = ImageDraw.Draw(image)
    ink = _contrasting_ink(start, end)
    _draw_prompt(draw, _clean(prompt), ink, width, height)
    _draw_scene_label(draw, scene_number, ink, width, height)
    _draw_badge(draw, width, height)
    return image


def prompt_colours(prompt: str) -> tuple[_Colour, _Colour]:
    """The gradient's two colours for ``prompt``: stable across runs, usually different per prompt."""
    digest = hashlib.sha256(prompt.encode("utf-8", "replace")).digest()
    hue = digest[0] / 255
    hue_step = 0.12 + 0.25 * digest[1] / 255  # far enough apart to read as a gradient
    # One palette in four is light (pastel), the rest dark: both look deliberate.
    light = digest[2] % 4 == 0
    saturation = (0.25 if light else 0.55) + 0.2 * digest[3] / 255
    value = (0.85 if light else 0.30) + 0.12 * digest[4] / 255
    return _hsv(hue, saturation, value), _hsv((hue + hue_step) % 1.0, saturation, value * 0.8)


def _hsv(hue: float, saturation: float, value: float) -> _Colour:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, min(1.0, value))
    return round(red * 255), round(green * 255), round(blue * 255)


def _angle(prompt: str) -> float:
    digest = hashlib.md5(prompt.encode("utf-8", "replace")).digest()
    return digest[0] / 255 * 2 * np.pi


def _gradient(start: _Colour, end: _Colour, angle: float, width: int, height: int) -> np.ndarray:
    """A linear gradient from ``start`` to ``end`` along ``angle``, corner to corner, as uint8 RGB."""
    # Position along the direction is linear in x and y: the outer sum of a
    # column and a row vector, 0 at one extreme corner and 1 at the other.
    dx, dy = np.cos(angle), np.sin(angle)
    xs = (np.arange(width, dtype=np.float32) - (width - 1) / 2) * dx
    ys = (np.arange(height, dtype=np.float32) - (height - 1) / 2) * dy
    span = abs(dx) * max(width - 1, 1) + abs(dy) * max(height - 1, 1)
    position = np.add.outer(ys / span, xs / span) + np.float32(0.5)
    # One fused scale-offset-round-saturate pass per channel (values are never
    # negative, so the "Abs" is a no-op): ~10x faster than numpy float maths.
    channels = [
        cv2.convertScaleAbs(position, alpha=float(b - a), beta=float(a)) for a, b in zip(start, end)
    ]
    return cv2.merge(channels)


def _luminance(colour: _Colour) -> float:
    """WCAG relative luminance of an sRGB colour."""
    channels = [c / 255 for c in colour]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrasting_ink(start: _Colour, end: _Colour) -> _Colour:
    """White or near-black, whichever has the better worst-case contrast over the whole gradient."""
    lums = [_luminance(start), _luminance(end)]
    white = min(1.05 / (lum + 0.05) for lum in lums)
    black = min((lum + 0.05) / 0.05 for lum in lums)
    return (255, 255, 255) if white >= black else (20, 20, 20)


def _clean(prompt: str) -> str:
    # Drop control characters and lone surrogates (either can make FreeType or
    # the encoder choke); keep newlines, which the user meant as line breaks.
    text = prompt.encode("utf-8", "replace").decode("utf-8")
    kept = "".join(ch for ch in text if ch == "\n" or (unicodedata.category(ch) not in ("Cc", "Cs")
                                                       and not _is_emoji(ch)))
    return "\n".join(" ".join(line.split()) for line in kept.split("\n")).strip()


def _is_emoji(ch: str) -> bool:
    """Emoji and their joiners and modifiers: no font here draws them in a frame, so they are left out."""
    code = ord(ch)
    return code >= 0x1F000 or code in (0x200D, 0xFE0E, 0xFE0F, 0x20E3) or 0xE0020 <= code <= 0xE007F


# DejaVu has no CJK glyphs; Noto Sans CJK (Debian's fonts-noto-cjk, listed in packages.txt)
# covers CJK and Latin, so a prompt that needs it is drawn with it whole.
_CJK_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc"),
)
_CJK_RANGES = ((0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x20000, 0x2FA1F))


def _needs_cjk(text: str) -> bool:
    return any(low <= ord(ch) <= high for ch in text for low, high in _CJK_RANGES)


@lru_cache(maxsize=1)
def _cjk_font_path() -> Path | None:
    return next((path for path in _CJK_FONTS if path.exists()), None)


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = Path(name) if Path(name).is_absolute() else FONT_DIR / name
    return ImageFont.truetype(str(path), max(_MIN_FONT_PX, size))


def _text_font_name(text: str) -> str:
    """The font for the prompt: DejaVu, or a system CJK font when the prompt needs one and it exists."""
    cjk = _cjk_font_path() if _needs_cjk(text) else None
    return str(cjk) if cjk else _REGULAR


def _draw_prompt(draw: ImageDraw.ImageDraw, text: str, ink: _Colour, width: int, height: int) -> None:
    """Draw ``text`` centred, shrinking the font down to a floor, then ellipsising."""
    box_w, box_h = width * (1 - 2 * SAFE_X), height * 0.56
    font, lines = _fit_text(text, box_w, box_h, height)
    line_h = _line_height(font)
    top = (height - line_h * len(lines)) / 2
    light_ink = ink[0] > 128
    for row, line in enumerate(lines):
        y = top + row * line_h + line_h / 2
        if light_ink:  # a 1 px drop shadow lifts light text off the brighter end of the gradient
            draw.text((width / 2 + 1, y + 1), line, font=font, fill=(0, 0, 0), anchor="mm")
        draw.text((width / 2, y), line, font=font, fill=ink, anchor="mm")


def _fit_text(text: str, box_w: float, box_h: float, height: int) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    largest, smallest = max(_MIN_FONT_PX, round(height * 0.075)), max(_MIN_FONT_PX, round(height * 0.045))
    name = _text_font_name(text)
    for size in range(largest, smallest - 1, -max(1, (largest - smallest) // 4)):
        font = _font(name, size)
        lines = _wrap(text, font, box_w)
        if len(lines) * _line_height(font) <= box_h:
            return font, lines
    font = _font(name, smallest)
    max_lines = max(1, int(box_h // _line_height(font)))
    lines = _wrap(text, font, box_w)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _ellipsise(lines[-1], font, box_w)
    return font, lines


def _line_height(font: ImageFont.FreeTypeFont) -> float:
    return font.size * 1.3


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Greedy word wrap; words wider than a line are broken between characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = word
            while font.getlength(current) > max_width and len(current) > 1:
                head = _longest_prefix(current, font, max_width)
                lines.append(head)
                current = current[len(head):]
        if current:
            lines.append(current)
    return lines or [""]


def _longest_prefix(word: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    # Binary search: getlength is monotone in the prefix length; keep at least one character.
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return word[:lo]


def _ellipsise(line: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    """``line`` cut short enough to end in "…" within ``max_width`` (the "…" is always added)."""
    body = line.rstrip()
    while body and font.getlength(body + "…") > max_width:
        body = body[:-1].rstrip()
    return body + "…"


def _draw_scene_label(draw: ImageDraw.ImageDraw, scene_number: int, ink: _Colour, width: int, height: int) -> None:
    font = _font(_BOLD, round(height * 0.055))
    draw.text((_margin(width, SAFE_X), _margin(height, SAFE_Y)), f"Scene {scene_number}", font=font, fill=ink)


def _margin(size: int, share: float) -> int:
    return max(2, round(size * share))


def _draw_badge(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    """An amber "PLACEHOLDER" pill in the top-right corner, visible on any background."""
    font = _font(_BOLD, round(height * 0.04))
    pad = max(1, round(height * 0.015))
    left, top, right, bottom = draw.textbbox((0, 0), "PLACEHOLDER", font=font)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = width - _margin(width, SAFE_X) - box_w, _margin(height, SAFE_Y)
    draw.rounded_rectangle((x0, y0, x0 + box_w, y0 + box_h), radius=box_h // 3, fill=_BADGE_COLOUR)
    draw.text((x0 + pad - left, y0 + pad - top), "PLACEHOLDER", font=font, fill=(20, 20, 20))

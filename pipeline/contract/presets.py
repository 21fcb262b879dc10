"""Quality presets: exact output size, frame rate, encoder settings and model steps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """What a quality name means for the output file and the model.

    ``width``/``height`` are exact: every encoded frame has this size.
    ``steps_distilled`` is for one-step/few-step models (sd-turbo, sdxl-turbo);
    ``steps_full`` and ``guidance_full`` for classic models such as SD 1.5.
    """

    name: str
    width: int
    height: int
    fps: int
    crf: int
    x264_preset: str
    steps_distilled: int
    steps_full: int
    guidance_full: float = 7.5


PRESETS: dict[str, Preset] = {
    "draft": Preset("draft", 854, 480, 24, crf=28, x264_preset="veryfast", steps_distilled=1, steps_full=15),
    "standard": Preset("standard", 1280, 720, 24, crf=23, x264_preset="fast", steps_distilled=2, steps_full=25),
    "high": Preset("high", 1920, 1080, 24, crf=20, x264_preset="medium", steps_distilled=4, steps_full=30),
    # The best encode we offer: 30 fps, near-transparent CRF and the slow x264 preset.
    "premium": Preset("premium", 1920, 1080, 30, crf=17, x264_preset="slow", steps_distilled=4, steps_full=40),
}

QUALITY_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``; the storyboard has already validated it."""
    return PRESETS[name]

"""Restyling: how steady (Lai et al.'s warping error, flow against none) and how fast (720p, K = 8 against every frame).

The footage is made here by ffmpeg's test sources (tests/source_clips.py): panning shots cut
together. The model is the tiny random Stable Diffusion pipeline of tests/tiny_model.py on the
CPU, through the app's own loader and its image-to-image path (``RestyleStage.redraw_frame``), the
same seed for both settings.

1. Warping error (ECCV 2018): two shots (mandelbrot, SMPTE bars) of 1.5 s at 16 fps, 160x90; each
   shot restyled with coherence ``flow`` (K = 8) and ``none``; the mean over both shots' frame pairs
   of the squared difference (0..1 pixels) between an output frame and the next one warped back by
   the source's flow, on pixels the forward-backward check trusts. The source itself is listed as the
   floor (what flow errors alone cost). Target: flow at most a quarter of none.
2. Speed: one 2 s shot at 24 fps (48 frames) at 720p (1280x720): frames restyled per second with
   K = 8 against every frame redrawn, decode and footage writing included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import busy_note, env_lines, environment, publish, verdict  # noqa: E402

from pipeline import parse_storyboard  # noqa: E402
from pipeline.restyle.coherence import ShotPlan, restyle_shot  # noqa: E402
from pipeline.restyle.source import decode_frames  # noqa: E402
from pipeline.restyle.stage import RestyleStage  # noqa: E402
from pipeline.restyle.warping_error import warping_error  # noqa: E402
from source_clips import make_clip  # noqa: E402
from tiny_model import build_tiny_pipeline  # noqa: E402

HEADING = "## Restyling (bench/restyle.py)"
TARGET = 0.25


def _stage(model_dir: Path):
    from pipeline.images.diffusers_backend import ModelManager

    manager = ModelManager(str(model_dir), device="cpu", local_files_only=True)
    manager.load()
    return RestyleStage(manager)


def _restyled(stage: RestyleStage, source: Path, fps: int, width: int, height: int, start: float, count: int,
              coherence: str, interval: int = 8):
    storyboard = parse_storyboard({"scenes": [{"prompt": "ink drawing", "source_start": start,
                                               "source_end": start + count / fps, "seed": 7}],
                                   "source_video": str(source), "quality": "draft", "fps": fps, "steps": 2,
                                   "look_strength": 0.5})
    redraw, shot = stage.redrawer(storyboard, 0)
    frames = decode_frames(source, fps, width, height, start, count)
    return restyle_shot(frames, ShotPlan(count, coherence, interval), redraw), shot


def warping(stage: RestyleStage, folder: Path) -> dict:
    fps, seconds, width, height = 16, 1.5, 160, 90
    clip = make_clip(folder / "two shots.mp4", (seconds, seconds), width, height, fps, audio=False,
                     sources=("mandelbrot", "smptehdbars"))
    count = round(seconds * fps)
    source = list(decode_frames(clip, fps, width, height))
    result = {"floor": warping_error(source, source, [count])}
    for coherence in ("none", "flow"):
        out = []
        for shot in range(2):
            frames, _ = _restyled(stage, clip, fps, width, height, shot * seconds, count, coherence)
            out += list(frames)
        result[coherence] = warping_error(out, source, [count])
    return result


def speed(stage: RestyleStage, folder: Path) -> dict:
    fps, count = 24, 48
    clip = make_clip(folder / "720p.mp4", (count / fps,), 1280, 720, fps, audio=False, sources=("mandelbrot",))
    result = {}
    for coherence in ("flow", "none"):
        started = time.perf_counter()
        frames, shot = _restyled(stage, clip, fps, 1280, 720, 0.0, count, coherence)
        made = sum(1 for _ in frames)
        result[coherence] = made / (time.perf_counter() - started)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="(the same small run)")
    parser.add_argument("--no-write", action="store_true", help="print results only")
    args = parser.parse_args(argv)
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-restyle-") as tmp:
        stage = _stage(build_tiny_pipeline(Path(tmp) / "model"))
        errors = warping(stage, Path(tmp))
        rates = speed(stage, Path(tmp))
    ratio = errors["flow"] / errors["none"]
    lines = [*env_lines(env), f"- {busy_note(env)}", "",
             "| coherence | warping error (160x90, 2 shots x 24 frames) | frames/s at 720p (48 frames) |",
             "|---|---|---|",
             f"| flow, K = 8 | {errors['flow']:.5f} | {rates['flow']:.2f} |",
             f"| none (every frame redrawn) | {errors['none']:.5f} | {rates['none']:.2f} |",
             f"| the source itself (floor) | {errors['floor']:.5f} | |", "",
             f"flow / none warping error: **{ratio:.2f}** (target at most {TARGET}): {verdict(ratio <= TARGET)}; "
             f"speed-up of K = 8: **{rates['flow'] / rates['none']:.1f}x**. Tiny random model on the CPU: "
             "its redraws are cheap, so flow, warping and colour matching weigh more here than with a real model "
             "(GPU numbers: still to be measured)."]
    publish(HEADING, "\n".join(lines), not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

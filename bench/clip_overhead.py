"""What the app adds around the video model's own call, on the tiny random LTX-Video (issue 22, point 9).

The denominator is the **bare pipeline call**: ``LTXConditionPipeline(**kwargs)`` with exactly
the arguments the backend passes (``family.call_kwargs``), the same seed and a step callback
that does nothing, on a pipeline loaded from the same folder, handing its frames over as arrays
(``output_type="np"``, as a diffusers user gets frames to save; the default, PIL pictures, costs
more). ``output_type="pt"`` (float tensors, not yet frames) is timed beside it where said. The numerator here is the
backend's whole ``generate_clip`` (conditioning pictures, the step callback, pinning the
keyframe, stitching, writing the footage folder). Median of ``--runs`` after one warm-up each,
interleaved so a busy machine slows both alike.

The render's further stages (planning, fitting to the preset, motion-compensated resampling,
encoding) are the clip stage's; their bench extends this one through :func:`bare_call_seconds`
and :func:`backend_seconds`::

    python bench/clip_overhead.py [--runs 5] [--frames 17] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import busy_note, environment, env_lines, publish  # noqa: E402

HEADING = "## Clip backend overhead against the bare pipeline call (bench/clip_overhead.py)"
WIDTH, HEIGHT = 128, 64


def tiny_request(model, frames: int, steps: int = 4, seed: int = 1):
    """A scene clip request at the tiny size, with a two-colour keyframe."""
    import numpy as np
    from PIL import Image

    from pipeline.images.clip_generation import ClipPictures, ClipRequest

    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:, : WIDTH // 2], pixels[:, WIDTH // 2:] = (200, 40, 40), (40, 200, 90)
    rules = model.frame_rules()
    return ClipRequest(0, "a lighthouse on a cliff, waves", "", seed, steps, 1.0, WIDTH, HEIGHT, frames, rules.fps,
                       id="clip-1", pictures=ClipPictures(Image.fromarray(pixels)))


def bare_call_seconds(model, request, output_type: str = "np") -> float:
    """Seconds of one bare pipeline call for ``request`` (one call: ``request.num_frames`` <= max_frames)."""
    import torch

    from pipeline.images.video_backends.family import CallInputs

    rules = model.frame_rules()
    inputs = CallInputs(request.num_frames, request.pictures.start, (), request.pictures.end)
    kwargs = model.family.call_kwargs(model.pipeline, request, rules, inputs)
    kwargs.update(output_type=output_type, generator=torch.Generator("cpu").manual_seed(request.seed),
                  callback_on_step_end=lambda pipe, step, t, tensors: tensors,
                  callback_on_step_end_tensor_inputs=["latents"])
    started = time.perf_counter()
    model.pipeline(**kwargs)
    return time.perf_counter() - started


def backend_seconds(model, request, folder: Path) -> float:
    """Seconds of the backend's ``generate_clip`` for ``request`` into a new footage folder."""
    started = time.perf_counter()
    result = model.generate_clip(request, folder)
    elapsed = time.perf_counter() - started
    if result.folder is None:
        raise RuntimeError(f"the clip failed: {result.reason}")
    return elapsed


def tiny_ltx_model(folder: Path):
    """The tiny random LTX-Video, built into ``folder`` and loaded through the app's loader on the CPU."""
    from tiny_video_model import build_tiny_ltx_pipeline

    from pipeline.images.video_backends.manager import VideoModelManager

    model = VideoModelManager(str(build_tiny_ltx_pipeline(folder)), "cpu", local_files_only=True)
    if not model.load():
        raise RuntimeError(model.info().reason)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_ltx_model(Path(tmp) / "ltx-distilled")
        request = tiny_request(model, args.frames, args.steps)
        bare_call_seconds(model, request)
        backend_seconds(model, request, Path(tmp) / "warm")
        bare, backend = [], []
        for run in range(runs):
            bare.append(bare_call_seconds(model, request))
            backend.append(backend_seconds(model, request, Path(tmp) / f"run{run}"))
    ratio = statistics.median(backend) / statistics.median(bare)
    best = min(backend) / min(bare)  # on a shared, busy CPU the fastest run is the least disturbed
    lines = env_lines(env) + [
        f"- {busy_note(env)}",
        f"- Tiny random LTX-Video (tests/tiny_video_model.py), {WIDTH}x{HEIGHT}, {args.frames} frames, "
        f"{args.steps} steps, one call, CPU, median of {runs} interleaved runs after a warm-up",
        "",
        "| what | median s | fastest s | runs (s) |",
        "|---|---:|---:|---|",
        f"| bare `LTXConditionPipeline(...)` call | {statistics.median(bare):.3f} | {min(bare):.3f} | "
        f"{', '.join(f'{v:.3f}' for v in bare)} |",
        f"| backend `generate_clip` (conditioning, callback, pinning, stitching, footage) | "
        f"{statistics.median(backend):.3f} | {min(backend):.3f} | {', '.join(f'{v:.3f}' for v in backend)} |",
        "",
        f"Backend / bare: **{ratio:.3f}** (medians), **{best:.3f}** (fastest runs).",
    ]
    publish(HEADING, "\n".join(lines), not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

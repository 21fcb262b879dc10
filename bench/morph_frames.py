"""Generated morph frames per second next to keyframes per second, through the real diffusers backend.

A morph's in-between image costs one generation, like a keyframe: the same pipeline call with
interpolated prompt embeddings and slerped noise instead of a prompt and a generator. This bench
times ``ModelManager.generate`` for ``--images`` keyframe requests (distinct seeds) and for as
many in-between requests of one morph (t evenly spaced), at batch 1 and at ``--batch``, after one
warm-up call each; the median of ``--runs``.

CPU (default): the tiny random model of tests/tiny_model.py at 64 px::

    python bench/morph_frames.py

GPU (not measured yet: no GPU was lent to this task): the SD-Turbo architecture with random
weights (assets/models/sd-turbo, built by bench/gpu_keyframes.py) at 512², one step, guidance 0::

    python bench/morph_frames.py --sd-turbo --device cuda --size 512 --batch 8 --images 16 --runs 5
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny kernels gain nothing from threads on a small shared CPU (as in tests/conftest.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, busy_note, env_lines, environment, fmt_runs, median, publish  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))

HEADING = "## Morph frames (bench/morph_frames.py)"


def build_model_folder(folder: Path, sd_turbo: bool) -> Path:
    """A diffusers folder: the tiny random model, or the SD-Turbo architecture with random weights."""
    if not sd_turbo:
        from tiny_model import build_tiny_pipeline

        return build_tiny_pipeline(folder)
    import torch
    from gpu_keyframes import build_models, load_tokenizer, make_pipeline

    pipe = make_pipeline(build_models("cpu", torch.float32), load_tokenizer(), "vae")
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def requests(count: int, size: int, steps: int):
    """``count`` keyframe requests, and ``count`` in-between requests of one morph between two keyframes."""
    from pipeline.images.generation import Between, ImageRequest

    def keyframe(seed: int, prompt: str) -> ImageRequest:
        return ImageRequest(scene_index=0, prompt=prompt, negative_prompt="", seed=seed, steps=steps,
                            guidance_scale=0.0, width=size, height=size, id=f"scene-{seed}")

    keyframes = [keyframe(100 + i, f"bench keyframe {i}: a lighthouse at dusk") for i in range(count)]
    start, end = keyframe(1, "a lighthouse on a cliff at dusk"), keyframe(2, "a city street at night, neon")
    inbetweens = [replace(start, id=f"morph-1-{j}", kind="inbetween", depends_on=(start.id, end.id),
                          between=Between(start, end, j / (count + 1))) for j in range(1, count + 1)]
    return keyframes, inbetweens


def rates(manager, batches: dict[str, list], batch_size: int, runs: int) -> dict[str, tuple[float, list[float]]]:
    """Images per second (median over ``runs``) for each kind; the kinds alternate within each run,
    so a busy machine slows both alike."""
    manager.batch_size = batch_size
    for batch in batches.values():
        manager.generate(batch[:batch_size])  # warm-up (allocations, kernel choice)
    seconds: dict[str, list[float]] = {kind: [] for kind in batches}
    for _ in range(runs):
        for kind, batch in batches.items():
            started = time.perf_counter()
            results = manager.generate(batch)
            seconds[kind].append(time.perf_counter() - started)
            if any(r.image is None for r in results):
                raise RuntimeError(f"generation failed: {[r.reason for r in results if r.image is None][:1]}")
    return {kind: (len(batches[kind]) / median(times), times) for kind, times in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a diffusers folder (default: build one)")
    parser.add_argument("--sd-turbo", action="store_true", help="build the SD-Turbo architecture (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--images", type=int, default=8, help="images per timed call (a default morph makes 8)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    from pipeline.images.diffusers_backend import ModelManager

    env = environment()
    with tempfile.TemporaryDirectory(prefix="morph-bench-") as tmp:
        folder = args.model or build_model_folder(Path(tmp) / "model", args.sd_turbo)
        manager = ModelManager(str(folder), device=args.device, local_files_only=True)
        if not manager.load():
            print(manager.info().reason, file=sys.stderr)
            return 1
        keyframes, inbetweens = requests(args.images, args.size, args.steps)
        rows = []
        for batch_size in sorted({1, args.batch}):
            measured = rates(manager, {"keyframe": keyframes, "morph frame": inbetweens}, batch_size, args.runs)
            for kind, (rate, seconds) in measured.items():
                rows.append(f"| {kind} | {batch_size} | {rate:.2f} | {1000 / rate:.1f} | {fmt_runs(seconds)} |")
        info = manager.info()
    model = "SD-Turbo architecture, random weights" if args.sd_turbo else (
        str(args.model) if args.model else "tiny random model (tests/tiny_model.py)")
    text = "\n".join([
        *env_lines(env),
        f"- Model: {model} on {info.device} ({info.dtype}); {args.size}x{args.size} px, {args.steps} step(s), "
        f"guidance 0; {args.images} images per call, {args.runs} timed runs after one warm-up",
        f"- Command: `python bench/morph_frames.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- Machine state: {busy_note(env)}",
        "- GPU rows (SD-Turbo architecture at 512², the command in the script's docstring): **not measured, no GPU "
        "was lent to this task**.",
        "",
        "| image | batch | images/s (median) | ms/image | seconds per call (runs) |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
        "A morph frame is one generation, like a keyframe. Its extra cost is per batch, not per image: both "
        "endpoints' prompts are encoded and their noises drawn once, then each image gets a lerp and a slerp. "
        "On the 64 px tiny model that fixed part is a visible share of a call; at 512² on the SD-Turbo "
        "architecture the text encoder is 45 GFLOP of the 3.4 TFLOP of a frame (see GPU keyframes), so "
        "batched morph frames should run at the keyframe rate.",
    ])
    publish(HEADING, text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

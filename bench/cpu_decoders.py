"""Seconds per keyframe on this CPU with the full VAE and with the tiny decoder, and the first preview.

The SD-Turbo architecture with random weights, built as bench/gpu_keyframes.py builds it (the
real model's compute; the pictures are noise), runs through the app's own
``ModelManager.generate`` at 512x512, one step, guidance 0 (what a draft scene asks of
sd-turbo; every preset generates 680x384 on it, about as many pixels), with step previews
on, as the page asks for them:

- ``full``: the full VAE decodes; previews are the linear latent->RGB approximation
  (the tiny decoder is not loaded);
- ``tiny``: the tiny autoencoder (TAESD architecture) decodes, and draws the previews
  from latents pooled by 3 to 21x21 (pipeline.images.decoders.PREVIEW_LATENT_SIDE).

Each run records seconds per keyframe, the first preview (call start to the first step
callback, which carries the preview), the UNet step (forward hooks), the final decode and
the preview decode. The step loop's slowdown from tiny previews is preview decode / UNet
step. Text encoding and scheduling are the rest.

    python bench/cpu_decoders.py [--runs 2] [--warmup 1] [--quick] [--no-write]   # ~3 min on a quiet machine
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import busy_note, env_lines, environment, fmt_runs, publish, verdict  # noqa: E402
from gpu_keyframes import build_models, load_tokenizer, make_pipeline  # noqa: E402

from pipeline.images.diffusers_backend import ModelManager  # noqa: E402
from pipeline.images.generation import ImageRequest  # noqa: E402

HEADING = "## CPU keyframes: full VAE against the tiny decoder (bench/cpu_decoders.py)"
SIZE = 512
PROMPT = "a lighthouse on a cliff at dusk, waves breaking on the rocks"


@dataclass
class Run:
    total: float = 0.0
    first_preview: float = 0.0
    unet: float = 0.0
    decode: float = 0.0
    preview: float = 0.0


@dataclass
class Timers:
    """Seconds spent in the instrumented parts during one run."""

    current: Run = field(default_factory=Run)

    def wrap(self, function: Callable, name: str) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                setattr(self.current, name, getattr(self.current, name) + time.perf_counter() - start)
        return timed


def instrument(models, timers: Timers) -> None:
    """Time the UNet (hooks), the full VAE decode, the tiny decoder's final decode and every step preview."""
    from pipeline.images import diffusers_backend
    from pipeline.images.decoders import TinyDecoder

    starts: list[float] = []
    models.unet.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))

    def unet_done(*_):
        timers.current.unet += time.perf_counter() - starts.pop()

    models.unet.register_forward_hook(unet_done)
    models.vae.decode = timers.wrap(models.vae.decode, "decode")
    TinyDecoder.decode = timers.wrap(TinyDecoder.decode, "decode")
    # The backend calls its module-level step_previews (tiny decoder or latent approximation).
    diffusers_backend.step_previews = timers.wrap(diffusers_backend.step_previews, "preview")


def measure(manager: ModelManager, decoder: str, timers: Timers, warmup: int, runs: int, size: int) -> list[Run]:
    request = ImageRequest(0, PROMPT, "", 7, steps=1, guidance_scale=0.0, width=size, height=size, decoder=decoder)
    measured = []
    for number in range(warmup + runs):
        timers.current = run = Run()
        start = time.perf_counter()

        def on_step(indices, step, total, previews, run=run, start=start):
            if not run.first_preview:
                run.first_preview = time.perf_counter() - start

        [result] = manager.generate([request], on_step=on_step)
        run.total = time.perf_counter() - start
        if result.image is None or result.decoder != decoder:
            raise SystemExit(f"{decoder}: no image ({result.reason or result.decoder})")
        print(f"{decoder} run {number + 1}: {run}", flush=True)
        if number >= warmup:
            measured.append(run)
    return measured


def best(runs: list[Run]) -> Run:
    """The fastest timed run: on a shared CPU the least disturbed one, the closest to a quiet machine."""
    return min(runs, key=lambda run: run.total)


def preview_share(run: Run) -> float:
    """Preview decode time over UNet time within one run (both under the same load)."""
    return run.preview / run.unet if run.unet else 0.0


def report(results: dict[str, list[Run]], env: dict, args: argparse.Namespace) -> str:
    lines = [
        *env_lines(env),
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), fp32; SD-Turbo architecture with random "
        f"weights ({args.size}x{args.size}, 1 step, guidance 0, batch 1) through `ModelManager.generate` with step "
        f"previews on; {args.warmup} warm-up + {args.runs} timed run(s) per decoder. The parts are those of the "
        "fastest timed run (on a shared CPU the least disturbed one); the median is beside it",
        f"- Machine state: {busy_note(env)}",
        "",
        "| decoder | s / keyframe (fastest) | median | runs (s) | first preview s | UNet step s | final decode s "
        "| preview decode s | preview / UNet step, each run |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for decoder, runs in results.items():
        fast = best(runs)
        shares = ", ".join(f"{100 * preview_share(run):.1f} %" for run in runs)
        lines.append(
            f"| {decoder} | {fast.total:.2f} | {statistics.median(r.total for r in runs):.2f} | "
            f"{fmt_runs(r.total for r in runs)} | {fast.first_preview:.2f} | {fast.unet:.2f} | {fast.decode:.2f} | "
            f"{fast.preview:.2f} | {shares} |"
        )
    lines += ["", "Per scene on this CPU (sd-turbo draws every preset at 680x384, about 512² pixels; draft takes "
              "1 step, standard 2, high and premium 4), from the fastest runs: rest + steps x (UNet + preview) "
              "+ decode:", "", "| decoder | draft (1 step) | standard (2) | high / premium (4) |", "|---|---:|---:|---:|"]
    for decoder, runs in results.items():
        fast = best(runs)
        rest = fast.total - fast.unet - fast.preview - fast.decode
        cells = [f"{rest + steps * (fast.unet + fast.preview) + fast.decode:.1f} s" for steps in (1, 2, 4)]
        lines.append(f"| {decoder} | {' | '.join(cells)} |")
    full, tiny = best(results["full"]), best(results["tiny"])
    # Each part's fastest time is its least disturbed one; a single preview (~0.1 s) is easily
    # stretched tenfold by a descheduling on a shared CPU, so the per-run shares are listed above.
    slowdown = min(r.preview for r in results["tiny"]) / min(r.unet for r in results["tiny"])
    lines += ["", "| target | measured | result |", "|---|---:|---|",
              f"| tiny-decoder step previews slow the step loop by at most 10 % (fastest preview / fastest UNet "
              f"step) | {100 * slowdown:.1f} % "
              f"| {verdict(slowdown <= 0.10)} |",
              f"| the tiny decoder makes a keyframe faster than the full VAE (fastest runs) | "
              f"{full.total / tiny.total:.1f} x faster (decode {full.decode / max(tiny.decode, 1e-9):.0f} x) "
              f"| {verdict(tiny.total < full.total)} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="timed runs per decoder")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per decoder first")
    parser.add_argument("--size", type=int, default=SIZE, help="square side in px (a smoke run: 128)")
    parser.add_argument("--quick", action="store_true", help="one timed run per decoder")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    env = environment()
    started = time.perf_counter()
    models = build_models("cpu", torch.float32)
    pipe = make_pipeline(models, load_tokenizer(), "vae")
    print(f"built the random SD-Turbo architecture in {time.perf_counter() - started:.0f} s", flush=True)
    timers = Timers()
    instrument(models, timers)
    full = ModelManager("sd-turbo architecture (random weights)", device="cpu", decoder="full")
    full.use_pipeline(pipe)
    tiny = ModelManager("sd-turbo architecture (random weights)", device="cpu", decoder="tiny")
    tiny.use_pipeline(pipe, tiny_vae=models.taesd)
    results = {
        "full": measure(full, "full", timers, args.warmup, args.runs, args.size),
        "tiny": measure(tiny, "tiny", timers, args.warmup, args.runs, args.size),
    }
    publish(HEADING, report(results, env, args), not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

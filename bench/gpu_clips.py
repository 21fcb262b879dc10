"""Seconds per clip of the distilled LTX-Video 13B architecture, through the app's video backend.

The transformer and the VAE are built from LTX-Video 0.9.8 13B distilled's architecture
(:data:`TRANSFORMER_CONFIG`, :data:`VAE_CONFIG`: the shapes of the diffusers-format checkpoint)
with random weights: no download, the compute per clip is the real model's, the frames are
noise. The text encoder is a random one-layer T5 of the real width (4096) instead of T5-XXL's
24 layers: it runs once per call and is not what this bench is about (its time is inside
"encode + decode" below, understated). Each clip goes through
``VideoModelManager.generate_clip`` (``use_pipeline``), so previews, pinning, stitching and the
footage folder are included, at 8 steps and guidance 1 (the distilled model's settings).

GPU run (H100/H200, bf16; a few minutes): a 5 s clip at 768x512 (LTX's native size), the
native pixel count in the presets' 16:9 aspect, and the presets' own sizes as ``--clip-size``
would round them::

    python bench/gpu_clips.py --device cuda --dtype bf16 --runs 3

CPU (what this machine can do; the 13B architecture would need 52 GB in fp32): the tiny random
LTX-Video's clips through the backend and bare, and the real-size transformer's time per
denoising step measured with ``--cpu-layers`` of its 48 blocks at a small token count and
scaled to 48 (said so in the table)::

    python bench/gpu_clips.py --device cpu
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import busy_note, environment, env_lines, publish  # noqa: E402

GPU_HEADING = "## GPU clips: LTX-Video 13B distilled architecture (bench/gpu_clips.py)"
CPU_HEADING = "## Clips on this CPU: tiny LTX-Video, and the 13B transformer per step (bench/gpu_clips.py --device cpu)"

# LTX-Video 0.9.8 13B (dev and distilled share it): 48 blocks of 32 heads x 128, T5-XXL captions.
TRANSFORMER_CONFIG: dict[str, Any] = {
    "activation_fn": "gelu-approximate", "attention_bias": True, "attention_head_dim": 128,
    "attention_out_bias": True, "caption_channels": 4096, "cross_attention_dim": 4096, "in_channels": 128,
    "norm_elementwise_affine": False, "norm_eps": 1e-6, "num_attention_heads": 32, "num_layers": 48,
    "out_channels": 128, "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm_across_heads",
}
# The LTX-Video 0.9.5+ VAE (32x in space with its patch of 4, 8x in time, 128 latent channels).
VAE_CONFIG: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 1024, 2048), "decoder_block_out_channels": (256, 512, 1024),
    "decoder_causal": False, "decoder_inject_noise": (False, False, False, False),
    "decoder_layers_per_block": (5, 5, 5, 5), "decoder_spatio_temporal_scaling": (True, True, True),
    "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"), "encoder_causal": True,
    "in_channels": 3, "latent_channels": 128, "layers_per_block": (4, 6, 6, 2, 2), "out_channels": 3,
    "patch_size": 4, "patch_size_t": 1, "resnet_norm_eps": 1e-6, "scaling_factor": 1.0,
    "spatio_temporal_scaling": (True, True, True, True), "timestep_conditioning": True,
    "upsample_factor": (2, 2, 2), "upsample_residual": (True, True, True),
    # Said explicitly: the default would count every scaling block as 2x in both space and time.
    "spatial_compression_ratio": 32, "temporal_compression_ratio": 8,
}
STEPS = 8  # the distilled model's schedule
SECONDS = 5.0
VIDEO_FPS = 24  # the presets' rate: LTX-Video makes the clip at it (FrameRules.at_rate), 121 frames for 5 s


# --------------------------------------------------------------------------- building


def _random_init(module: Any, seed: int) -> Any:
    """Well-scaled random values in place (biases 0, norms 1, weights uniform with variance 1/fan_in)."""
    import torch

    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim <= 1:
                param.fill_(1.0)
            else:
                bound = (3.0 / param[0].numel()) ** 0.5
                param.uniform_(-bound, bound, generator=generator)
    return module.eval().requires_grad_(False)


def build_transformer(device: str, dtype: Any, layers: int | None = None) -> Any:
    """The 13B transformer (or its first ``layers`` blocks), random weights, made directly on ``device``."""
    import torch
    from diffusers import LTXVideoTransformer3DModel

    config = dict(TRANSFORMER_CONFIG, num_layers=layers or TRANSFORMER_CONFIG["num_layers"])
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            transformer = LTXVideoTransformer3DModel(**config)
        finally:
            torch.set_default_dtype(previous)
    return _random_init(transformer, 0)


def build_pipeline(device: str, dtype: Any, layers: int | None = None) -> Any:
    """LTXConditionPipeline of the 13B architecture with random weights (see the module doc)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    tokenizer = T5Tokenizer()
    with torch.device(device):  # made where they run: the 1.2 B-parameter VAE takes 18 s to make on 2 CPU cores
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=1024,
                                               num_layers=1, num_heads=64, decoder_start_token_id=0))
        vae = _random_init(AutoencoderKLLTXVideo(**VAE_CONFIG), 1)
    transformer = build_transformer(device, dtype, layers)
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae.to(dtype=dtype),
                                text_encoder=_random_init(text_encoder, 2).to(dtype=dtype), tokenizer=tokenizer,
                                transformer=transformer)
    torch.cuda.empty_cache() if device.startswith("cuda") else None
    return pipe


# --------------------------------------------------------------------------- timing


def keyframe(width: int, height: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def time_clip(model: Any, width: int, height: int, frames: int, steps: int, folder: Path,
              previews: bool = True) -> dict[str, float]:
    """One clip through the backend: total seconds, the median seconds per denoising step (with its preview),
    calls, peak GPU memory. ``previews=False``: no step callback, so no preview is decoded."""
    import torch

    from pipeline.images.clip_generation import ClipPictures, ClipRequest

    rules = model.frame_rules().at_rate(VIDEO_FPS)
    request = ClipRequest(0, "a lighthouse on a cliff at dusk, waves", "", 1, steps, 1.0, width, height, frames,
                          rules.fps, id="clip-1", pictures=ClipPictures(keyframe(width, height)))
    marks: list[float] = []
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    on_step = (lambda *_: marks.append(time.perf_counter())) if previews else None
    result = model.generate_clip(request, folder, on_step=on_step)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    if result.folder is None:
        raise RuntimeError(f"{width}x{height}x{frames}: {result.reason}")
    step_times = [b - a for a, b in zip(marks, marks[1:])]
    return {
        "total": total,
        "step": statistics.median(step_times) if step_times else float("nan"),
        "calls": len(marks) / steps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan"),
    }


def time_batch(model: Any, width: int, height: int, frames: int, steps: int, count: int, folder: Path,
               batched: bool) -> dict[str, float]:
    """``count`` short clips (different keyframes and prompts) in one call, or one by one: seconds per clip,
    peak GPU memory. The clips are the same either way (tests/test_clip_batches.py)."""
    import torch

    from pipeline.images.clip_generation import ClipPictures, ClipRequest

    rules = model.frame_rules().at_rate(VIDEO_FPS)
    requests = [ClipRequest(i, f"shot {i}: a lighthouse on a cliff, waves", "", i, steps, 1.0, width, height, frames,
                            rules.fps, id=f"clip-{i + 1}", pictures=ClipPictures(keyframe(width, height)))
                for i in range(count)]
    folders = [folder / f"{'b' if batched else 's'}{i}" for i in range(count)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if batched:
        results = model.generate_clips(requests, folders)
    else:
        results = [model.generate_clip(r, f) for r, f in zip(requests, folders)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    failed = [r.reason for r in results if r.folder is None]
    if failed:
        raise RuntimeError(failed[0])
    return {"per_clip": (time.perf_counter() - started) / count,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")}


def batch_rows(model: Any, sizes: list[tuple[str, int, int, int]], steps: int, count: int, runs: int,
               tmp: Path) -> list[str]:
    """Table rows: ``count`` clips one by one against one call, per (label, width, height, frames)."""
    rows = [f"| {count} clips | one by one: s per clip | in one call: s per clip | speed-up | peak GiB (one / batch) |",
            "|---|---:|---:|---:|---:|"]
    for label, width, height, frames in sizes:
        try:
            measured = {}
            for batched in (False, True):
                time_batch(model, width, height, frames, steps, count, tmp / f"warm-{batched}", batched)
                measured[batched] = [time_batch(model, width, height, frames, steps, count, tmp / f"{batched}{i}",
                                                batched) for i in range(runs)]
        except Exception as exc:  # noqa: BLE001 - out of memory at one size must not lose the others
            rows.append(f"| {label} | failed: {str(exc)[:80]} | | | |")
            continue
        one = statistics.median(m["per_clip"] for m in measured[False])
        many = statistics.median(m["per_clip"] for m in measured[True])
        rows.append(f"| {label} | {one:.2f} | {many:.2f} | x{one / many:.2f} | "
                    f"{max(m['peak_gib'] for m in measured[False]):.1f} / "
                    f"{max(m['peak_gib'] for m in measured[True]):.1f} |")
    return rows


def gpu_sizes(rules: Any) -> list[tuple[str, int, int]]:
    from pipeline.contract.presets import PRESETS

    native_169 = rules.size_for(16, 9)
    rows = [("native 768x512", 768, 512), (f"native pixels at 16:9 ({native_169[0]}x{native_169[1]})", *native_169)]
    for name, preset in PRESETS.items():
        size = rules.fit_size(preset.width, preset.height)
        label = f"--clip-size {preset.width}x{preset.height} ({name}) -> {size[0]}x{size[1]}"
        if all(size != (w, h) for _, w, h in rows):
            rows.append((label, *size))
    return rows


def run_gpu(args: argparse.Namespace) -> str:
    import torch

    from pipeline.images.video_backends.manager import VideoModelManager

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    started = time.perf_counter()
    model = VideoModelManager("LTX-Video 0.9.8 13B distilled architecture, random weights", args.device,
                              max_frames=args.max_frames)
    pipe = build_pipeline(args.device, dtype, args.layers)
    model.use_pipeline(pipe)
    built = time.perf_counter() - started
    rules = model.frame_rules().at_rate(VIDEO_FPS)  # as the app makes a clip for a 24 fps video
    frames = rules.frames_for(args.seconds)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU smoke run"
    print(f"built in {built:.0f} s; {frames} frames a clip", flush=True)
    blocks = f", {args.layers} of 48 transformer blocks" if args.layers else ""
    lines = [
        f"### {name} ({args.dtype}{blocks}) — {environment()['date']}",
        "",
        f"- Built in {built:.0f} s; {frames} frames ({args.seconds:g} s at {rules.fps:g} fps), {args.steps} steps, "
        f"at most {rules.max_frames} frames a call; median of {args.runs} after one warm-up",
        "",
        "| size | s per clip | s per step (with preview) | s per clip without previews | calls | clip s / video s "
        "| peak GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        sizes = gpu_sizes(rules) if not args.sizes else parse_sizes(args.sizes)
        for label, width, height in sizes:
            lines.append(size_row(model, label, width, height, frames, args, Path(tmp)))
            print(lines[-1], flush=True)  # as it comes: a run stopped at its time limit keeps the rows so far
        if args.channels_last:  # the VAE's 3D convolutions in NDHWC (slower on this CPU for the real VAE)
            pipe.vae.to(memory_format=torch.channels_last_3d)
            label, width, height = sizes[0]
            lines.append(size_row(model, f"{label}, VAE in channels_last_3d", width, height, frames, args, Path(tmp)))
            print(lines[-1], flush=True)
            pipe.vae.to(memory_format=torch.contiguous_format)
        # Batching: short clips (1 s transitions) at 768x512, the case where one clip leaves the GPU idle
        # (at the first of --sizes when given, so the CPU smoke run stays small).
        model.batch_size = 4
        _, width, height = parse_sizes(args.sizes)[0] if args.sizes else ("", 768, 512)
        short = rules.frames_for(1.0)
        lines += ["", *batch_rows(model, [(f"1 s ({short} frames) at {width}x{height}", width, height, short)],
                                  args.steps, 4, args.runs, Path(tmp))]
    return "\n".join(lines)


def size_row(model: Any, label: str, width: int, height: int, frames: int, args: argparse.Namespace,
             tmp: Path) -> str:
    """One table row: a warm-up, ``args.runs`` timed clips with previews and one without, at one size."""
    import torch

    try:
        time_clip(model, width, height, frames, args.steps, tmp / f"warm{width}")
        runs = [time_clip(model, width, height, frames, args.steps, tmp / f"{width}-{i}") for i in range(args.runs)]
        bare = time_clip(model, width, height, frames, args.steps, tmp / f"{width}-np", False)
    except Exception as exc:  # noqa: BLE001 - one size failing (OOM) must not lose the others
        return f"| {label} | failed: {str(exc)[:80]} | | | | | |"
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    total = statistics.median(r["total"] for r in runs)
    return (f"| {label} | {total:.1f} | {statistics.median(r['step'] for r in runs):.2f} | {bare['total']:.1f} | "
            f"{runs[0]['calls']:.0f} | {total / args.seconds:.1f} | {max(r['peak_gib'] for r in runs):.1f} |")


def parse_sizes(text: str) -> list[tuple[str, int, int]]:
    sizes = []
    for item in text.split(","):
        width, height = (int(v) for v in item.lower().split("x"))
        sizes.append((f"{width}x{height}", width, height))
    return sizes


def transformer_step_seconds(layers: int, frames: int, width: int, height: int, runs: int) -> tuple[float, int]:
    """Seconds of one forward of the first ``layers`` 13B blocks on the CPU (fp32), and the token count."""
    import torch

    transformer = build_transformer("cpu", torch.float32, layers)
    latent_frames, rows, cols = (frames - 1) // 8 + 1, height // 32, width // 32
    tokens = latent_frames * rows * cols
    hidden = torch.randn(1, tokens, 128)
    text = torch.randn(1, 128, 4096)
    mask = torch.ones(1, 128, dtype=torch.long)
    coords = None
    kwargs = dict(hidden_states=hidden, encoder_hidden_states=text, timestep=torch.tensor([500.0]),
                  encoder_attention_mask=mask, num_frames=latent_frames, height=rows, width=cols,
                  return_dict=False)
    times = []
    with torch.no_grad():
        transformer(**kwargs, video_coords=coords)
        for _ in range(runs):
            started = time.perf_counter()
            transformer(**kwargs, video_coords=coords)
            times.append(time.perf_counter() - started)
    del transformer
    gc.collect()
    return statistics.median(times), tokens


def run_cpu(args: argparse.Namespace) -> str:
    from clip_overhead import backend_seconds, bare_call_seconds, tiny_ltx_model, tiny_request

    from pipeline.images.video_backends.stitching import plan_calls

    env = environment()
    lines = env_lines(env)
    rows = ["| tiny LTX-Video clip (128x64) | frames | calls | backend s | bare call s |", "|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_ltx_model(Path(tmp) / "ltx")
        for frames in (9, 33, 129):
            request = tiny_request(model, frames, steps=STEPS)
            backend_seconds(model, request, Path(tmp) / f"warm{frames}")
            backend = statistics.median(backend_seconds(model, request, Path(tmp) / f"{frames}-{i}")
                                        for i in range(args.runs))
            rules = model.frame_rules()
            calls = len(plan_calls(frames, rules.max_frames, rules.frame_step, model.family.overlap(rules)))
            bare = (statistics.median(bare_call_seconds(model, request) for _ in range(args.runs))
                    if calls == 1 else float("nan"))
            rows.append(f"| {frames / 25:.2f} s at 25 fps, {STEPS} steps | {frames} | {calls} | {backend:.2f} | "
                        + (f"{bare:.2f} |" if calls == 1 else "(several calls) |"))
        model.batch_size = 4
        batches = batch_rows(model, [("tiny LTX-Video, 1 s (25 frames) at 128x64", 128, 64, 25)], STEPS, 4,
                             args.runs, Path(tmp))
    step, tokens = transformer_step_seconds(args.cpu_layers, 9, 768, 512, args.runs)
    per_block = step / args.cpu_layers
    lines += [
        f"- {busy_note(env)}",
        "",
        *rows,
        "",
        *batches,
        "",
        "| 13B transformer, fp32, CPU | tokens | measured | scaled to 48 blocks |",
        "|---|---:|---:|---:|",
        f"| one denoising step, 9 frames at 768x512 ({args.cpu_layers} of 48 blocks measured) | {tokens} | "
        f"{step:.2f} s | ~{per_block * 48:.0f} s (x{48 // args.cpu_layers}: an estimate, not a measurement) |",
        "",
        f"A 5 s clip at 768x512 has 17 latent frames = 6528 tokens, 8.5x these; attention grows faster, so one "
        f"step of it on this CPU would take well over {per_block * 48 * 8.5 / 60:.0f} min: clips are for GPUs.",
        "GPU figures: not measured yet (no GPU here); `python bench/gpu_clips.py --device cuda` writes them.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--max-frames", type=int, default=None, help="frames per call (default: the backend's)")
    parser.add_argument("--sizes", default="", help="comma list WxH instead of the default sizes")
    parser.add_argument("--cpu-layers", type=int, default=2, help="13B blocks to time on the CPU")
    parser.add_argument("--layers", type=int, default=None, help="transformer blocks of the clip run (default 48)")
    parser.add_argument("--pipeline", action="store_true",
                        help="the clip run on --device even without CUDA (a smoke test: --layers 1 --sizes 64x64)")
    parser.add_argument("--channels-last", action="store_true",
                        help="one more row at the first size with the VAE in channels_last_3d")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    if args.pipeline and not args.device.startswith("cuda"):
        publish(GPU_HEADING, run_gpu(args), False)
    elif args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("No CUDA device here: run with --device cpu for the CPU figures.")
            return 2
        publish(GPU_HEADING, run_gpu(args), not args.no_write)
    else:
        publish(CPU_HEADING, run_cpu(args), not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

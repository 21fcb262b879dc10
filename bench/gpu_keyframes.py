"""Keyframes per second of the SD-Turbo architecture on one device (GPU first, CPU for a smoke run).

The models are built from the architecture configs in ``assets/models/sd-turbo``
with random weights (no download): the compute per frame is the real model's,
the pictures are noise. One keyframe is what Scene2Video makes per scene with a
distilled model: tokenise + text encoder + one UNet step + decode, at guidance 0.

GPU run (H100/H200; a few minutes): baseline, each cheap optimisation alone and all
of them together, for both decoders and batches 1, 4, 8, 16::

    python bench/gpu_keyframes.py --device cuda --size 512 --batches 1,4,8,16 \\
        --dtype bf16 --runs 10 --channels-last --fuse-qkv --cudnn-benchmark --all-opts \\
        --out bench/RESULTS.md

Compiled rows (inductor, "max-autotune-no-cudagraphs" unless ``--compile-mode``
says otherwise; several minutes of autotuning per batch size and decoder)::

    python bench/gpu_keyframes.py --device cuda --batches 1,16 --channels-last \\
        --fuse-qkv --compile --all-opts --no-singles --no-baseline --out bench/RESULTS.md

On a machine without CUDA the defaults shrink to a smoke run (256 px, batch 1,
fp32 unless the CPU has native bf16, 3 timed runs) so that it is known to work.

Every row reports the median seconds per batch, keyframes/s, the FLOPs it
implies (counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta
device, batch 1) and that as a fraction of the matmul rate measured on the same
device with a large ``torch.matmul`` loop.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "assets" / "models" / "sd-turbo"
HEADING = "## GPU keyframes (bench/gpu_keyframes.py)"
OPTIMISATIONS = ("channels_last", "fuse_qkv", "cudnn_benchmark", "compile")


# --------------------------------------------------------------------------- building


def _load_config(name: str) -> dict[str, Any]:
    return json.loads((CONFIG_DIR / name).read_text(encoding="utf-8"))


def _init_tensor(tensor: torch.Tensor, name: str, generator: torch.Generator) -> None:
    """Random but well-scaled values: norms at 1, biases at 0, weights uniform with variance 1/fan_in."""
    if name == "bias" or name.endswith("_bias"):
        tensor.zero_()
    elif tensor.ndim <= 1:
        tensor.fill_(1.0)
    else:
        fan_in = tensor[0].numel()
        bound = (3.0 / fan_in) ** 0.5  # uniform is several times cheaper than normal on a CPU
        tensor.uniform_(-bound, bound, generator=generator)


def _materialise(module: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Give every meta parameter real storage on ``device``/``dtype`` and random values; move buffers."""
    generator = torch.Generator(device=device).manual_seed(seed)
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            data = torch.empty(param.shape, device=device, dtype=dtype if param.is_floating_point() else param.dtype)
            with torch.no_grad():
                _init_tensor(data, name, generator)
            sub._parameters[name] = torch.nn.Parameter(data, requires_grad=False)
        for name, buf in list(sub._buffers.items()):
            if buf is None:
                continue
            if buf.device.type == "meta":
                raise RuntimeError(f"buffer {name} of {type(sub).__name__} was created on meta")
            sub._buffers[name] = buf.to(device=device, dtype=dtype if buf.is_floating_point() else buf.dtype)
    return module.eval().requires_grad_(False)


@dataclass
class Models:
    unet: Any
    vae: Any
    taesd: Any
    text_encoder: Any
    scheduler: Any


def build_models(device: torch.device | str, dtype: torch.dtype | None, seed: int = 0) -> Models:
    """The SD-Turbo architecture from the configs. ``device="meta"`` gives shape-only models."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, AutoencoderTiny, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    te_config = {k: v for k, v in _load_config("text_encoder.json").items() if k not in ("architectures", "model_type")}
    # Parameters on meta (no allocation, no init compute); buffers stay real (CLIP's position ids).
    with init_empty_weights(include_buffers=False):
        unet = UNet2DConditionModel.from_config(_load_config("unet.json"))
        vae = AutoencoderKL.from_config(_load_config("vae.json"))
        taesd = AutoencoderTiny.from_config(_load_config("taesd.json"))
        text_encoder = CLIPTextModel(CLIPTextConfig(**te_config))
    scheduler = EulerDiscreteScheduler.from_config(_load_config("scheduler.json"))
    device = torch.device(device)
    if device.type != "meta":
        for offset, model in enumerate((unet, vae, taesd, text_encoder)):
            _materialise(model, device, dtype, seed + offset)
    else:
        for model in (unet, vae, taesd, text_encoder):
            model.eval().requires_grad_(False)
    return Models(unet, vae, taesd, text_encoder, scheduler)


def load_tokenizer():
    """A CLIPTokenizer (byte-level, 77 tokens) from tests/tiny_model.py; its ids are all < 49408."""
    from transformers import CLIPTokenizer

    for path in (str(ROOT), str(ROOT / "tests")):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        from tests.tiny_model import write_byte_level_tokenizer
    except ImportError:
        from tiny_model import write_byte_level_tokenizer  # type: ignore[no-redef]
    with tempfile.TemporaryDirectory() as folder:
        write_byte_level_tokenizer(Path(folder))
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.model_max_length != 77:
        raise RuntimeError(f"tokenizer model_max_length is {tokenizer.model_max_length}, expected 77")
    return tokenizer


def make_pipeline(models: Models, tokenizer, decoder: str):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=tokenizer,
        unet=models.unet,
        scheduler=models.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if decoder == "taesd":
        pipe.vae = models.taesd  # the pipeline keeps vae_scale_factor 8 from the full VAE
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- FLOPs


def count_flops(size: int) -> dict[str, float]:
    """FLOPs of one batch-1 keyframe, per component, counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    models = build_models("meta", None)
    meta = torch.device("meta")
    latent = size // 8
    steps: dict[str, Callable[[], Any]] = {
        "text_encoder": lambda: models.text_encoder(torch.zeros(1, 77, dtype=torch.long, device=meta)),
        "unet": lambda: models.unet(
            torch.empty(1, 4, latent, latent, device=meta),
            torch.tensor([999], device=meta),
            encoder_hidden_states=torch.empty(1, 77, 1024, device=meta),
        ),
        "vae_decode": lambda: models.vae.decode(torch.empty(1, 4, latent, latent, device=meta)),
        "taesd_decode": lambda: models.taesd.decode(torch.empty(1, 4, latent, latent, device=meta)),
    }
    flops: dict[str, float] = {}
    with torch.no_grad():
        for name, step in steps.items():
            counter = FlopCounterMode(display=False)
            with counter:
                step()
            flops[name] = float(counter.get_total_flops())
    flops["frame_vae"] = flops["text_encoder"] + flops["unet"] + flops["vae_decode"]
    flops["frame_taesd"] = flops["text_encoder"] + flops["unet"] + flops["taesd_decode"]
    return flops


# --------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, iters: int, repeats: int = 3) -> float:
    """Achievable dense matmul FLOP/s: median over ``repeats`` of ``iters`` n x n x n products."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(max(2, iters // 5)):
        torch.matmul(a, b, out=out)
    synchronize(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=out)
        synchronize(device)
        rates.append(2.0 * n**3 * iters / (time.perf_counter() - start))
    del a, b, out
    return statistics.median(rates)


@dataclass
class Row:
    variant: str
    decoder: str
    batch: int
    seconds: list[float] = field(default_factory=list)
    first_call_s: float = 0.0
    peak_gib: float | None = None
    error: str = ""


def time_pipeline(pipe, device: torch.device, size: int, batch: int, warmup: int, runs: int, output_type: str) -> Row:
    prompts = [f"scene {i}: a red fox running through fresh snow at dawn" for i in range(batch)]
    generator = torch.Generator(device=device).manual_seed(0)

    def call() -> None:
        pipe(
            prompt=prompts,
            num_inference_steps=1,
            guidance_scale=0.0,
            height=size,
            width=size,
            generator=generator,
            output_type=output_type,
        )

    row = Row("", "", batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        start = time.perf_counter()
        call()
        synchronize(device)
        row.first_call_s = time.perf_counter() - start
        for _ in range(max(0, warmup - 1)):
            call()
        synchronize(device)
        for _ in range(runs):
            start = time.perf_counter()
            call()
            synchronize(device)
            row.seconds.append(time.perf_counter() - start)
    if device.type == "cuda":
        row.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def apply_optimisations(models: Models, opts: set[str], compile_mode: str) -> None:
    if "channels_last" in opts:
        for model in (models.unet, models.vae, models.taesd):
            model.to(memory_format=torch.channels_last)
    if "fuse_qkv" in opts:
        for model in (models.unet, models.vae):
            if hasattr(model, "fuse_qkv_projections"):
                model.fuse_qkv_projections()
    torch.backends.cudnn.benchmark = "cudnn_benchmark" in opts
    if "compile" in opts:
        import torch._inductor.config as inductor_config

        inductor_config.conv_1x1_as_mm = True
        inductor_config.coordinate_descent_tuning = True
        kwargs = {"mode": None if compile_mode == "default" else compile_mode, "dynamic": False}
        models.unet = torch.compile(models.unet, **kwargs)
        for vae in (models.vae, models.taesd):
            vae.decoder = torch.compile(vae.decoder, **kwargs)


# --------------------------------------------------------------------------- report


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def load_average() -> str:
    """The 1-minute load average (a busy shared CPU explains noisy CPU rows)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "n/a"


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def render(args, device: torch.device, dtype_name: str, dtype_note: str, rate: float,
           flops_by_size: dict[int, dict[str, float]], rows: list[Row], command: str) -> str:
    import diffusers

    today = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    flops = flops_by_size[args.size]
    lines = [
        f"### {device_name(device)} — {today}",
        "",
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, Python {platform.python_version()}; "
        f"dtype **{dtype_name}**{dtype_note}; {args.size}x{args.size} px, 1 step, guidance 0, "
        f"output_type={args.output_type}; {args.warmup} warm-up + median of {args.runs} timed runs. "
        "SD-Turbo architecture with random weights (assets/models/sd-turbo).",
        "",
        f"Measured matmul rate: **{rate / 1e12:.2f} TFLOP/s** ({dtype_name}, "
        f"{args.matmul_size}x{args.matmul_size}x{args.matmul_size}, torch.matmul loop, better of before/after the runs).",
        "",
        "FLOPs per keyframe (batch 1, FlopCounterMode):",
        "",
        "| size | text encoder | UNet step | VAE decode | TAESD decode | frame (VAE) | frame (TAESD) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, f in sorted(flops_by_size.items()):
        lines.append(
            f"| {size} | {f['text_encoder'] / 1e9:.1f} G | {f['unet'] / 1e9:.1f} G | {f['vae_decode'] / 1e9:.1f} G "
            f"| {f['taesd_decode'] / 1e9:.1f} G | {f['frame_vae'] / 1e12:.3f} T | {f['frame_taesd'] / 1e12:.3f} T |"
        )
    lines += [
        "",
        "| variant | decoder | batch | s/batch (median) | keyframes/s | ms/keyframe | TFLOP/s | % of matmul rate "
        "| first call s | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.error:
            lines.append(f"| {row.variant} | {row.decoder} | {row.batch} | {row.error} | | | | | | |")
            continue
        median = statistics.median(row.seconds)
        fps = row.batch / median
        achieved = fps * flops["frame_vae" if row.decoder == "vae" else "frame_taesd"]
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        lines.append(
            f"| {row.variant} | {row.decoder} | {row.batch} | {median:.3f} | {fps:.2f} | {1000 * median / row.batch:.1f} "
            f"| {achieved / 1e12:.2f} | {100 * achieved / rate:.1f}% | {row.first_call_s:.1f} | {peak} |"
        )
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def write_report(path: Path, block: str) -> None:
    """Append ``block`` at the end of this bench's section of ``path`` (creating either if needed)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if HEADING not in text:
        sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        path.write_text(text + sep + HEADING + "\n\n" + block, encoding="utf-8")
        return
    start = text.index(HEADING) + len(HEADING)
    nxt = text.find("\n## ", start)
    end = len(text) if nxt == -1 else nxt + 1
    section = text[:end].rstrip("\n") + "\n\n" + block
    rest = text[end:]
    path.write_text(section + ("\n" + rest if rest else ""), encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    parser.add_argument("--size", type=int, default=None, help="square image size in px (default 512 GPU, 256 CPU)")
    parser.add_argument("--batches", default=None, help="comma list of batch sizes (default 1,4,8,16 GPU, 1 CPU)")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                        help="default bf16 on GPU; on CPU bf16 only with native bf16 support, else fp32")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per row (default 10 GPU, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls per row (default 3 GPU, 1 CPU)")
    parser.add_argument("--decoders", default="vae,taesd", help="comma list of vae (AutoencoderKL) and taesd")
    parser.add_argument("--output-type", default="pt", choices=("pt", "np", "pil"),
                        help="pipeline output; pt keeps frames on the device (default)")
    parser.add_argument("--channels-last", action="store_true", help="add a row set with channels_last UNet/VAE")
    parser.add_argument("--fuse-qkv", action="store_true", help="add a row set with fused QKV projections")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="add a row set with cudnn.benchmark")
    parser.add_argument("--compile", action="store_true", help="add a row set with torch.compile (UNet + decoders)")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs",
                        help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs")
    parser.add_argument("--all-opts", action="store_true",
                        help="add one row set with every optimisation flag given (or all of them if none given)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain (no optimisation) rows")
    parser.add_argument("--no-singles", action="store_true",
                        help="with --all-opts: skip the one-optimisation row sets, keep the combined one")
    parser.add_argument("--matmul-size", type=int, default=None, help="n for the n^3 matmul rate (8192 GPU, 2048 CPU)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file; the table is appended to its section")
    return parser.parse_args(argv)


def variants_from(args: argparse.Namespace) -> list[tuple[str, set[str]]]:
    chosen = [opt for opt in OPTIMISATIONS if getattr(args, opt)]
    variants: list[tuple[str, set[str]]] = [] if args.no_baseline else [("baseline", set())]
    if not (args.no_singles and args.all_opts):
        variants += [(opt, {opt}) for opt in chosen]
    if args.all_opts:
        combo = chosen if len(chosen) > 0 else list(OPTIMISATIONS)
        if len(combo) > 1 or not chosen:
            variants.append(("+".join(combo), set(combo)))
    return variants


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = device.type == "cuda"
    args.size = args.size or (512 if on_gpu else 256)
    if args.size % 8:
        raise SystemExit("--size must be a multiple of 8")
    batches = [int(b) for b in (args.batches or ("1,4,8,16" if on_gpu else "1")).split(",")]
    args.runs = args.runs or (10 if on_gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if on_gpu else 1)
    args.matmul_size = args.matmul_size or (8192 if on_gpu else 2048)
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    dtype_note = ""
    if args.dtype is None:
        if on_gpu or cpu_has_native_bf16():
            args.dtype = "bf16"
        else:
            args.dtype = "fp32"
            dtype_note = " (CPU without native bf16: fp32 chosen, bf16 would be emulated and far slower)"
    dtype = DTYPES[args.dtype]
    command = "python bench/gpu_keyframes.py " + " ".join(sys.argv[1:] if argv is None else argv)

    print(f"device {device_name(device)}, dtype {args.dtype}, size {args.size}, batches {batches}", flush=True)
    sizes = sorted({args.size, 512})
    flops_by_size = {size: count_flops(size) for size in sizes}
    for size, f in flops_by_size.items():
        print(f"FLOPs/frame at {size}px: {f['frame_vae'] / 1e12:.3f} T (VAE), {f['frame_taesd'] / 1e12:.3f} T (TAESD)",
              flush=True)
    matmul_iters = 50 if on_gpu else 5
    rate = matmul_rate(device, dtype, args.matmul_size, iters=matmul_iters)
    print(f"matmul rate {rate / 1e12:.2f} TFLOP/s", flush=True)
    load_before = load_average()

    tokenizer = load_tokenizer()
    rows: list[Row] = []
    for variant, opts in variants_from(args):
        start = time.perf_counter()
        models = build_models(device, dtype)
        apply_optimisations(models, opts, args.compile_mode)
        print(f"[{variant}] built in {time.perf_counter() - start:.1f}s", flush=True)
        for decoder in decoders:
            pipe = make_pipeline(models, tokenizer, decoder)
            for batch in batches:
                try:
                    row = time_pipeline(pipe, device, args.size, batch, args.warmup, args.runs, args.output_type)
                except torch.cuda.OutOfMemoryError:
                    row = Row("", "", batch, error="out of memory")
                row.variant, row.decoder = variant, decoder
                rows.append(row)
                if row.error:
                    print(f"[{variant}] {decoder} batch {batch}: {row.error}", flush=True)
                else:
                    median = statistics.median(row.seconds)
                    print(f"[{variant}] {decoder} batch {batch}: {median:.3f}s/batch, {batch / median:.2f} keyframes/s "
                          f"(first call {row.first_call_s:.1f}s)", flush=True)
                gc.collect()
                if on_gpu:
                    torch.cuda.empty_cache()
            del pipe
        del models
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
        if "compile" in opts:
            torch._dynamo.reset()

    # Measured again at the end; the better of the two is the achievable rate (a shared
    # machine may have been busy during one of them).
    rate_after = matmul_rate(device, dtype, args.matmul_size, iters=matmul_iters)
    print(f"matmul rate after the runs {rate_after / 1e12:.2f} TFLOP/s", flush=True)
    rate = max(rate, rate_after)
    if not on_gpu:
        dtype_note += f"; load average {load_before} at the start, {load_average()} at the end"
    block = render(args, device, args.dtype, dtype_note, rate, flops_by_size, rows, command)
    print()
    print(block)
    if args.out:
        write_report(args.out, block)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

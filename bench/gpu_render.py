"""A render through the app's own code on one device: the registry's loader, the renderer, the encoder.

The models are random weights of the real architectures, saved as diffusers folders and loaded by the
app like any ``--model`` / ``--video-model`` folder: SD-Turbo (``assets/models/sd-turbo``; "turbo" in the
folder's name, so the app treats it as the few-step model it is) and LTX-Video 0.9.8 13B distilled's
transformer cut to ``--ltx-blocks`` of its 48 blocks (the full one is 26 GB to write and read back;
``bench/gpu_clips.py`` times the full one). Three renders of a 6-scene storyboard at standard quality,
batch size auto, step previews on, scene 2 animated:

1. the first render (the models load): one keyframe batch is forced out of memory by a real CUDA
   allocation far larger than the card (on a CPU: a raised ``torch.OutOfMemoryError``), so the smaller-batch
   retry runs; the report, the times, peak GPU memory;
2. a render with other seeds, stopped at its first clip step: how long Stop takes to end it;
3. the first storyboard with other seeds again: the models stay resident (no second load), its time.

GPU (bf16 on CUDA; about two minutes)::

    python bench/gpu_render.py --device cuda --out "$OUT/render.json"

CPU dry run (the tiny random models of tests/, a few seconds)::

    python bench/gpu_render.py --tiny --device cpu

It prints one JSON object (also written to ``--out``): per render the seconds, the report's scenes and
transitions, the events counted, peak GPU memory, and what the log said about the retry.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH), str(ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

from pipeline import Done, Failed, Preview, parse_storyboard  # noqa: E402
from pipeline.contract.events import ClipReady, KeyframeReady  # noqa: E402
from pipeline.contract.settings import Settings  # noqa: E402
from pipeline.service import RendererPool  # noqa: E402

SCENES = 6


def board(seed: int, duration: float) -> dict[str, Any]:
    """Six scenes at standard quality; scene 2 is a clip, the rest stills with camera motion."""
    motions = ("zoom_in", "none", "pan_left", "zoom_out", "pan_right", "none")
    scenes = [{"prompt": f"scene {i + 1}: a lighthouse on a cliff at dusk, waves", "duration": duration,
               "seed": seed + i, "motion": motions[i]} for i in range(SCENES)]
    scenes[1].update(animate=True, motion_prompt="waves roll in, the camera drifts right")
    return {"scenes": scenes, "quality": "standard", "transition": "crossfade", "transition_duration": 0.5}


# --------------------------------------------------------------------------- models


def save_random_models(folder: Path, device: str, tiny: bool, ltx_blocks: int) -> tuple[Path, Path]:
    """The image and the video model as diffusers folders of random weights (see the module doc)."""
    import torch

    if tiny:
        from tiny_model import build_tiny_pipeline
        from tiny_video_model import build_tiny_ltx_pipeline

        return (build_tiny_pipeline(folder / "tiny-sd-turbo"),
                build_tiny_ltx_pipeline(folder / "tiny-ltx-video-distilled"))
    from gpu_clips import build_pipeline
    from gpu_keyframes import build_models, load_tokenizer, make_pipeline

    dtype = torch.bfloat16
    image = folder / "sd-turbo-architecture-random"
    make_pipeline(build_models(device, dtype), load_tokenizer(), "vae").save_pretrained(image)
    video = folder / f"ltx-video-13b-distilled-architecture-{ltx_blocks}-blocks-random"
    build_pipeline(device, dtype, ltx_blocks).save_pretrained(video)
    torch.cuda.empty_cache()
    return image, video


class _ForcedOutOfMemory:
    """Makes the first keyframe batch of more than one image run out of memory, once, for real on CUDA."""

    def __init__(self) -> None:
        self.fired = 0

    def install(self, pipe: Any) -> None:
        import torch

        original = type(pipe)
        forced = self

        def __call__(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N807 - the pipeline's own call
            prompts = kwargs.get("prompt")
            if not forced.fired and isinstance(prompts, list) and len(prompts) > 1:
                forced.fired += 1
                if torch.cuda.is_available():
                    torch.empty(4 * 2**40, dtype=torch.uint8, device=self.device)  # 4 TiB: a real CUDA OOM
                raise torch.OutOfMemoryError("out of memory (forced by bench/gpu_render.py on the CPU)")
            return original.__call__(self, *args, **kwargs)

        __call__.__signature__ = inspect.signature(original.__call__)  # the backend reads it
        pipe.__class__ = type(original.__name__, (original,), {"__call__": __call__})


# --------------------------------------------------------------------------- renders


class _LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:300])


def gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"allocated_gib": round(torch.cuda.memory_allocated() / 2**30, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def render(pool: RendererPool, data: dict[str, Any], stop_at_clip_step: bool = False) -> dict[str, Any]:
    """One render; its times, the events counted, the report (or the Failed message) and GPU memory."""
    storyboard = parse_storyboard(data)
    renderer = pool.for_storyboard(storyboard)
    cancel = threading.Event()
    counts: dict[str, int] = {}
    marks: dict[str, float] = {}
    reset_peak()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    for event in renderer.render(storyboard, cancel):
        now = time.perf_counter() - started
        name = type(event).__name__
        counts[name] = counts.get(name, 0) + 1
        marks.setdefault(f"first {name}", round(now, 3))
        if isinstance(event, Preview) and event.what and stop_at_clip_step and not cancel.is_set():
            cancel.set()
            marks["stop pressed"] = round(now, 3)
        if isinstance(event, KeyframeReady):
            marks[f"keyframe {event.scene_index + 1} ({event.source})"] = round(now, 3)
        if isinstance(event, ClipReady):
            marks[f"{event.id} ({event.source})"] = round(now, 3)
        if isinstance(event, Done):
            report = event.report
            result["report"] = {
                "size": f"{report.width}x{report.height}", "fps": report.fps, "frames": report.frames,
                "seconds": report.duration, "model": report.model, "device": report.device,
                "scenes": [{"scene": s.index + 1, "source": s.source, "frames": s.frames, "decoder": s.decoder,
                            "video_model": Path(s.video_model).name if s.video_model else "",
                            "reason": s.reason or s.clip_reason} for s in report.scenes],
                "transitions": [{"after": t.index + 1, "kind": t.kind, "made": t.made} for t in report.transitions],
            }
            result["video_bytes"] = event.video_path.stat().st_size
        if isinstance(event, Failed):
            result["failed"] = event.message
    total = time.perf_counter() - started
    if "stop pressed" in marks:
        marks["stop to end"] = round(total - marks["stop pressed"], 3)
    return {"seconds": round(total, 3), "events": counts, "marks": marks, "gpu": gpu_memory(), **result}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    logs = _LogLines()
    logging.getLogger().addHandler(logs)
    out: dict[str, Any] = {"device": args.device, "torch": torch.__version__,
                           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        image, video = save_random_models(tmp_path / "models", args.device, args.tiny, args.ltx_blocks)
        out["models_written_s"] = round(time.perf_counter() - started, 1)
        out["models_gib_on_disk"] = round(sum(f.stat().st_size for f in (tmp_path / "models").rglob("*")
                                              if f.is_file()) / 2**30, 2)
        settings = Settings(model=str(image), video_model=str(video), device=args.device,
                            output_dir=tmp_path / "outputs", cache_dir=tmp_path / "cache",
                            clip_size=args.clip_size)
        pool = RendererPool(settings)
        renderer = pool.for_storyboard(parse_storyboard(board(1, args.duration)))
        started = time.perf_counter()
        loaded = renderer.model.load()
        out["image_model_load_s"] = round(time.perf_counter() - started, 2)
        out["image_model"] = str(renderer.model.info())
        if not loaded:
            return out
        started = time.perf_counter()
        out["video_model_loaded"] = renderer.video_model is not None and renderer.video_model.load()
        out["video_model_load_s"] = round(time.perf_counter() - started, 2)
        out["gpu_after_loads"] = gpu_memory()
        forced = _ForcedOutOfMemory()
        forced.install(renderer.model._pipe)  # the loaded pipeline, as the loader made it
        out["render_1_first"] = render(pool, board(1, args.duration))
        out["forced_oom_fired"] = forced.fired
        out["video_model"] = str(renderer.video_model.info()) if renderer.video_model is not None else "none"
        out["render_2_stopped"] = render(pool, board(101, args.duration), stop_at_clip_step=True)
        out["render_3_resident"] = render(pool, board(201, args.duration))
        started = time.perf_counter()
        out["resident_after_renders"] = renderer.model.load() and renderer.video_model.load()
        out["second_load_s"] = round(time.perf_counter() - started, 3)  # nothing to load: both stayed resident
        out["log_warnings"] = [line for line in logs.lines if "torchvision" not in line][:40]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny random models of tests/ (a CPU dry run)")
    parser.add_argument("--ltx-blocks", type=int, default=8, help="blocks of the 13B transformer to build")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per scene")
    parser.add_argument("--clip-size", default="", help="WxH the clip is made at (default: the model's native)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny and not args.clip_size:
        args.clip_size = "128x64"
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

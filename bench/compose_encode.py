"""Compose + encode throughput: ours against the raw-x264 floor, MoviePy 2 and ffmpeg's xfade.

One timeline: 10 scenes x 3 s, crossfade 0.5 s, 24 fps (720 frames), placeholder
keyframes (use_ai false), at 720p (standard preset: x264 fast, CRF 23) and at
1080p (high preset: x264 medium, CRF 20); each also with camera motion cycling
zoom_in / zoom_out / pan_left / pan_right. Every contender uses the same bundled
ffmpeg (imageio-ffmpeg), libx264, yuv420p, the preset's x264 preset and CRF,
default threads:

* ``ours``: ``compose_frames`` + ``SegmentedEncoder`` (2 s segments, then the MP4
  join) from keyframes already in memory: what the render costs after keyframes.
* ``renderer``: the whole ``Renderer(model=None)``: placeholders drawn and saved
  as PNG, loaded, composed, encoded, joined, report written.
* ``floor``: the same frames, composed beforehand and held in memory, piped into
  one ffmpeg process with the same encoder arguments. Nothing can be faster
  with this encoder and these settings; composing is judged against it.
* ``moviepy``: MoviePy 2 building the same slideshow (ImageClip per keyframe,
  CrossFadeIn, ``concatenate_videoclips(padding=-0.5, method="compose")``;
  motion with ``Resize(lambda t)`` / moving positions in a CompositeVideoClip),
  ``write_videofile(codec="libx264", preset=..., ffmpeg_params=["-crf", ...])``.
* ``xfade``: one ffmpeg command over the keyframe PNGs, each looped for its
  duration, joined by chained ``xfade=transition=fade:duration=0.5``; motion with
  ``zoompan`` (whole-pixel steps, so not identical in look, same work per frame).

Clip lengths for MoviePy/xfade are chosen so that both give the same 720 frames
with the crossfades at the same times as ours (first/last clip 3.25 s, others
3.5 s, overlapping 0.5 s). Runs are interleaved (one of each, round after
round) so that background load hits all contenders alike; the median is kept.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    busy_note, env_lines, environment, fmt_runs, median, storyboard_dict, update_section, verdict,
)

from pipeline import parse_storyboard  # noqa: E402
from pipeline.video.encoder import EncodeSettings, SegmentedEncoder, ffmpeg_exe, raw_input_arguments, x264_arguments  # noqa: E402
from pipeline.images.placeholder import render_placeholder  # noqa: E402
from pipeline.renderer import Renderer  # noqa: E402
from pipeline.video.timeline import ZOOM_AMOUNT, PAN_FRACTION, compose_frames, plan_timeline  # noqa: E402

HEADING = "## Compose + encode throughput (bench/compose_encode.py)"
FLOOR_LIMIT = 1.15  # ours may take at most 15% longer than the raw-encode floor
MOVIEPY_FACTOR = 3.0  # and must be at least 3x MoviePy's throughput


# --------------------------------------------------------------------------- contenders


def encode_settings(storyboard) -> EncodeSettings:
    p = storyboard.preset
    return EncodeSettings(p.width, p.height, storyboard.output_fps, p.crf, p.x264_preset)


def run_ours(storyboard, keyframes: list[np.ndarray], work: Path) -> int:
    plan = plan_timeline(storyboard)
    encoder = SegmentedEncoder(encode_settings(storyboard), work)
    frames = 0
    try:
        for frame in compose_frames(storyboard, plan, lambda i: keyframes[i]):
            encoder.write(frame)
            frames += 1
        encoder.finish(work / "ours.mp4")
    except BaseException:
        encoder.abort()
        raise
    for segment in encoder.segments:
        segment.path.unlink(missing_ok=True)
    return frames


def run_renderer(storyboard, keyframes, work: Path) -> int:
    renderer = Renderer(work, model=None, cache=None)
    for event in renderer.render(storyboard):
        name = type(event).__name__
        if name == "Failed":
            raise RuntimeError(event.message)
        if name == "Done":
            frames = event.report.frames
            shutil.rmtree(event.video_path.parent, ignore_errors=True)
            return frames
    raise RuntimeError("renderer ended without Done")


def prerender(storyboard, keyframes) -> list[np.ndarray]:
    """Every output frame of ours, in memory (a still scene's frames share one array, as ours yields them)."""
    plan = plan_timeline(storyboard)
    return [f if not f.flags.writeable else f.copy() for f in compose_frames(storyboard, plan, lambda i: keyframes[i])]


def run_floor(storyboard, frames: list[np.ndarray], work: Path) -> int:
    s = encode_settings(storyboard)
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *raw_input_arguments(s), *x264_arguments(s),
            str(work / "floor.mp4")]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE)
    for frame in frames:
        proc.stdin.write(memoryview(frame).cast("B"))
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("floor ffmpeg failed")
    return len(frames)


def clip_durations(storyboard) -> list[float]:
    """Clip lengths giving the same frames as ours with overlaps of ``transition_duration``."""
    half = storyboard.transition_duration / 2
    n = len(storyboard.scenes)
    return [s.duration + (half if i > 0 else 0) + (half if i < n - 1 else 0) for i, s in enumerate(storyboard.scenes)]


def run_moviepy(storyboard, keyframes, work: Path) -> int:
    from moviepy import CompositeVideoClip, ImageClip, concatenate_videoclips, vfx

    s = encode_settings(storyboard)
    width, height = s.width, s.height
    fade = storyboard.transition_duration
    clips = []
    for i, (scene, duration) in enumerate(zip(storyboard.scenes, clip_durations(storyboard))):
        clip = ImageClip(keyframes[i]).with_duration(duration)
        motion = scene.motion
        if motion in ("zoom_in", "zoom_out"):
            def zoom(t, d=duration, inward=motion == "zoom_in"):
                p = min(1.0, t / d)
                return 1.0 + ZOOM_AMOUNT * (p if inward else 1.0 - p)
            clip = CompositeVideoClip([clip.with_effects([vfx.Resize(zoom)]).with_position("center")],
                                      size=(width, height)).with_duration(duration)
        elif motion in ("pan_left", "pan_right"):
            scale = 1.0 / (1.0 - PAN_FRACTION)
            big = clip.with_effects([vfx.Resize(scale)])
            spare_w, spare_h = big.w - width, big.h - height

            def position(t, d=duration, right=motion == "pan_right", sw=spare_w, sh=spare_h):
                p = min(1.0, t / d)
                return (-round(sw * (p if right else 1.0 - p)), -round(sh / 2))
            clip = CompositeVideoClip([big.with_position(position)], size=(width, height)).with_duration(duration)
        if i > 0:
            clip = clip.with_effects([vfx.CrossFadeIn(fade)])
        clips.append(clip)
    video = concatenate_videoclips(clips, padding=-fade, method="compose")
    video.write_videofile(str(work / "moviepy.mp4"), fps=s.fps, codec="libx264", preset=s.x264_preset,
                          ffmpeg_params=["-crf", str(s.crf), "-profile:v", "high"], audio=False, logger=None)
    video.close()
    return round(video.duration * s.fps)


def xfade_command(storyboard, pngs: list[Path], out: Path) -> list[str]:
    s = encode_settings(storyboard)
    durations = clip_durations(storyboard)
    fade = storyboard.transition_duration
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    for png, d in zip(pngs, durations):
        args += ["-loop", "1", "-framerate", str(s.fps), "-t", f"{d:.4f}", "-i", str(png)]
    chains = []
    for i, (scene, d) in enumerate(zip(storyboard.scenes, durations)):
        n = round(d * s.fps)
        if scene.motion in ("zoom_in", "zoom_out"):
            z = f"1+{ZOOM_AMOUNT}*on/{n - 1}" if scene.motion == "zoom_in" else f"1+{ZOOM_AMOUNT}*(1-on/{n - 1})"
            move = f"zoompan=z='{z}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2'"
        elif scene.motion in ("pan_left", "pan_right"):
            z = 1.0 / (1.0 - PAN_FRACTION)
            p = f"on/{n - 1}" if scene.motion == "pan_right" else f"(1-on/{n - 1})"
            move = f"zoompan=z={z:.6f}:x='(iw-iw/zoom)*{p}':y='ih/2-ih/zoom/2'"
        else:
            move = None
        if move:
            chains.append(f"[{i}:v]{move}:d=1:s={s.width}x{s.height}:fps={s.fps},setsar=1[m{i}]")
        else:
            chains.append(f"[{i}:v]setsar=1[m{i}]")
    last = "m0"
    offset = 0.0
    for i in range(1, len(durations)):
        offset += durations[i - 1] - fade
        label = f"x{i}"
        chains.append(f"[{last}][m{i}]xfade=transition=fade:duration={fade}:offset={offset:.4f}[{label}]")
        last = label
    args += ["-filter_complex", ";".join(chains), "-map", f"[{last}]", "-r", str(s.fps), *x264_arguments(s), str(out)]
    return args


def run_xfade(storyboard, pngs: list[Path], work: Path) -> int:
    args = xfade_command(storyboard, pngs, work / "xfade.mp4")
    result = subprocess.run(args, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError("xfade ffmpeg failed: " + result.stderr.decode("utf-8", "replace")[-800:])
    return round(storyboard.total_seconds * storyboard.output_fps)


def count_frames(path: Path) -> int:
    out = subprocess.run(["/usr/bin/ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets,pix_fmt", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True).stdout.strip()
    return out


# --------------------------------------------------------------------------- driver


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (ffmpeg): less sensitive to a busy machine than wall time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure_variant(quality: str, motion: bool, runs: int, others_runs: int, contenders: list[str],
                    work_root: Path) -> dict[str, Any]:
    storyboard = parse_storyboard(storyboard_dict(quality=quality, motion=motion))
    p = storyboard.preset
    keyframes = [np.asarray(render_placeholder(sc.prompt, i + 1, p.width, p.height))
                 for i, sc in enumerate(storyboard.scenes)]
    work = Path(tempfile.mkdtemp(prefix="s2v-bench-", dir=work_root))
    pngs = []
    for i, kf in enumerate(keyframes):
        from PIL import Image
        path = work / f"still_{i:02d}.png"
        Image.fromarray(kf).save(path, compress_level=1)
        pngs.append(path)
    frames_in_memory = prerender(storyboard, keyframes) if "floor" in contenders else []
    calls: dict[str, Callable[[], int]] = {
        "ours": lambda: run_ours(storyboard, keyframes, work),
        "floor": lambda: run_floor(storyboard, frames_in_memory, work),
        "renderer": lambda: run_renderer(storyboard, keyframes, work),
        "moviepy": lambda: run_moviepy(storyboard, keyframes, work),
        "xfade": lambda: run_xfade(storyboard, pngs, work),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    frames: dict[str, int] = {}
    for round_ in range(max(runs, others_runs)):
        for name in contenders:
            if round_ >= (runs if name in ("ours", "floor") else others_runs):
                continue
            gc.collect()
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            frames[name] = calls[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
    checks = {name: count_frames(work / f"{name}.mp4") for name in ("ours", "floor", "moviepy", "xfade")
              if name in contenders and (work / f"{name}.mp4").exists()}
    del frames_in_memory
    shutil.rmtree(work, ignore_errors=True)
    return {"quality": quality, "size": f"{p.width}x{p.height}", "x264": f"{p.x264_preset}/crf{p.crf}",
            "motion": motion, "times": times, "cpu": cpu, "frames": frames, "checks": checks}


def table(results: list[dict[str, Any]], contenders: list[str]) -> tuple[str, list[str]]:
    lines = ["| variant | contender | frames | median wall s | frames/s | ours ÷ this (wall) | median CPU s "
             "| ours ÷ this (CPU) | wall runs (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    targets = []
    for r in results:
        variant = f"{r['size']} {r['quality']} ({r['x264']}){' + motion' if r['motion'] else ''}"
        ours, ours_cpu = median(r["times"]["ours"]), median(r["cpu"]["ours"])
        for name in contenders:
            if not r["times"].get(name):
                continue
            t, c = median(r["times"][name]), median(r["cpu"][name])
            fps = r["frames"][name] / t
            lines.append(f"| {variant} | {name} | {r['frames'][name]} | {t:.2f} | {fps:.1f} | "
                         f"{ours / t:.2f} | {c:.2f} | {ours_cpu / c:.2f} | {fmt_runs(r['times'][name])} |")
        if "floor" in contenders:
            ratio = ours / median(r["times"]["floor"])
            cpu_ratio = ours_cpu / median(r["cpu"]["floor"])
            # The target is throughput (frames/s, i.e. wall time). CPU time is shown beside it because
            # it is what composing costs on a machine whose cores x264 already fills; wall time is only
            # trustworthy on a quiet machine (see "Machine state").
            targets.append(f"| {variant} | ours ≤ {FLOOR_LIMIT} × floor time (wall) | {ratio:.2f} × wall "
                           f"({cpu_ratio:.2f} × CPU) | {verdict(ratio <= FLOOR_LIMIT)} |")
        if "moviepy" in contenders:
            speedup = median(r["times"]["moviepy"]) / ours
            targets.append(f"| {variant} | ours ≥ {MOVIEPY_FACTOR:g} × MoviePy throughput | {speedup:.2f} × | "
                           f"{verdict(speedup >= MOVIEPY_FACTOR)} |")
    return "\n".join(lines), targets


def report(env, results, contenders, runs, others_runs, quick, pending) -> str:
    body, targets = table(results, contenders)
    checks = "; ".join(f"{r['size']}{'+motion' if r['motion'] else ''}: " +
                       ", ".join(f"{k} {v}" for k, v in r["checks"].items()) for r in results)
    return "\n".join([
        *env_lines(env),
        f"- Timeline: 10 scenes x 3 s, crossfade 0.5 s, 24 fps, placeholder keyframes; median of {runs} "
        f"interleaved run(s) for ours/floor, {others_runs} for renderer/moviepy/xfade"
        f"{' (--quick)' if quick else ''}; CPU s = user+sys of the bench process and its ffmpeg children",
        f"- Machine state: {busy_note(env)}",
        *([f"- Still to measure when this was written: {', '.join(pending)}"] if pending else []),
        "",
        body,
        "",
        "| variant | target | measured | result |",
        "|---|---|---:|---|",
        *targets,
        "",
        f"Output check (ffprobe packets,pix_fmt): {checks}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of ours and the floor (median kept)")
    parser.add_argument("--others-runs", type=int, default=1,
                        help="timed runs of renderer/moviepy/xfade (slow; 1 keeps run_all under ~15 min)")
    parser.add_argument("--renderer-variants", default="standard,standard+motion",
                        help="variants that also time the whole Renderer (it is ours + placeholders + PNG I/O)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 720p only, 1 run, no motion variants")
    parser.add_argument("--contenders", default="ours,floor,renderer,moviepy,xfade")
    parser.add_argument("--variants", default="standard,standard+motion,high,high+motion",
                        help="comma list of quality[+motion]")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    contenders = args.contenders.split(",")
    variants = args.variants.split(",")
    runs = args.runs
    if args.quick:
        runs, others_runs, variants = 1, 1, ["standard"]
    else:
        others_runs = args.others_runs
    env = environment()
    work_root = Path(tempfile.mkdtemp(prefix="s2v-compose-"))
    results = []
    own_before = False
    try:
        for number, variant in enumerate(variants, start=1):
            quality, _, motion = variant.partition("+")
            t0 = time.perf_counter()
            names = [c for c in contenders if c != "renderer" or variant in args.renderer_variants.split(",")]
            results.append(measure_variant(quality, bool(motion), runs, others_runs, names, work_root))
            print(f"[compose_encode] {variant}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            # Written after every variant, so a long run that is stopped keeps what it measured.
            text = report(env, results, contenders, runs, others_runs, args.quick,
                          pending=variants[number:])
            if not args.no_write:
                own_before = update_section(HEADING, text, replace_before=own_before)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

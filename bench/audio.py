"""A soundtrack's cost: compose + encode with audio against without, at 720p; and peak memory with a 10-minute song.

1. Throughput: one timeline (10 scenes x 3 s, crossfade 0.5 s, 24 fps, 720 frames,
   standard preset: 1280x720, x264 fast, CRF 23) from keyframes already in memory,
   through ``compose_frames`` + ``SegmentedEncoder`` exactly as the renderer runs
   them; once silent, once with a 30 s generated song (44.1 kHz stereo WAV) as the
   encoder's second input (PCM in the segments, AAC in the MP4); and silent but
   without B-frames, as a video with sound is encoded, to show the sound's own
   cost. Runs are interleaved so background load hits all alike; the medians of
   wall and CPU time (this process + ffmpeg) are compared. Target: with audio
   within 5% of without.
2. Memory: the CLI (a child process) renders ``fit: audio`` + ``cut_on_beats`` to a
   30 s and to a 10-minute generated song (10 scenes, draft, 4 fps, placeholders);
   peak RSS of the CLI (exact, ``ru_maxrss``: the larger of the CLI's own peak and
   any one ffmpeg's) and of its whole process tree (sampled every 20 ms; a sample
   taken between a fork and its exec counts the CLI twice, so it can jump).
   Target: the 10-minute CLI peak within 20% of the 30 s one.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    busy_note, env_lines, environment, fmt_runs, median, publish, storyboard_dict, verdict,
)
from memory import render_peak  # noqa: E402

from pipeline import parse_storyboard  # noqa: E402
from pipeline.audio.track import AudioTrack  # noqa: E402
from pipeline.images.placeholder import render_placeholder  # noqa: E402
from pipeline.video import encoder as encoder_module  # noqa: E402
from pipeline.video.encoder import EncodeSettings, SegmentedEncoder  # noqa: E402
from pipeline.video.timeline import compose_frames, plan_timeline  # noqa: E402

HEADING = "## Soundtrack cost (bench/audio.py)"
_x264 = encoder_module.x264_arguments
SPEED_LIMIT = 1.05
MEMORY_LIMIT = 1.20


def write_song(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
    """A generated 'song': a 120 BPM kick-like click over two detuned tones, written in 10 s blocks."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        block = 10 * rate
        for first in range(0, round(seconds * rate), block):
            t = (first + np.arange(min(block, round(seconds * rate) - first))) / rate
            beat = np.exp(-((t % 0.5) / 0.03)) * np.sin(2 * np.pi * 60 * t)
            y = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 331 * t) + 0.5 * beat
            pcm = (np.clip(y, -1, 1) * 32767).astype("<i2")
            out.writeframes(np.repeat(pcm, channels).tobytes())
    return path


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended (ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compose_encode(storyboard, keyframes: list[np.ndarray], work: Path, song: Path | None,
                   no_b_frames: bool = False) -> tuple[float, float, int]:
    """Wall seconds and CPU seconds for compose + encode + join of ``storyboard`` (with ``song`` as its
    soundtrack), and the MP4's bytes. ``no_b_frames``: a silent video encoded as one with sound is."""
    plan = plan_timeline(storyboard)
    preset = storyboard.preset
    track = AudioTrack(song, 0.0, 1.0, plan.duration, 30.0) if song else None
    started, cpu = time.perf_counter(), cpu_seconds()
    encoder = SegmentedEncoder(EncodeSettings(preset.width, preset.height, plan.fps, preset.crf, preset.x264_preset),
                               work, audio=track)
    if no_b_frames:  # what the encoder does for a video with sound, without the sound
        encoder_module.x264_arguments = lambda settings, audio=False: _x264(settings, audio=True) + ["-an"]
    for frame in compose_frames(storyboard, plan, lambda i: keyframes[i]):
        encoder.write(frame)
    encoder.finish(work / "out.mp4")
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    encoder_module.x264_arguments = _x264
    size = (work / "out.mp4").stat().st_size
    for path in work.iterdir():
        path.unlink()
    return seconds, cpu, size


def throughput(runs: int, tmp: Path) -> tuple[list[str], bool]:
    storyboard = parse_storyboard(storyboard_dict(scenes=10, duration=3.0, quality="standard"))
    preset = storyboard.preset
    keyframes = [np.asarray(render_placeholder(s.prompt, i + 1, preset.width, preset.height))
                 for i, s in enumerate(storyboard.scenes)]
    song = write_song(tmp / "song.wav", 30.0)
    work = tmp / "work"
    work.mkdir()
    compose_encode(storyboard, keyframes, work, song)  # warm-up: page cache, ffmpeg binary
    variants = {"silent": (None, False), "with audio": (song, False), "silent, no B-frames": (None, True)}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        for name, (source, no_b_frames) in variants.items():
            seconds, used, sizes[name] = compose_encode(storyboard, keyframes, work, source, no_b_frames)
            wall[name].append(seconds)
            cpu[name].append(used)
    wall_ratio = median(wall["with audio"]) / median(wall["silent"])
    cpu_ratio = median(cpu["with audio"]) / median(cpu["silent"])
    frames = plan_timeline(storyboard).total_frames
    lines = ["| run | median wall s | frames/s | wall runs (s) | median CPU s | CPU runs (s) | MP4 size |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {median(wall[name]):.2f} | {frames / median(wall[name]):.1f} | {fmt_runs(wall[name])} | "
              f"{median(cpu[name]):.2f} | {fmt_runs(cpu[name])} | {sizes[name] / 1e6:.2f} MB |" for name in wall]
    lines += [
        "",
        f"With audio / silent, CPU time (the fair measure on a shared machine): **{cpu_ratio:.3f}**; wall time: "
        f"{wall_ratio:.3f} (target ≤ {SPEED_LIMIT:.2f}): {verdict(cpu_ratio <= SPEED_LIMIT)}",
        "",
        "A video with sound is encoded without B-frames (see pipeline/audio/track.py), which x264 does faster; "
        "the sound's own cost is the difference to the last row: CPU "
        f"{median(cpu['with audio']) / median(cpu['silent, no B-frames']):.3f}x, wall "
        f"{median(wall['with audio']) / median(wall['silent, no B-frames']):.3f}x.",
    ]
    return lines, cpu_ratio <= SPEED_LIMIT


def memory(tmp: Path) -> tuple[list[str], bool]:
    peaks = {}
    for name, seconds in (("30 s", 30.0), ("10 min", 600.0)):
        work = tmp / name.replace(" ", "")
        work.mkdir()
        song = write_song(work / "song.wav", seconds)
        board = storyboard_dict(scenes=10, duration=3.0, quality="draft", fps=4)
        board.update(audio=str(song), fit="audio", cut_on_beats=True)
        peaks[name] = render_peak(board, work)
        shutil.rmtree(work, ignore_errors=True)
    ratio = peaks["10 min"]["maxrss_mb"] / peaks["30 s"]["maxrss_mb"]
    lines = ["| song | CLI peak RSS (MB) | process tree peak (MB) | render s |", "|---|---|---|---|"]
    lines += [f"| {name} | {p['maxrss_mb']:.0f} | {p['tree_mb']:.0f} | {p['seconds']:.1f} |" for name, p in peaks.items()]
    lines += ["", f"10 min / 30 s (CLI peak): **{ratio:.3f}** (target ≤ {MEMORY_LIMIT:.2f}): {verdict(ratio <= MEMORY_LIMIT)}"]
    return lines, ratio <= MEMORY_LIMIT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="only the throughput comparison")
    parser.add_argument("--quick", action="store_true", help="smoke run: one run, no memory renders")
    parser.add_argument("--no-write", action="store_true", help="print results only")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.no_memory = 1, True
    env = environment()
    with tempfile.TemporaryDirectory(prefix="s2v-bench-audio-") as tmp:
        speed, speed_ok = throughput(args.runs, Path(tmp))
        mem, mem_ok = ([], True) if args.no_memory else memory(Path(tmp))
    text = "\n".join([
        *env_lines(env), f"- {busy_note(env)}",
        f"- Command: `python bench/audio.py --runs {args.runs}{' --no-memory' if args.no_memory else ''}`", "",
        "Compose + encode, 720p (standard), 10 scenes x 3 s, crossfade, 24 fps, 720 frames; "
        "with audio = a 30 s 44.1 kHz stereo WAV as the encoder's second input:", "", *speed,
        *(["", "Peak memory, CLI render with `fit: audio` + `cut_on_beats` (draft, 4 fps, 10 scenes, placeholders):",
           "", *mem] if mem else []),
    ])
    publish(HEADING, text, not args.no_write)
    return 0 if speed_ok and mem_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

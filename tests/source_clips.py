"""Real footage for restyling tests and benches, made by ffmpeg's test sources (no files shipped).

Each shot is a test source panning (a moving crop of a wider picture), the shots are cut
together, and a sine tone may play under them: what a phone clip with cuts looks like to the
shot detector, the optical flow and the encoder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.audio.probe import ffmpeg_exe

# Each source draws a picture twice as wide as the frame; the crop window pans across it.
SOURCES = ("testsrc2", "mandelbrot", "rgbtestsrc", "smptehdbars")
PAN_PIXELS_PER_SECOND = 0.25  # of the frame's width


def make_clip(path: Path, seconds: tuple[float, ...] = (1.0, 1.0), width: int = 128, height: int = 72,
              fps: int = 24, audio: bool = True, sources: tuple[str, ...] = SOURCES,
              extra: tuple[str, ...] = ()) -> Path:
    """An H.264 MP4 of one panning test source per shot, cut together at the shots' ends (plus a 440 Hz sine)."""
    inputs, labels = [], []
    for number, length in enumerate(seconds):
        source = sources[number % len(sources)]
        speed = PAN_PIXELS_PER_SECOND * width
        inputs += ["-f", "lavfi", "-t", f"{length:g}", "-i", f"{source}=size={2 * width}x{height + 16}:rate={fps}"]
        labels.append(f"[{number}:v]crop={width}:{height}:x='t*{speed:g}':y='8+4*sin(t)',setsar=1,format=yuv420p"
                      f"[v{number}]")
    graph = ";".join(labels) + ";" + "".join(f"[v{n}]" for n in range(len(seconds))) + \
        f"concat=n={len(seconds)}:v=1:a=0[out]"
    command = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *inputs]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={sum(seconds)}"]
    command += ["-filter_complex", graph, "-map", "[out]"]
    if audio:
        command += ["-map", f"{len(seconds)}:a", "-c:a", "aac", "-b:a", "64k"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(fps), "-r", str(fps), *extra, str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path


def cut_frames(seconds: tuple[float, ...], fps: int) -> list[int]:
    """The frames (at ``fps``) where each shot after the first begins."""
    frames, elapsed = [], 0.0
    for length in seconds[:-1]:
        elapsed += length
        frames.append(round(elapsed * fps))
    return frames

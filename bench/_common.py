"""Shared helpers for the CPU benches: environment notes, medians, storyboards, RESULTS.md sections.

Every bench writes one ``## ...`` section of ``bench/RESULTS.md`` and leaves the
others alone (the "GPU keyframes" section belongs to bench/gpu_keyframes.py).
Inside its section a bench keeps a "Before" block (the first numbers it ever
recorded there) and replaces the "Latest" block on every run, so fixes show up
as before/after without anyone copying numbers by hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BEFORE = "### Before (first recorded run)"
LATEST = "### Latest run"
MOTION_CYCLE = ("zoom_in", "zoom_out", "pan_left", "pan_right")


# --------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _first_line(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "not found"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def environment() -> dict[str, Any]:
    """Machine and versions, for the header of every section."""
    import numpy

    from pipeline.video.encoder import ffmpeg_exe

    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "opencv": _version("opencv-python-headless"),
        "moviepy": _version("moviepy"),
        "gradio": _version("gradio"),
        "ffmpeg_bundled": _first_line([ffmpeg_exe(), "-version"]).replace(" Copyright", " ©").split(" ©")[0],
        "ffmpeg_system": _first_line(["/usr/bin/ffmpeg", "-version"]).split(" Copyright")[0],
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu_before": cpu_clock(),
    }


# Other processes using more than this many cores on average while a bench ran make its numbers suspect.
OTHERS_BUSY_CORES = 0.25


def _machine_cpu_seconds() -> float | None:
    """CPU seconds every core has spent busy since boot (Linux /proc/stat), None where unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of what it started (children it waited for, and those still running)."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    try:
        import psutil
    except ImportError:
        return total
    for child in psutil.Process().children(recursive=True):
        try:
            cpu = child.cpu_times()
        except psutil.Error:
            continue
        total += cpu.user + cpu.system
    return total


def cpu_clock() -> tuple[float, float | None, float]:
    """(wall clock, the machine's busy CPU seconds, this process tree's CPU seconds), for :func:`busy_note`."""
    return time.monotonic(), _machine_cpu_seconds(), _own_cpu_seconds()


def busy_note(env: dict[str, Any]) -> str:
    """Say whether other processes were using the cores while we measured: the machine's busy CPU time
    since :func:`environment` less this bench's own (with its children: ffmpeg, servers, Ray), so a bench
    that keeps every core busy itself is not called busy (the load average counts it too)."""
    load_before, load_after = float(env["load_before"].split()[0]), os.getloadavg()[0]
    loads = f"load average (1 min) before {load_before:.2f}, after {load_after:.2f} on {env['cores']} cores"
    (wall0, machine0, own0), (wall1, machine1, own1) = env["cpu_before"], cpu_clock()
    if machine0 is None or machine1 is None or wall1 <= wall0:
        return f"{loads} (the bench's own work included; other processes' share unknown here)"
    others = max(0.0, (machine1 - machine0) - (own1 - own0)) / (wall1 - wall0)
    state = ("BUSY (other processes were using the cores; treat numbers as pessimistic)"
             if others > OTHERS_BUSY_CORES else "quiet")
    return f"other processes used {others:.2f} cores on average while it ran ({loads}, its own work included): {state}"


def env_lines(env: dict[str, Any]) -> list[str]:
    return [
        f"- Date: {env['date']}",
        f"- Machine: {env['cpu']}, {env['cores']} cores ({platform.system()} {platform.release()})",
        f"- Versions: Python {env['python']}, numpy {env['numpy']}, opencv {env['opencv']}, "
        f"moviepy {env['moviepy']}, gradio {env['gradio']}",
        f"- ffmpeg (bundled, used for encoding): {env['ffmpeg_bundled']}; system: {env['ffmpeg_system']}",
    ]


# --------------------------------------------------------------------------- numbers


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def fmt_runs(values: Iterable[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


# --------------------------------------------------------------------------- storyboards


def storyboard_dict(scenes: int = 10, duration: float = 3.0, quality: str = "standard", motion: bool = False,
                    fps: int | None = 24, use_ai: bool = False, transition: str = "crossfade",
                    transition_duration: float = 0.5) -> dict[str, Any]:
    """A deterministic storyboard: fixed prompts and seeds; motion cycles through the four moves."""
    board: dict[str, Any] = {
        "scenes": [
            {
                "prompt": f"bench scene {i + 1}: a lighthouse on a cliff at dusk, waves, seed {i}",
                "duration": duration,
                "seed": 1000 + i,
                "motion": MOTION_CYCLE[i % len(MOTION_CYCLE)] if motion else "none",
            }
            for i in range(scenes)
        ],
        "quality": quality,
        "transition": transition,
        "transition_duration": transition_duration,
        "use_ai": use_ai,
    }
    if fps is not None:
        board["fps"] = fps
    return board


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- RESULTS.md


def update_section(heading: str, latest: str, path: Path = RESULTS, replace_before: bool = False) -> bool:
    """Replace this bench's section of ``path``: keep its "Before" block (or make one), replace "Latest".

    Other sections (``## ...``) are copied through untouched, in place. Returns True when the
    "Before" block was written by this call (a bench that writes in steps passes
    ``replace_before=True`` afterwards, so its first complete run is the baseline).
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    before = None
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        end = len(text) if nxt == -1 else nxt + 1
        old = text[start:end]
        if BEFORE in old:
            b0 = old.index(BEFORE) + len(BEFORE)
            b1 = old.find("\n### ", b0)
            before = old[b0: (len(old) if b1 == -1 else b1)].strip("\n")
        head, tail = text[:start], text[end:]
    else:
        head, tail = text.rstrip("\n") + "\n\n", ""
    created = before is None or replace_before
    if created:
        before = latest.strip("\n")
    section = f"{heading}\n\n{LATEST}\n\n{latest.strip(chr(10))}\n\n{BEFORE}\n\n{before}\n"
    if tail and not tail.startswith("\n"):
        section += "\n"
    path.write_text(head + section + tail, encoding="utf-8")
    return created


def publish(heading: str, text: str, write: bool) -> None:
    """Print a bench's results and, when ``write``, put them in its section of RESULTS.md."""
    print(text)
    if write:
        update_section(heading, text)

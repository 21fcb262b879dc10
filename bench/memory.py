"""Peak memory of a render through the CLI: 10 scenes vs 100 scenes at 720p, placeholders.

Each render is a child process ``python -m pipeline render SB.json -o OUT --quiet
--cache-dir TMP`` with ``SCENE2VIDEO_OUTPUT_DIR=TMP`` (use_ai false, so no model is
touched; the render command takes only render flags, the output folder is a server
setting). Two numbers per render:

* the Python process's peak RSS, exact, from ``os.wait4`` (ru_maxrss; ffmpeg is
  a grandchild that the CLI waits for, so this is the larger of the CLI's own
  peak and any one ffmpeg's);
* the whole process tree's peak RSS (CLI + its ffmpeg children, summed),
  sampled with psutil every 20 ms.

Target: the 100-scene peak within 20% of the 10-scene one (memory must not grow
with the number of scenes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT, busy_note, env_lines, environment, fmt_runs, median, storyboard_dict, publish, verdict, write_json,
)

HEADING = "## Peak memory (bench/memory.py)"
LIMIT = 1.20


def _sample_tree(proc: psutil.Process, stop: threading.Event, peak: dict) -> None:
    while not stop.is_set():
        try:
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            peak["tree"] = max(peak.get("tree", 0), total)
        except psutil.Error:
            pass
        stop.wait(0.02)


def render_peak(board: dict, work: Path) -> dict:
    sb = write_json(work / "storyboard.json", board)
    args = [sys.executable, "-m", "pipeline", "render", str(sb), "-o", str(work / "out.mp4"), "--quiet",
            "--cache-dir", str(work / "cache")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               SCENE2VIDEO_OUTPUT_DIR=str(work / "outputs"))
    t0 = time.perf_counter()
    popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=_sample_tree, args=(psutil.Process(popen.pid), stop, peak), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if popen.returncode != 0:
        raise RuntimeError(f"render failed ({popen.returncode}): {popen.stderr.read().decode()[-500:]}")
    popen.stderr.close()
    return {"maxrss_mb": usage.ru_maxrss / 1024, "tree_mb": peak.get("tree", 0) / 2**20, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1,
                        help="peak RSS repeats within ~1 MB run to run, so one run of each keeps run_all short")
    parser.add_argument("--quick", action="store_true", help="1 run each, 100 scenes of 0.5 s")
    parser.add_argument("--big-scene-seconds", type=float, default=1.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    big_seconds = 0.5 if args.quick else args.big_scene_seconds
    env = environment()
    cases = [("10 scenes x 3 s", storyboard_dict(scenes=10, duration=3.0, quality="standard")),
             (f"100 scenes x {big_seconds:g} s", storyboard_dict(scenes=100, duration=big_seconds, quality="standard"))]
    results: dict[str, list[dict]] = {name: [] for name, _ in cases}
    for _ in range(runs):
        for name, board in cases:  # interleaved
            with tempfile.TemporaryDirectory(prefix="s2v-mem-") as tmp:
                results[name].append(render_peak(board, Path(tmp)))
    lines = ["| render (720p standard, placeholders, crossfade 0.5 s) | peak RSS, CLI (wait4) MB | "
             "peak RSS, CLI + ffmpeg (sampled) MB | render s | runs (CLI MB) |", "|---|---:|---:|---:|---|"]
    med = {}
    for name, _ in cases:
        rs = results[name]
        med[name] = (median(r["maxrss_mb"] for r in rs), median(r["tree_mb"] for r in rs))
        lines.append(f"| {name} | {med[name][0]:.0f} | {med[name][1]:.0f} | "
                     f"{median(r['seconds'] for r in rs):.1f} | {fmt_runs((r['maxrss_mb'] for r in rs), 0)} |")
    small, big = (med[name] for name, _ in cases)
    ratio_cli, ratio_tree = big[0] / small[0], big[1] / small[1]
    ok = ratio_cli <= LIMIT and ratio_tree <= LIMIT
    text = "\n".join([
        *env_lines(env),
        f"- Command: `SCENE2VIDEO_OUTPUT_DIR=T python -m pipeline render SB.json -o OUT --quiet --cache-dir T`; "
        f"median of {runs} interleaved run(s){' (--quick)' if args.quick else ''}",
        f"- Machine state: {busy_note(env)}",
        "",
        *lines,
        "",
        "| target | measured | result |",
        "|---|---:|---|",
        f"| 100-scene peak ≤ {LIMIT:.2f} × 10-scene peak | CLI {ratio_cli:.2f} ×, CLI + ffmpeg {ratio_tree:.2f} × "
        f"| {verdict(ok)} |",
    ])
    publish(HEADING, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The beat tracker's first use: how long "Fitting the scenes to the audio (finding the beats)" takes on a
process's first and second render, with and without the start-up warm-up (pipeline/audio/beats.warm_up).

``python bench/beats_first_use.py [--no-write]``

Each case is a fresh child process fitting 4 scenes of 3 s to a 12 s click track at 120 BPM with
``cut_on_beats`` (``prepare_soundtrack``, exactly what the renderer runs before the timeline):

- *fresh environment*: numba's on-disk cache is empty (``NUMBA_CACHE_DIR`` = a new folder), as on the
  first start after ``pip install``; numba compiles librosa's beat tracker on first use.
- *later start*: the cache that the fresh run filled is used, as on every later process start (CLI, app).
- *warm-up, Generate after it*: ``warm_up()`` is called at start-up, as app.py does, and the first fit
  starts once it has ended (a user who picks a song and presses Generate after that).
- *warm-up, Generate at once*: the first fit starts 0.5 s after ``warm_up()`` (the CLI's case: it warms up
  right before rendering), so it waits for what is left of the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busy_note, env_lines, environment, publish  # noqa: E402

HEADING = "## The beat tracker's first use (bench/beats_first_use.py)"
ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, "tests")
import numpy as np
from sound import click_track, write_wav
from pipeline import parse_storyboard
from pipeline.audio.soundtrack import prepare_soundtrack
from pipeline.audio import beats

folder, mode = sys.argv[1], sys.argv[2]
warm_s = None
if mode != "none":
    thread = beats.warm_up()
    t0 = time.perf_counter()
    if mode == "after":
        thread.join()
        warm_s = time.perf_counter() - t0
    else:
        time.sleep(0.5)
song = write_wav(__import__("pathlib").Path(folder) / "clicks.wav", click_track(12.0, 0.5 * np.arange(24)))
sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 3}] * 4, "audio": str(song), "cut_on_beats": True,
                       "use_ai": False, "quality": "draft"})
fits = []
for _ in range(2):
    t = time.perf_counter()
    fitted = prepare_soundtrack(sb)
    fits.append(time.perf_counter() - t)
assert [s.duration for s in fitted.storyboard.scenes] and fitted.beats_used
print("RESULT", json.dumps({"first": fits[0], "second": fits[1], "warm_up": warm_s}))
"""


def run_case(mode: str, cache_dir: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", CHILD, folder, mode], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print results only")
    parser.add_argument("--quick", action="store_true", help="accepted for bench/run_all.py; the same cases")
    args = parser.parse_args(argv)
    env = environment()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # The first case fills the shared cache that the "later start" cases then find.
        cases = [("fresh environment, no warm-up", "none", "shared"), ("later start, no warm-up", "none", "shared"),
                 ("fresh environment, warm-up, Generate after it", "after", None),
                 ("fresh environment, warm-up, Generate at once", "at_once", None),
                 ("later start, warm-up, Generate after it", "after", "shared")]
        shared = Path(tmp) / "shared"
        for number, (name, mode, cache) in enumerate(cases):
            cache_dir = shared if cache else Path(tmp) / f"fresh-{number}"
            result = run_case(mode, cache_dir)
            rows.append((name, result))
            print(name, result, flush=True)
    from importlib.metadata import version

    lines = [*env_lines(env), f"- librosa {version('librosa')}, numba {version('numba')}",
             "- Command: `python bench/beats_first_use.py`", f"- Machine state: {busy_note(env)}", "",
             "Fitting 4 scenes of 3 s to a 12 s click track (120 BPM) with cut_on_beats, in a new process:", "",
             "| case | warm-up (in the background) s | first fit s | second fit s |", "|---|---:|---:|---:|"]
    for name, result in rows:
        warm = "—" if result["warm_up"] is None else f"{result['warm_up']:.1f}"
        lines.append(f"| {name} | {warm} | {result['first']:.2f} | {result['second']:.2f} |")
    lines += ["", "The first fit of a process pays for importing librosa and for numba's compile of the beat tracker "
              "(fresh environment) or its load from numba's on-disk cache (later start); the second pays nothing. "
              "The start-up warm-up moves that cost off the first render when Generate comes after it (the page and "
              "the API: app.py warms up at start-up). When the render starts at once (the CLI warms up just before "
              "it) the warm-up saves next to nothing; what makes the CLI's later starts cheap is numba's on-disk "
              "cache, filled by the first run in an environment."]
    publish(HEADING, "\n".join(lines), not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run every CPU bench and update its section of bench/RESULTS.md: ``python bench/run_all.py [--quick]``.

Order: cold start, first preview, memory, load, soundtrack, the beat tracker's first use, CPU keyframes with
each decoder, compose + encode, time left, the batch on this machine and on Ray (bench/batch.py, about 2 minutes),
restyling (flow against every frame redrawn, with the tiny model; a few minutes).
Each bench runs in its own process so one failing does not stop the others; the
exit code is non-zero if any failed. ``--quick`` is a smoke run (one run each,
720p only for compose + encode, shorter memory render); it still writes
RESULTS.md unless ``--no-write`` is given. On the shared 2-core machine with a
load average of 3-8 (2026-11-25) the full run took ~28 min (compose + encode
~21 of them, 1080p dominating) and --quick ~8 min; a quiet machine should take
roughly half (not measured yet). To trim a full run:
``python bench/compose_encode.py --variants standard,high`` or ``--runs 2``.
The "GPU keyframes" section is not touched (bench/gpu_keyframes.py writes it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("cold_start.py", "first_preview.py", "memory.py", "load.py", "audio.py", "beats_first_use.py",
           "cpu_decoders.py", "compose_encode.py", "time_left.py", "batch.py", "restyle.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one run of everything, smaller cases")
    parser.add_argument("--no-write", action="store_true", help="print results only")
    parser.add_argument("--only", default="", help="comma list of bench names to run, e.g. memory,cold_start")
    args = parser.parse_args(argv)
    extra = (["--quick"] if args.quick else []) + (["--no-write"] if args.no_write else [])
    chosen = [b for b in BENCHES if not args.only or b.removesuffix(".py") in args.only.split(",")]
    failures, started = [], time.perf_counter()
    for bench in chosen:
        t0 = time.perf_counter()
        print(f"=== {bench} ===", flush=True)
        code = subprocess.call([sys.executable, str(HERE / bench), *extra], cwd=HERE.parent)
        print(f"=== {bench}: exit {code} in {time.perf_counter() - t0:.0f} s ===", flush=True)
        if code != 0:
            failures.append(bench)
    print(f"all benches done in {time.perf_counter() - started:.0f} s; failed: {', '.join(failures) or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

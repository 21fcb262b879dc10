"""Cold start: ``python app.py --port P`` to the first HTTP 200 on ``/``.

Each run starts a new process (HF_HUB_OFFLINE=1, GRADIO_ANALYTICS_ENABLED=False,
fresh output and cache folders), polls ``GET /`` every 20 ms and stops the
process once it answered. The file cache warms up after the first run, as it
would on a server that restarts; the first run is listed too. Target: median
under 5 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, busy_note, env_lines, environment, fmt_runs, median, publish, verdict  # noqa: E402

HEADING = "## Cold start (bench/cold_start.py)"
TARGET_S = 5.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_start(timeout_s: float) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="s2v-cold-") as tmp:
        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
        args = [sys.executable, "app.py", "--port", str(port), "--output-dir", f"{tmp}/out", "--cache-dir", f"{tmp}/cache"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                elapsed = time.perf_counter() - t0
                if elapsed > timeout_s:
                    raise TimeoutError(f"no HTTP 200 on / after {timeout_s} s")
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                        if response.status == 200:
                            return time.perf_counter() - t0
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    pass
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    env = environment()
    times = [one_start(args.timeout) for _ in range(runs)]
    med = median(times)
    text = "\n".join([
        *env_lines(env),
        f"- Command: `python app.py --port P --output-dir T --cache-dir T` until `GET /` answers 200; "
        f"median of {runs} run(s){' (--quick)' if args.quick else ''}",
        f"- Machine state: {busy_note(env)}",
        "",
        "| measure | median s | runs (s) | target | result |",
        "|---|---:|---|---|---|",
        f"| start to first HTTP 200 on / | {med:.2f} | {fmt_runs(times)} | < {TARGET_S:g} s | {verdict(med < TARGET_S)} |",
    ])
    publish(HEADING, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

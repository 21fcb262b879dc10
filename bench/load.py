"""Load: 8 clients x 3 renders at once through gradio_client against a local server (``python app.py``).

The server runs the tiny random diffusers model (tests/tiny_model.py, built in code) on the CPU with
the default queue settings (one render at a time, the rest wait in the queue). Every client submits
its three renders one after another, all clients at once; each storyboard has its own prompts and
length, so a result that went to the wrong client (cross-talk) shows up as the wrong frame count.

Checked: every render correct (H.264 MP4 with the frames its own storyboard asks for, report
agreeing), the server's memory after the load within 10% of before it (measured after one warm-up
render), and nothing left behind (no unfinished render folder, no ffmpeg process). Writes its
section of bench/RESULTS.md: ``python bench/load.py [--clients 8] [--renders 3] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import ROOT, busy_note, env_lines, environment, publish, verdict  # noqa: E402

HEADING = "## Load: 8 clients x 3 renders at once (bench/load.py)"
MEMORY_LIMIT = 1.10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def board(client: int, render: int) -> dict:
    """A storyboard of its own: prompts name the client and render, lengths differ between jobs."""
    job = client * 3 + render
    scenes = [{"prompt": f"client {client} render {render} scene {k}: a harbour at dawn", "duration": 0.5 + 0.25 * ((job + k) % 4),
               "seed": 100 * job + k} for k in range(2)]
    return {"scenes": scenes, "quality": "draft", "fps": 12, "transition": "crossfade", "transition_duration": 0.3,
            "steps": 2, "guidance_scale": 0}


def expected_frames(data: dict) -> int:
    from pipeline import parse_storyboard
    from pipeline.video.timeline import plan_timeline

    return plan_timeline(parse_storyboard(data)).total_frames


def start_server(work: Path, model: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    args = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--model", str(model),
            "--device", "cpu", "--output-dir", str(work / "outputs"), "--cache-dir", str(work / "cache")]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the server did not start")


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def check(video: str, report: dict, data: dict) -> str:
    """"" when the render is what ``data`` asked for, else what is wrong."""
    from media import probe

    want = expected_frames(data)
    info = probe(video)
    problems = []
    if (info.codec, info.width, info.height) != ("h264", 854, 480):
        problems.append(f"{info.codec} {info.width}x{info.height}")
    if not info.frames == report["frames"] == want:
        problems.append(f"frames {info.frames}/{report['frames']}, wanted {want}")
    if len(report["scenes"]) != 2 or any(s["source"] not in ("ai", "cache") for s in report["scenes"]):
        problems.append(f"scenes {report['scenes']}")
    return "; ".join(problems)


def run(clients: int, renders: int) -> dict:
    from gradio_client import Client

    from tiny_model import build_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="scene2video-load-"))
    model = build_tiny_pipeline(work / "model")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(work, model, port)
    try:
        wait_for(url, proc)
        warm = Client(url, verbose=False)
        video, report = warm.predict(json.dumps(board(99, 0)), api_name="/render")
        assert not check(video, report, board(99, 0)), check(video, report, board(99, 0))
        time.sleep(2)
        before = rss_mb(proc.pid)
        results: list[tuple[int, int, str, float]] = []
        lock = threading.Lock()

        def client_run(number: int) -> None:
            client = Client(url, verbose=False)
            for render in range(renders):
                data = board(number, render)
                t0 = time.perf_counter()
                try:
                    video, report = client.predict(json.dumps(data), api_name="/render")
                    problem = check(video, report, data)
                except Exception as exc:  # noqa: BLE001 - recorded as a wrong render
                    problem = f"{type(exc).__name__}: {exc}"
                with lock:
                    results.append((number, render, problem, time.perf_counter() - t0))

        threads = [threading.Thread(target=client_run, args=(n,)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        time.sleep(2)
        after = rss_mb(proc.pid)
        server = psutil.Process(proc.pid)
        ffmpeg_left = [c for c in server.children(recursive=True) if "ffmpeg" in c.name().lower()]
        folders = [f for f in (work / "outputs").iterdir() if f.is_dir()]
        unfinished = [f.name for f in folders if (f / ".rendering").exists() or not (f / "report.json").exists()]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return dict(results=results, wall=wall, before=before, after=after, ffmpeg_left=len(ffmpeg_left),
                folders=len(folders), unfinished=unfinished)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--renders", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    env = environment()
    out = run(args.clients, args.renders)
    total = args.clients * args.renders
    wrong = [r for r in out["results"] if r[2]]
    ratio = out["after"] / out["before"]
    latencies = sorted(r[3] for r in out["results"])
    ok_memory = ratio <= MEMORY_LIMIT
    ok_all = not wrong and len(out["results"]) == total
    ok_clean = not out["unfinished"] and out["ffmpeg_left"] == 0 and out["folders"] == total + 1
    lines = env_lines(env) + [
        f"- Setup: `python app.py` (default queue: one render at a time), tiny random SD model on the CPU; "
        f"{args.clients} gradio_client clients x {args.renders} renders each, all clients at once; "
        "each render 2 scenes, draft 854x480 at 12 fps, 2 steps",
        f"- Machine state: {busy_note(env)}",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| renders correct | {total - len(wrong)} of {total} |",
        f"| time for all {total} (wall) | {out['wall']:.1f} s |",
        f"| one render, submit to result: median / slowest | {latencies[len(latencies) // 2]:.1f} s / {latencies[-1]:.1f} s |",
        f"| server RSS before (after a warm-up render) / after | {out['before']:.0f} MB / {out['after']:.0f} MB |",
        f"| render folders / unfinished / ffmpeg left | {out['folders']} / {len(out['unfinished'])} / {out['ffmpeg_left']} |",
        "",
        "| target | measured | result |",
        "|---|---:|---|",
        f"| every render correct, no cross-talk | {total - len(wrong)} of {total} | {verdict(ok_all)} |",
        f"| memory after within 10% of before | {ratio:.2f} x | {verdict(ok_memory)} |",
        f"| nothing left behind | {'yes' if ok_clean else 'no'} | {verdict(ok_clean)} |",
    ]
    if wrong:
        lines += ["", "Wrong renders:"] + [f"- client {c} render {r}: {p}" for c, r, p, _ in wrong[:10]]
    publish(HEADING, "\n".join(lines), write=not args.no_write)
    return 0 if ok_all and ok_memory and ok_clean else 1


if __name__ == "__main__":
    sys.exit(main())

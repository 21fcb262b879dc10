"""Storyboards per hour for a batch: locally, and on Ray with 1 and 2 simulated GPU actors.

``python bench/batch.py [--storyboards 24] [--seconds-per-image 0.5] [--quick] [--no-write]``

Each run is the batch command's own machinery (``pipeline.batch``: the manifest, the local driver
or the Ray driver, the project's Renderer for every storyboard) on ``--storyboards`` short
storyboards (2 scenes of 1 s, draft, 8 fps, a crossfade). The images come from
tests/stand_in_model.py's FixedTimeModel: a fixed time per image, one image at a time per model
(as one GPU), so the image stage dominates as it does on a GPU, and a second actor is a second
"GPU". Ray runs on a cluster on this machine alone (loopback only; ``num_gpus=2`` as resources,
``num_cpus=4`` logical CPUs for the encoding tasks on the 2 real cores).

Reported: storyboards per hour over the whole run (from the start: cluster already up, actors
starting, model loading), and at steady state (from the first quarter of the storyboards finished to the last), and
the fraction of the run each model (actor) spent making images. Targets (issue 24, point 7):
2 actors at least 1.8x one; Ray with one actor within 10% of the local run at steady state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, busy_note, env_lines, environment, publish, verdict  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))

HEADING = "## Batch: storyboards per hour, locally and on Ray (bench/batch.py)"
WARM_SHARE = 4  # steady state: from the (n / WARM_SHARE)-th storyboard finished to the last


@dataclass
class Measured:
    name: str
    wall_s: float
    finished: list[float]  # seconds from the start at which each storyboard finished
    busy: list[tuple[str, float]]  # each model's place and its seconds making images

    @property
    def per_hour(self) -> float:
        return len(self.finished) / self.wall_s * 3600

    @property
    def steady_per_hour(self) -> float:
        times = sorted(self.finished)
        first = max(2, len(times) // WARM_SHARE)
        return (len(times) - first) / (times[-1] - times[first - 1]) * 3600


def write_storyboards(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        board = {"scenes": [{"prompt": f"bench batch {i}, scene {k}", "duration": 1, "seed": 100 * i + k}
                            for k in range(2)],
                 "quality": "draft", "fps": 8, "transition": "crossfade", "transition_duration": 0.5}
        (folder / f"sb-{i:03d}.json").write_text(json.dumps(board))
    return folder


class SharedModel:
    """One FixedTimeModel for a local batch, so its busy time can be read afterwards."""

    batch_size = None
    controlnet = ""
    clip_size = None

    def __init__(self, seconds: float) -> None:
        from stand_in_model import FixedTimeModel

        self.shared = FixedTimeModel(seconds)

    def model(self, model_id):
        return self.shared

    def cache(self):
        return None

    def clip_cache(self):
        return None


def finish_times(out: Path, started_wall: float) -> list[float]:
    from pipeline.batch.manifest import read_rows

    rows = read_rows(out).values()
    assert all(row["status"] == "ok" for row in rows), [row["reason"] for row in rows if row["status"] != "ok"]
    return [datetime.fromisoformat(row["finished_at"].replace("Z", "+00:00")).timestamp() - started_wall
            for row in rows]


def run(name: str, src: Path, out: Path, driver) -> tuple[Measured, object]:
    from pipeline.batch.command import BatchRun
    from pipeline.batch.sources import read_source

    items = read_source(src)
    batch_run = BatchRun(out, len(items), resume=False, quiet=True)
    jobs = batch_run.start(items, no_ai=False, own_model=False)
    started_wall, started = time.time(), time.monotonic()
    driver.run(jobs, batch_run.finished, batch_run.stage)
    wall = time.monotonic() - started
    batch_run.close()
    return Measured(name, wall, finish_times(out, started_wall), []), driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storyboards", type=int, default=24)
    parser.add_argument("--seconds-per-image", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="12 storyboards")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.storyboards = 12
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                       "RAY_USAGE_STATS_ENABLED": "0",
                       "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])})
    import ray  # after the environment (read at import): the cluster stays on loopback

    from pipeline.batch.local import LocalBatch
    from pipeline.batch.ray_driver import RayBatch
    from stand_in_model import FixedTimeModels

    env = environment()
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        src = write_storyboards(Path(tmp) / "src", args.storyboards)
        models = SharedModel(args.seconds_per_image)
        measured, _ = run("local", src, Path(tmp) / "local", LocalBatch(models, Path(tmp) / "work"))
        measured.busy = [("local", models.shared.busy_s)]
        results.append(measured)
        ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
                 log_to_driver=False)
        try:
            for actors in (1, 2):
                driver = RayBatch(FixedTimeModels(args.seconds_per_image), actors=actors, in_flight=2)
                measured, _ = run(f"Ray, {actors} actor{'s' if actors > 1 else ''}", src, Path(tmp) / f"ray{actors}",
                                  driver)
                measured.busy = driver.actor_stats
                results.append(measured)
        finally:
            ray.shutdown()
    local, one, two = results
    text = "\n".join([
        *env_lines(env),
        f"- Ray {ray.__version__}; {args.storyboards} storyboards of 2 scenes x 1 s (draft, 8 fps, crossfade); "
        f"stand-in model: {args.seconds_per_image} s per image, one at a time per model; 2 storyboards in flight "
        "(locally, and per actor on Ray)",
        f"- Command: `python bench/batch.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- Machine state: {busy_note(env)}",
        "",
        "| run | seconds | storyboards/hour (whole run) | storyboards/hour (steady) | models busy (share of the run) |",
        "|---|---:|---:|---:|---|",
        *(f"| {m.name} | {m.wall_s:.1f} | {m.per_hour:.0f} | {m.steady_per_hour:.0f} | "
          + ", ".join(f"{where}: {busy / m.wall_s:.0%}" for where, busy in m.busy) + " |" for m in results),
        "",
        f"- 2 actors against 1 (steady): **{two.steady_per_hour / one.steady_per_hour:.2f}x** "
        f"(whole run {two.per_hour / one.per_hour:.2f}x); target at least 1.8x: "
        f"{verdict(two.steady_per_hour >= 1.8 * one.steady_per_hour)}",
        f"- Ray with 1 actor against the local run (steady): **{one.steady_per_hour / local.steady_per_hour:.2f}x**; "
        f"target within 10%: {verdict(abs(one.steady_per_hour / local.steady_per_hour - 1) <= 0.10)}",
        f"- The model's own ceiling: {3600 / (2 * args.seconds_per_image):.0f} storyboards/hour per model "
        f"(2 images of {args.seconds_per_image} s each). The whole-run rates and busy shares on Ray include the "
        "seconds Ray spends starting its worker processes and actors (each imports the project); on a batch of "
        "hundreds that start is paid once.",
    ])
    publish(HEADING, text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

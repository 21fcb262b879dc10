"""``python -m pipeline batch SRC --out DIR``: flags, the progress bar, the manifest rows and the exit code.

Exit codes: 0 every storyboard ``ok`` (or skipped as done before), 1 some failed, 2 SRC (or a
setting, or Ray for ``--ray``) is unusable, 130 interrupted. Each storyboard's video is
``DIR/<id>.mp4`` with its report ``DIR/<id>.report.json``; ``DIR/manifest.jsonl`` gets a row as
each one finishes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ..contract.errors import ConfigError
from ..contract.settings import add_settings_arguments, settings_from_args
from .manifest import Manifest, ManifestRow, done_ids
from .models import ModelSource, SettingsModels
from .render_one import Job, Outcome
from .sources import BatchItem, SourceError, read_source

WORK_DIR = ".rendering"  # under DIR: the render folders while storyboards are in flight
REPORT_SUFFIX = ".report.json"


def add_batch_parser(commands, settings: tuple[str, ...]) -> None:
    """The ``batch`` subcommand of ``python -m pipeline`` (``settings``: the render flags it shares)."""
    batch = commands.add_parser("batch", help="render a folder (or JSONL file) of storyboards",
                                description="Render many storyboards, here or on a Ray cluster, with a manifest.")
    batch.add_argument("src", type=Path, help="a folder of storyboard .json files, or a .jsonl file (one a line)")
    batch.add_argument("--out", type=Path, required=True, help="folder for the videos, reports and manifest.jsonl")
    batch.add_argument("--resume", action="store_true",
                       help="skip storyboards the manifest already has as ok (and whose video exists)")
    batch.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray: alone, a local cluster; with ADDRESS (e.g. 10.0.0.5:6379), that cluster")
    batch.add_argument("--actors", type=int, default=None,
                       help="Ray: GPU actors holding the model (default: one per GPU of the cluster)")
    batch.add_argument("--in-flight", type=int, default=2,
                       help="storyboards in flight per actor (Ray) or on this machine (default 2)")
    batch.add_argument("--no-ai", action="store_true", help="labelled placeholder frames instead of the model")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_arguments(batch, only=settings)


def run_batch_command(args: argparse.Namespace, models: ModelSource | None = None) -> int:
    """Run the batch ``args`` describes (``models``: the model source; default the settings')."""
    try:
        settings = settings_from_args(args)
        items = read_source(args.src, settings.limits())
        args.out.mkdir(parents=True, exist_ok=True)
    except (ConfigError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot make the folder {args.out}: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    if args.ray is not None:
        if args.ray == "local":
            # A cluster for this machine alone listens on loopback only, not on the network address
            # (Ray reads this when it is imported, so it is set first; ``ray start`` clusters are not affected).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            from .ray_driver import RayBatch  # imports ray
        except ImportError:
            print("error: --ray needs Ray, which is not installed: pip install 'ray==2.60.0'.",
                  file=sys.stderr)
            return 2
    models = models or SettingsModels(settings)
    run = BatchRun(args.out, len(items), resume=args.resume, quiet=args.quiet)
    jobs = run.start(items, no_ai=args.no_ai, own_model=args.model is not None,
                     own_video_model=getattr(args, "video_model", None) is not None)
    try:
        if args.ray is None:
            from .local import LocalBatch

            LocalBatch(models, args.out / WORK_DIR, overlap=args.in_flight).run(jobs, run.finished, run.stage)
        else:
            RayBatch(models, address=args.ray, actors=args.actors, in_flight=args.in_flight).run(
                jobs, run.finished, run.stage)
    except KeyboardInterrupt:
        run.close()
        print("stopped", file=sys.stderr)
        return 130
    except ConnectionError as exc:  # a Ray cluster that cannot be reached
        run.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(args.out / WORK_DIR, ignore_errors=True)
    return run.summary()


class BatchRun:
    """The manifest, the bar and the results of one batch; ``finished`` may be called from any thread."""

    def __init__(self, out: Path, total: int, resume: bool, quiet: bool) -> None:
        from tqdm import tqdm

        self.out = out
        self.resume = resume
        self.manifest = Manifest(out, resume=resume)
        self.bar = tqdm(total=total, disable=quiet, unit="storyboard", dynamic_ncols=True)
        self.rows: list[ManifestRow] = []
        self.stages: dict[str, str] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def start(self, items: list[BatchItem], no_ai: bool, own_model: bool, own_video_model: bool = False) -> list[Job]:
        """Rows for what is skipped or unusable now; the jobs to render for the rest."""
        done = done_ids(self.out) if self.resume else {}
        jobs = []
        for item in items:
            if item.id in done:
                row = done[item.id]
                self._row(ManifestRow(item.id, "skipped", "done in an earlier run", int(row.get("attempts", 0)),
                                      row["output"], row.get("report", ""), where=row.get("where", ""),
                                      source=item.origin))
            elif item.storyboard is None:
                self._row(ManifestRow(item.id, "failed", item.error, 0, source=item.origin))
            else:
                storyboard = item.storyboard
                if no_ai:
                    storyboard = storyboard.with_changes(use_ai=False)
                else:  # --model (--video-model) wins over the storyboard's model (video model), as for `render`
                    if own_model:
                        storyboard = storyboard.with_changes(model=None)
                    if own_video_model:
                        storyboard = storyboard.with_changes(video_model=None)
                jobs.append(Job(item.id, storyboard, item.origin))
        return jobs

    def stage(self, job: Job, stage: str) -> None:
        with self._lock:
            self.stages[job.id] = stage
            self._show_stages()

    def _show_stages(self) -> None:
        """The bar's postfix: the stage of the (at most two) latest storyboards in flight."""
        self.bar.set_postfix_str(" · ".join(f"{i}: {s}" for i, s in list(self.stages.items())[-2:]))

    def finished(self, job: Job, outcome: Outcome, attempts: int) -> None:
        output = report = ""
        if outcome.ok:
            try:
                output, report = self._deliver(job.id, outcome)
            except OSError as exc:
                outcome = replace(outcome, ok=False, reason=f"Could not write the result: {exc.strerror or exc}.")
        _remove_render_folder(outcome)
        row = ManifestRow(job.id, "ok" if outcome.ok else "failed", outcome.reason, attempts, output, report,
                          outcome.images_s, outcome.encode_s, outcome.where, job.source)
        with self._lock:
            self.stages.pop(job.id, None)
            self._show_stages()
            self._row(row)

    def _row(self, row: ManifestRow) -> None:
        self.manifest.write(row)
        self.rows.append(row)
        if row.status == "failed":
            self.bar.write(f"{row.id}: failed — {row.reason}")
        self.bar.update(1)

    def _deliver(self, item_id: str, outcome: Outcome) -> tuple[str, str]:
        """Put the video and its report in DIR as ``<id>.mp4`` and ``<id>.report.json`` (whole files only)."""
        video, report = f"{item_id}.mp4", f"{item_id}{REPORT_SUFFIX}"
        for name, path, data in ((report, outcome.report, outcome.report_bytes),
                                 (video, outcome.video, outcome.video_bytes)):
            partial = self.out / f".{name}.part"
            if data is not None:
                partial.write_bytes(data)
            elif path is not None:
                shutil.move(str(path), partial)
            else:
                continue
            os.replace(partial, self.out / name)
        return video, report

    def close(self) -> None:
        self.bar.close()
        self.manifest.close()

    def summary(self) -> int:
        """Close the bar and manifest, print one line per outcome kind; the exit code."""
        self.close()
        counts = {status: sum(row.status == status for row in self.rows) for status in ("ok", "failed", "skipped")}
        took = time.monotonic() - self.started
        print(f"{len(self.rows)} storyboard(s) in {took:.1f} s: {counts['ok']} ok, {counts['failed']} failed, "
              f"{counts['skipped']} skipped · {self.manifest.path}")
        for row in self.rows:
            if row.status == "failed":
                print(f"failed: {row.id} ({row.source}): {row.reason}")
        return 1 if counts["failed"] else 0


def _remove_render_folder(outcome: Outcome) -> None:
    """The render's own folder (its keyframes, the moved video's leftovers) once its results are in DIR."""
    for path in (outcome.video, outcome.report):
        if path is not None and path.parent.exists():
            shutil.rmtree(path.parent, ignore_errors=True)
            return

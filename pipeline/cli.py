"""Command line: ``python -m pipeline render STORYBOARD.json -o OUT.mp4 [--report REPORT.json] [--no-ai]``,
``python -m pipeline batch SRC --out DIR`` (many storyboards: ``pipeline.batch``) and
``python -m pipeline restyle VIDEO -o OUT.mp4 --prompt TEXT [--storyboard-out SB.json]``: the video's
shots found, one scene per shot, each redrawn from its own frames (see ``pipeline.restyle``).

Exit codes: 0 done, 1 the render failed, 2 bad input (message on stderr), 130 interrupted.
One tqdm bar; log messages and warnings are written above it, never into it. The closing summary
says which scenes are placeholders and which morphs became crossfades, one line per reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from .contract.errors import ConfigError, StoryboardError
from .contract.events import Done, Failed, Progress
from .contract.fallbacks import fallback_groups
from .service import build_renderer
from .contract.settings import add_settings_arguments, settings_from_args
from .contract.storyboard import parse_storyboard
from .storyboard_files import load_storyboard_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="Render a storyboard to an MP4.")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="render a storyboard JSON file to an MP4")
    render.add_argument("storyboard", type=Path, help="storyboard JSON file (see README)")
    render.add_argument("-o", "--output", type=Path, required=True, help="where to write the MP4")
    render.add_argument("--report", type=Path, help="also write the render report (JSON) here")
    render.add_argument("--no-ai", action="store_true",
                        help="labelled placeholder frames instead of the model (fast)")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_arguments(render, only=RENDER_SETTINGS)
    from .batch.command import add_batch_parser

    add_batch_parser(commands, RENDER_SETTINGS)
    _add_restyle_parser(commands)
    return parser


def _add_restyle_parser(commands) -> None:
    restyle = commands.add_parser("restyle", help="restyle a video: its shots redrawn in a style, sound kept")
    restyle.add_argument("video", type=Path, help="the source video")
    restyle.add_argument("-o", "--output", type=Path, required=True, help="where to write the MP4")
    restyle.add_argument("--prompt", required=True, help="what every shot should look like (the scenes' prompt)")
    restyle.add_argument("--style", default="", help="added to the prompt (the storyboard's style)")
    restyle.add_argument("--quality", default="standard", help="draft, standard, high or premium")
    restyle.add_argument("--fps", type=int, help="the output's frame rate (default: the quality's)")
    restyle.add_argument("--coherence", default="flow", help="flow (keyframes carried by optical flow) or none")
    restyle.add_argument("--keyframe-interval", type=int, default=8, help="frames between redrawn keyframes")
    restyle.add_argument("--strength", type=float, help="how far each keyframe moves from the source (0..1)")
    restyle.add_argument("--seed", type=int, help="the shots' seed (default: from the prompt)")
    restyle.add_argument("--steps", type=int, help="denoising steps (default: the preset's)")
    restyle.add_argument("--storyboard-out", type=Path, help="also write the storyboard it made here")
    restyle.add_argument("--report", type=Path, help="also write the render report (JSON) here")
    restyle.add_argument("--no-ai", action="store_true", help="show the source frames instead of the model's")
    restyle.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_arguments(restyle, only=RENDER_SETTINGS + ("max_source_seconds",))


# The settings that matter to one render (the rest configure the web app).
RENDER_SETTINGS = ("model", "device", "batch_size", "cache_dir", "cache_max_mb", "allow_pickle_weights", "backend",
                   "max_scenes", "max_total_seconds", "max_quality", "controlnet_model", "remote_model",
                   "remote_provider", "remote_quality", "max_requests_in_flight", "remote_timeout", "decoder",
                   "tiny_decoder", "video_model", "clip_size")
STAGE_WIDTH = 10  # the bar's stage name is padded, so the bar does not jump when it changes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "batch":
        from .batch.command import run_batch_command

        with _log_above_the_bar():
            return run_batch_command(args)
    if args.output.suffix.lower() != ".mp4":  # the file is an MP4 whatever it is called: say so, not a .txt
        print(f"error: -o/--output must name an .mp4 file (got '{args.output.name}'), e.g. "
              f"{args.output.with_suffix('.mp4').name}.", file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
        if args.command == "restyle":
            storyboard = _restyle_storyboard(args, settings)
        else:  # relative paths in the file (audio, reference image, source video) are relative to its folder
            storyboard = load_storyboard_file(args.storyboard, settings.limits())
        if args.no_ai:
            storyboard = storyboard.with_changes(use_ai=False)
        elif storyboard.model and args.model is None:  # the storyboard's model, unless --model says otherwise
            settings = replace(settings, model=storyboard.model)
        if storyboard.video_model and args.video_model is None:  # the same for the video model
            settings = replace(settings, video_model=storyboard.video_model)
    except (ConfigError, StoryboardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if storyboard.cut_on_beats:
        from .audio.beats import warm_up

        warm_up()  # the beat tracker loads (or compiles) while the renderer is set up and the song is read
    with tempfile.TemporaryDirectory(prefix="scene2video-") as tmp, _log_above_the_bar():
        renderer = build_renderer(settings, output_dir=Path(tmp), storyboard=storyboard)
        return _run(renderer, storyboard, args)


@contextmanager
def _log_above_the_bar() -> Iterator[None]:
    """Log records and Python warnings (ours, and diffusers' and transformers', which the diffusers
    backend hands to the root logger) go through tqdm.write."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logging.captureWarnings(True)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            yield
    finally:
        logging.captureWarnings(False)


def _restyle_storyboard(args, settings):
    """The storyboard ``restyle`` renders: one scene per shot of the video (written out if asked)."""
    from .restyle.shots import storyboard_from_video

    board = {"quality": args.quality, "style": args.style, "coherence": args.coherence,
             "keyframe_interval": args.keyframe_interval}
    board.update({name: value for name, value in (("look_strength", args.strength), ("steps", args.steps))
                  if value is not None})
    probe = parse_storyboard({"scenes": [{"prompt": args.prompt, "duration": 1}], **board,
                              **({"fps": args.fps} if args.fps else {})}, settings.limits())  # checks the flags
    data = storyboard_from_video(args.video.resolve(), args.prompt, probe.output_fps, settings.limits(), board)
    if args.seed is not None:
        for scene in data["scenes"]:
            scene["seed"] = args.seed
    storyboard = parse_storyboard(data, settings.limits())
    if args.storyboard_out:
        written = storyboard.to_dict()
        try:  # relative to the file, so the storyboard and the video can move together
            written["source_video"] = os.path.relpath(storyboard.source_video, args.storyboard_out.resolve().parent)
        except ValueError:  # another drive (Windows)
            pass
        try:
            args.storyboard_out.write_text(json.dumps(written, indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise StoryboardError(f"Cannot write {args.storyboard_out.name}: {exc.strerror or exc}.") from None
    return storyboard


def _run(renderer, storyboard, args) -> int:
    cancel = threading.Event()
    bar = _Bar(total=1000, disable=args.quiet, unit="‰", bar_format="{desc} {percentage:3.0f}%|{bar}| {message}")
    events = renderer.render(storyboard, cancel)
    try:
        for event in events:
            if isinstance(event, Progress):
                bar.n = round(event.fraction * 1000)
                bar.set_description_str(f"{event.stage:<{STAGE_WIDTH}}", refresh=False)
                left = f" · about {round(event.eta_seconds)} s left" if event.eta_seconds is not None else ""
                bar.message = event.message + left
                bar.refresh()
            elif isinstance(event, Done):
                bar.n = 1000
                bar.close()
                return _deliver(event, args)
            elif isinstance(event, Failed):
                bar.close()
                print(f"error: {event.message}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        cancel.set()
        events.close()  # kills ffmpeg and removes partial files
        bar.close()
        print("stopped", file=sys.stderr)
        return 130
    return 1


class _Bar(tqdm):
    """tqdm's bar with a ``message`` after it (its own postfix would start with a comma)."""

    message = ""

    @property
    def format_dict(self) -> dict[str, Any]:
        return {**super().format_dict, "message": self.message}


def _deliver(done: Done, args) -> int:
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(done.video_path), args.output)
        if args.report:
            args.report.write_text(json.dumps(done.report.to_dict(), indent=2), encoding="utf-8")
    except OSError as exc:  # a full disk, a read-only folder: one line, and no half-written MP4 left
        if done.video_path.exists():  # the move did not finish: what reached the output is partial
            args.output.unlink(missing_ok=True)
        print(f"error: could not write the result: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    report = done.report
    print(f"{args.output}: {report.width}x{report.height}, {report.fps} fps, {report.frames} frames, "
          f"{report.duration:.2f} s, {len(report.fallbacks)} placeholder scene(s)"
          + (f", cut on {len(report.beats)} beat(s)" if report.beats else "")
          + (f", {clips} clip(s)" if (clips := sum(scene.frames == "clip" for scene in report.scenes)) else "")
          + (f", {made} generated transition(s)" if (made := sum(t.made == "clip" for t in report.transitions)) else ""))
    for group in fallback_groups(report):  # one line per reason, not one per scene or transition
        print(f"{group.label()}: {group.outcome} — {group.reason}")
    for note, scenes in _notes(report).items():  # what a remote backend did not send
        print(f"note: scene(s) {', '.join(scenes)}: {note}")
    return 0


def _notes(report) -> dict[str, list[str]]:
    """Each distinct scene note, with the scenes (numbered from 1) it applies to."""
    notes: dict[str, list[str]] = {}
    for scene in report.scenes:
        for note in scene.notes:
            notes.setdefault(note, []).append(str(scene.index + 1))
    return notes

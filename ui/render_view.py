"""Render events -> Gradio output updates, for the page and for the ``/render`` API.

The adapters are generators. Gradio closes a generator at its next ``yield`` when a
user presses Stop or a client cancels, and closing it closes the renderer (which
kills ffmpeg and removes partial files). Each yield costs a round of Gradio's
post-processing, so they yield when something visible changed and otherwise at
most every 0.2 s: a cancelled job is closed within that time. The page's Stop
button also sets the render's cancel flag, which the renderer checks every frame.
"""

from __future__ import annotations

import contextvars
import html
import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import gradio as gr
from gradio.data_classes import FileData

from pipeline import Done, Event, Failed, KeyframeReady, Preview, Progress, RenderReport, Segment
from pipeline.contract.fallbacks import boundaries_text, fallback_groups, scenes_text
from pipeline.outputs import file_stem  # noqa: F401  (the download's name; ui.handlers imports it from here)

from .soundtrack import timing_lines

# The page's render outputs, by name (ui.layout builds one component per name).
OUTPUT_NAMES = ("notice", "progress", "live_video", "video", "preview", "gallery", "report", "generate", "stop",
                "hint", "bad_cells")
_PROGRESS_EVERY_S = 0.2
STREAM_LINKS_KEPT_S = 600  # a render's streamed segments are linked elsewhere for this long


def progress_html(stage: str, fraction: float, message: str, eta: float | None) -> str:
    """A progress bar with the stage, what is being done and the time left."""
    percent = round(min(max(fraction, 0.0), 1.0) * 100)
    left = f" · about {format_seconds(eta)} left" if eta is not None and fraction < 1 else ""
    text = html.escape(f"{stage.capitalize()} · {message}{left}")
    return (
        f'<div class="s2v-progress" data-stage="{html.escape(stage)}" data-percent="{percent}">'
        f'<div class="s2v-bar"><div class="s2v-fill" style="width:{percent}%"></div></div>'
        f'<div class="s2v-text">{text}</div></div>'
    )


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def report_notice(report: RenderReport) -> str:
    """What the user should know about a finished render, placeholders first; one line per distinct
    fallback reason, naming the scenes or morphs it hit (``pipeline.contract.fallbacks``)."""
    lines = [
        f"**Done** — {report.width}×{report.height}, {report.fps} fps, {report.duration:.2f} s, "
        f"{report.frames} frames, in {report.seconds_taken:.1f} s."
    ]
    groups = fallback_groups(report)
    if report.fallbacks:
        lines.append(f"⚠️ {len(report.fallbacks)} of {len(report.scenes)} scenes use a **placeholder** frame:")
        lines += [f"- {group.label()}: {group.reason}" for group in groups if group.what == "scene"]
    lines += [f"{group.label()}: {group.outcome} — {group.reason}." for group in groups if group.what != "scene"]
    clips = [scene.index + 1 for scene in report.scenes if scene.frames == "clip"]
    if clips:
        lines.append(f"{scenes_text(clips)}: a clip from {report.scenes[clips[0] - 1].video_model}.")
    generated = [t for t in report.transitions if t.made == "clip"]
    if generated:
        lines.append(f"{boundaries_text('Transition', [t.index for t in generated])}: made by {generated[0].model}.")
    lines += timing_lines(report)
    cached = sum(scene.source == "cache" for scene in report.scenes)
    if cached:
        lines.append(f"{cached} scene(s) came from the keyframe cache.")
    return "\n".join(lines)


def keyframe_caption(event: KeyframeReady) -> str:
    label = {"ai": "AI", "cache": "cached", "placeholder": "placeholder"}[event.source]
    return f"{event.scene_index + 1} · {label}"


def render_started(stream: bool) -> dict[str, object]:
    """What the outputs show once a render is queued: last render's results gone, buttons locked, the
    hint that said where the video would appear gone for good (the results are shown there now)."""
    return dict(notice="", hint=gr.Markdown(visible=False), bad_cells="",
                progress=progress_html("loading", 0.0, "Waiting for the renderer", None),
                live_video=gr.Video(value=None, visible=stream), video=gr.Video(value=None, visible=False),
                preview=gr.Image(value=None, visible=False), gallery=gr.Gallery(value=[], visible=False),
                report=gr.JSON(value=None, visible=False), generate=gr.Button(interactive=False),
                stop=gr.Button(interactive=True))


def render_ended(notice: str) -> dict[str, object]:
    """Stopped or failed: the message, no stale progress, previews or live stream; Generate ready."""
    return dict(notice=notice, progress="", live_video=gr.Video(value=None, visible=False),
                preview=gr.Image(value=None, visible=False), generate=gr.Button(interactive=True),
                stop=gr.Button(interactive=False))


STOPPED = "**Render stopped.** Press Generate to start again."


@dataclass
class PageRender:
    """Accumulated state of one render on the page. ``outputs`` maps OUTPUT_NAMES to components;
    ``video_name`` is the file name the finished MP4 is offered under."""

    outputs: dict
    stream: bool
    video_name: str = "scene2video.mp4"
    note: str = ""  # advice said below the finished render's result (e.g. negative prompts a model ignores) …
    note_scenes: frozenset[int] = frozenset()  # … when one of these scenes (0-based) was made by the model
    gallery: dict[int, tuple[str, str]] = field(default_factory=dict)
    last_progress: float = 0.0
    stream_dir: Path | None = None

    def updates(self, events: Iterator[Event]) -> Iterator[dict]:
        """One ``{component: value}`` dict per event that changed something on the page."""
        try:
            for event in events:
                out: dict[str, object] = {}
                self._apply(event, out)
                if out:
                    yield {self.outputs[name]: value for name, value in out.items()}
        finally:
            events.close()  # kills ffmpeg, removes partial files, stops the model

    def streamed(self, segment: Path) -> str:
        """A link to ``segment`` that outlives the render folder: Gradio reads a streamed chunk after the
        update is sent, and a stopped render deletes its folder at once. Links go after a minute."""
        if self.stream_dir is None:
            self.stream_dir = Path(tempfile.mkdtemp(prefix="scene2video-stream-"))
            timer = threading.Timer(STREAM_LINKS_KEPT_S, shutil.rmtree, args=(self.stream_dir, True))
            timer.daemon = True
            timer.start()
        link = self.stream_dir / segment.name
        try:
            os.link(segment, link)
        except OSError:
            shutil.copyfile(segment, link)
        return str(link)

    def _apply(self, event: Event, out: dict) -> None:
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - self.last_progress >= _PROGRESS_EVERY_S or event.fraction >= 1:
                self.last_progress = now
                out["progress"] = progress_html(event.stage, event.fraction, event.message, event.eta_seconds)
        elif isinstance(event, Preview):
            out["preview"] = gr.Image(
                value=event.image, visible=True,
                label=f"Now generating: {event.what or f'scene {event.scene_index + 1}'}, "
                      f"step {event.step} of {event.total_steps}")
        elif isinstance(event, KeyframeReady):
            self.gallery[event.scene_index] = (str(event.path), keyframe_caption(event))
            out["gallery"] = gr.Gallery(value=[self.gallery[i] for i in sorted(self.gallery)], visible=True)
        elif isinstance(event, Segment) and self.stream:
            out["live_video"] = self.streamed(event.path)
        elif isinstance(event, Done):
            notice = "\n\n".join(text for text in (report_notice(event.report), self._advice(event.report)) if text)
            out.update(render_ended(notice),
                       progress=progress_html("done", 1.0, "Video ready", None),
                       video=gr.Video(value=named_copy(event.video_path, self.video_name), visible=True),
                       report=gr.JSON(value=event.report.to_dict(), visible=True))
        elif isinstance(event, Failed):
            out.update(render_ended(STOPPED if event.cancelled else f"❌ {event.message}"))

    def _advice(self, report: RenderReport) -> str:
        """The note, if the model made a picture it is about (a placeholder ignores every prompt)."""
        made = {scene.index for scene in report.scenes if scene.source != "placeholder"}
        return self.note if made & self.note_scenes else ""


def named_copy(video: Path, name: str) -> str:
    """``video`` under the file name a download should have (a hard link beside it when possible)."""
    target = video.with_name(name)
    if target == video:
        return str(video)
    try:
        target.unlink(missing_ok=True)
        os.link(video, target)
    except OSError:
        shutil.copyfile(video, target)
    return str(target)


def api_updates(events: Iterator[Event], cancel: threading.Event | None = None) -> Iterator[tuple]:
    """For ``/render``: (the MP4 as a FileData, the report dict) at the end; errors as gr.Error.

    The render is driven by its own thread (:class:`_Driven`), so it always finishes its
    clean-up (ffmpeg killed, partial files removed) even if Gradio drops this generator
    without closing it; ``cancel`` (set by a client's cancel, see ui.sessions) stops it within
    a frame or step. Until the end this yields ``(None, None)`` every 0.2 s (``/render`` is a
    typed API function: no component updates), so a cancelled job can be closed.
    """
    driven = _Driven(events, cancel or threading.Event())
    try:
        while not driven.ended:
            event = driven.next_within(_PROGRESS_EVERY_S)
            if isinstance(event, Done):
                yield FileData(path=str(event.video_path), orig_name=event.video_path.name), event.report.to_dict()
                return
            if isinstance(event, Failed):
                if event.cancelled:  # the client cancelled: nobody is waiting for an answer
                    return
                raise gr.Error(event.message, print_exception=False)  # the renderer logged what went wrong
            if event is None:
                yield None, None
    finally:
        driven.close()  # a render still running is cancelled, and waited for


class _Driven:
    """Iterates a render's events in a thread of its own (in a copy of this thread's context)."""

    _END = object()

    def __init__(self, events: Iterator[Event], cancel: threading.Event) -> None:
        self._events = events
        self._cancel = cancel
        self.ended = False  # True once the render's generator has ended and every event was taken
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                        name="scene2video-api", daemon=True)
        self._thread.start()

    def next_within(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` (or the render has ended)."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        if item is self._END:
            self.ended = True
            return None
        return item

    def close(self) -> None:
        if self._thread.is_alive():
            self._cancel.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for event in self._events:
                self._queue.put(event)
        except BaseException as exc:  # handed to the caller's thread
            self._queue.put(exc)
        finally:
            self._events.close()
            self._queue.put(self._END)

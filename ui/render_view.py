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
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import gradio as gr

from pipeline import Done, Event, Failed, KeyframeReady, Preview, Progress, RenderReport, Segment

from .soundtrack import timing_lines

# Outputs of the page's generate event, in this order.
OUTPUT_NAMES = ("gallery", "preview", "progress", "live_video", "video", "report", "notice", "generate", "stop")
_PROGRESS_EVERY_S = 0.2


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
    """What the user should know about a finished render, placeholders first."""
    lines = [
        f"**Done** — {report.width}×{report.height}, {report.fps} fps, {report.duration:.2f} s, "
        f"{report.frames} frames, in {report.seconds_taken:.1f} s."
    ]
    fallbacks = report.fallbacks
    if fallbacks:
        lines.append(f"⚠️ {len(fallbacks)} of {len(report.scenes)} scenes use a **placeholder** frame:")
        # One line per reason: a model that failed to load would otherwise repeat itself per scene.
        by_reason: dict[str, list[int]] = {}
        for scene in fallbacks:
            by_reason.setdefault(scene.reason, []).append(scene.index + 1)
        lines += [f"- {_scenes(numbers)}: {reason}" for reason, numbers in by_reason.items()]
    lines += [f"Morph {t.index + 1}→{t.index + 2}: drawn as a crossfade — {t.reason.rstrip('.')}."
              for t in report.transitions if t.made == "crossfade"]
    lines += timing_lines(report)
    cached = sum(scene.source == "cache" for scene in report.scenes)
    if cached:
        lines.append(f"{cached} scene(s) came from the keyframe cache.")
    return "\n".join(lines)


def _scenes(numbers: list[int]) -> str:
    return f"Scene {numbers[0]}" if len(numbers) == 1 else "Scenes " + ", ".join(map(str, numbers))


def keyframe_caption(event: KeyframeReady) -> str:
    label = {"ai": "AI", "cache": "AI (cached)", "placeholder": "placeholder"}[event.source]
    return f"Scene {event.scene_index + 1} · {label}"


@dataclass
class PageRender:
    """Accumulated state of one render on the page."""

    stream: bool
    gallery: list[tuple[str, str]] = field(default_factory=list)
    last_progress: float = 0.0

    def updates(self, events: Iterator[Event]) -> Iterator[tuple]:
        """One tuple of outputs (see OUTPUT_NAMES) per event; ``gr.skip()`` where nothing changed."""
        skip = gr.skip()
        try:
            for event in events:
                out = dict.fromkeys(OUTPUT_NAMES, skip)
                self._apply(event, out)
                if any(value is not skip for value in out.values()):
                    yield tuple(out[name] for name in OUTPUT_NAMES)
        finally:
            events.close()  # on Stop: kills ffmpeg, removes partial files, stops the model

    def _apply(self, event: Event, out: dict) -> None:
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - self.last_progress >= _PROGRESS_EVERY_S or event.fraction >= 1:
                self.last_progress = now
                out["progress"] = progress_html(event.stage, event.fraction, event.message, event.eta_seconds)
        elif isinstance(event, Preview):
            out["preview"] = gr.Image(
                value=event.image, label=f"Now generating: {event.what or f'scene {event.scene_index + 1}'}, "
                                         f"step {event.step} of {event.total_steps}")
        elif isinstance(event, KeyframeReady):
            self.gallery.append((str(event.path), keyframe_caption(event)))
            out["gallery"] = list(self.gallery)
        elif isinstance(event, Segment) and self.stream:
            out["live_video"] = str(event.path)
        elif isinstance(event, Done):
            # The step preview has done its job; the keyframes are in the gallery.
            out.update(preview=gr.Image(value=None, label="Now generating"),
                       video=str(event.video_path), report=event.report.to_dict(),
                       notice=report_notice(event.report), progress=progress_html("done", 1.0, "Video ready", None),
                       generate=gr.Button(interactive=True), stop=gr.Button(interactive=False))
        elif isinstance(event, Failed):
            notice = "**Render stopped.** Press Generate to start again." if event.cancelled else f"❌ {event.message}"
            out.update(notice=notice, progress="", generate=gr.Button(interactive=True),
                       stop=gr.Button(interactive=False))


def api_updates(events: Iterator[Event], cancel: threading.Event | None = None) -> Iterator[tuple]:
    """For ``/render``: (MP4 path, report dict) at the end; errors as gr.Error.

    The render is driven by its own thread (:class:`_Driven`), so it always finishes its
    clean-up (ffmpeg killed, partial files removed) even if Gradio drops this generator
    without closing it; ``cancel`` (set by a client's cancel, see ui.sessions) stops it within
    a frame or step. Until the end this yields "no change" every 0.2 s, so a cancelled job
    can be closed.
    """
    skip = gr.skip()
    driven = _Driven(events, cancel or threading.Event())
    try:
        while not driven.ended:
            event = driven.next_within(_PROGRESS_EVERY_S)
            if isinstance(event, Done):
                yield str(event.video_path), event.report.to_dict()
                return
            if isinstance(event, Failed):
                if event.cancelled:  # the client cancelled: nobody is waiting for an answer
                    return
                raise gr.Error(event.message)
            if event is None:
                yield skip, skip
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

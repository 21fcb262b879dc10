"""A batch on a Ray cluster (Ray Core): GPU actors make the images, CPU tasks compose and encode.

- :class:`ImageActor`: one per GPU (``num_gpus=1, num_cpus=0``, so encoding keeps every CPU). It
  builds the image model and the video model from the batch's ModelSource in its own process, each
  once, and answers their calls (``generate``, ``generate_clip`` and the few facts the render plan
  asks for), one at a time. A clip's frames go back as bytes (``footage_bytes``), no step previews.
- :func:`render_task`: one storyboard as a CPU task. It runs the project's own ``Renderer`` (the
  same code as a local batch: plan, cache-less image and clip stages, timeline, encoder), with an
  :class:`ActorModel` and an :class:`ActorVideoModel` standing for the models (the clip written
  into the task's own render folder as footage), so the frames are the same either way. The
  storyboard's files travel with the task as bytes (``files``); the MP4 and the report come back
  as bytes and the driver writes them into DIR.
- :class:`RayBatch`: the driver. At most ``in_flight`` storyboards per actor; each finished task is
  a manifest row. A task lost with its actor or worker is retried once (on another actor where
  there is one), then ``failed`` with the reason; an actor that does not come back is dropped.

Only ``--ray`` imports this module (and so Ray).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from ..contract.errors import StoryboardError, public_message
from ..contract.footage import Footage
from ..images.clip_batches import batch_key
from ..images.clip_generation import ClipRequest, FrameRules, GeneratedClip
from ..images.clip_stage import NO_VIDEO_MODEL_REASON
from ..images.generation import GeneratedImage, ImageRequest, ModelInfo
from ..renderer import Renderer
from .files import PackedFile, pack_files, unpack_files
from .footage_bytes import PackedFootage, pack_footage, unpack_footage
from .local import Finished, Stage
from .models import ModelSource
from .render_one import Job, Outcome, render_storyboard

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a storyboard lost with its actor or worker is tried once more
_WAIT_S = 0.5  # how often the driver looks at finished tasks
_ACTOR_BACK_S = 300.0  # how long a restarting actor may take (it loads its model again)


class ActorLost(RuntimeError):
    """The actor holding the model died or cannot be reached."""


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """For a ``host:port`` address, ConnectionError at once when nothing listens there (Ray itself
    would retry for minutes); other forms (``auto``, ``ray://…``) are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Ray cluster at {address}: "
                              f"{exc.strerror or type(exc).__name__} (is `ray start --head` running there?)") from None


@functools.cache
def node_address() -> str:
    """The address this worker's node joined the cluster with (as Ray itself knows it, e.g. 127.0.0.1)."""
    node_id = ray.get_runtime_context().get_node_id()
    return next((node["NodeManagerAddress"] for node in ray.nodes() if node["NodeID"] == node_id), node_id[:12])


@dataclass(frozen=True)
class ModelFacts:
    """What a render plan asks of a model that does not change while it lives."""

    model_id: str
    distilled: bool
    has_notes: bool
    max_in_flight: int
    where: str


@dataclass(frozen=True)
class VideoFacts:
    """What the clip stage asks of a video model that does not change while it lives (or why there is none)."""

    model_id: str = ""
    default_steps: int | None = None
    default_guidance: float | None = None
    reason: str = ""  # no video model: why (then model_id is "")


@dataclass(frozen=True)
class ClipAnswer:
    """A clip made on the actor: the backend's answer (its folder on the actor) and, when it made one, the frames."""

    clip: GeneratedClip
    footage: PackedFootage | None = None


@ray.remote(num_cpus=0, max_restarts=1, max_task_retries=0)
class ImageActor:
    """Holds the batch's image model(s) and video model(s) on one GPU and makes images and clips for the tasks."""

    def __init__(self, models: ModelSource) -> None:
        self.models = models
        self._made: dict = {}
        self._videos: dict = {}
        self.busy_s = 0.0  # seconds spent in generate: how busy this actor's GPU was
        gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        self.where = f"ray:{node_address()}" + (f"/gpu{','.join(gpus)}" if gpus else "/cpu")

    def _model(self, model_id: str | None):
        if model_id not in self._made:
            self._made[model_id] = self.models.model(model_id)
        return self._made[model_id]

    def facts(self, model_id: str | None) -> ModelFacts | None:
        model = self._model(model_id)
        if model is None:
            return None
        return ModelFacts(model.model_id, model.is_distilled(), hasattr(model, "notes_for"),
                          int(getattr(model, "max_in_flight", 1) or 1), self.where)

    def load(self, model_id: str | None) -> bool:
        return self._model(model_id).load()

    def info(self, model_id: str | None) -> ModelInfo:
        return self._model(model_id).info()

    def decoder_for(self, model_id: str | None, requested: str | None, quality: str) -> str:
        decoder_for = getattr(self._model(model_id), "decoder_for", None)
        return decoder_for(requested, quality) if decoder_for is not None else "full"

    def generation_size(self, model_id: str | None, width: int, height: int) -> tuple[int, int]:
        return self._model(model_id).generation_size(width, height)

    def notes_for(self, model_id: str | None, request: ImageRequest) -> tuple[str, ...]:
        return tuple(self._model(model_id).notes_for(request))

    def generate(self, model_id: str | None, requests: list[ImageRequest]) -> list[GeneratedImage]:
        started = time.monotonic()
        try:
            return self._model(model_id).generate(requests)  # no step previews: nobody watches a batch's
        finally:
            self.busy_s += time.monotonic() - started

    def _video(self, model_id: str | None):
        if model_id not in self._videos:  # (model, why not): made once in this actor
            self._videos[model_id] = self.models.video_model(model_id)
        return self._videos[model_id]

    def video_facts(self, model_id: str | None) -> VideoFacts:
        model, why_not = self._video(model_id)
        if model is None:
            return VideoFacts(reason=why_not or NO_VIDEO_MODEL_REASON)
        return VideoFacts(model.model_id, getattr(model, "default_steps", None), getattr(model, "default_guidance", None))

    def clip_load(self, model_id: str | None) -> bool:
        return self._video(model_id)[0].load()

    def clip_info(self, model_id: str | None) -> ModelInfo:
        return self._video(model_id)[0].info()

    def frame_rules(self, model_id: str | None) -> FrameRules:
        return self._video(model_id)[0].frame_rules()

    def clip_batch_size(self, model_id: str | None, request: ClipRequest) -> int:
        """How many clips like ``request`` this actor's video model makes in one call (1 when it cannot batch)."""
        size = getattr(self._video(model_id)[0], "clip_batch_size", None)
        return 1 if size is None else int(size(request))

    def generate_clips(self, model_id: str | None, requests: list[ClipRequest]) -> list[ClipAnswer]:
        """Clips that share one call (one :func:`~pipeline.images.clip_batches.batch_key`), made into folders
        of this actor's and sent back as bytes, one answer per request (the folders are removed)."""
        model = self._video(model_id)[0]
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="scene2video-clip-") as tmp:
            folders = [Path(tmp) / f"clip-{i}" for i in range(len(requests))]
            try:  # no step previews: they would cross the cluster for nothing
                clips = (model.generate_clips(requests, folders) if len(requests) > 1
                         else [model.generate_clip(requests[0], folders[0])])
            except Exception as exc:  # noqa: BLE001  (a backend that raises: the scene is a still with the reason)
                clips = [GeneratedClip(r.scene_index, None, f"generation failed: {public_message(exc)}")
                         for r in requests]
            finally:
                self.busy_s += time.monotonic() - started
            return [_answer(clip) for clip in clips]

    def stats(self) -> tuple[str, float]:
        """Where it runs, and the seconds it has spent making images and clips."""
        return self.where, self.busy_s

    def pid(self) -> int:
        return os.getpid()


def _answer(clip: GeneratedClip) -> ClipAnswer:
    """A clip made in an actor's folder, as it goes back to the task: its footage packed, or why there is none."""
    if clip.folder is None or not Footage.is_footage(clip.folder):
        return ClipAnswer(replace(clip, folder=None, reason=clip.reason or "the video model's clip was left unfinished"))
    return ClipAnswer(clip, pack_footage(clip.folder))


@ray.remote(num_cpus=0)
class StageBoard:
    """The stage each storyboard in flight has reached (its render's Progress stage), for the driver's bar."""

    def __init__(self) -> None:
        self.stages: dict[str, str] = {}

    def set(self, item_id: str, stage: str) -> None:
        self.stages[item_id] = stage

    def take(self) -> dict[str, str]:
        stages, self.stages = self.stages, {}
        return stages


class _OnActor:
    """Calls to one of an actor's models, named by the storyboard's ``requested`` id. A dead actor raises
    ActorLost (the render then fails, and ``lost`` says why, so the driver retries the storyboard)."""

    def __init__(self, actor, requested: str | None) -> None:
        self.actor = actor
        self.requested = requested
        self.lost = ""

    def _call(self, method: str, *args):
        try:
            return ray.get(getattr(self.actor, method).remote(self.requested, *args))
        except RayActorError as exc:
            self.lost = f"the GPU actor was lost ({type(exc).__name__})"
            raise ActorLost(self.lost) from None
        except RayTaskError as exc:  # the model itself raised: the same error as in a local render
            raise (exc.cause if isinstance(exc.cause, Exception) else RuntimeError(str(exc).splitlines()[0])) from None


class ActorModel(_OnActor):
    """The ImageModel a render task uses: every call goes to its actor."""

    def __init__(self, actor, requested: str | None, facts: ModelFacts) -> None:
        super().__init__(actor, requested)
        self.model_id = facts.model_id
        self.facts = facts
        self.max_in_flight = facts.max_in_flight
        if facts.has_notes:
            self.notes_for = lambda request: self._call("notes_for", request)

    def load(self) -> bool:
        return self._call("load")

    def info(self) -> ModelInfo:
        return self._call("info")

    def is_distilled(self) -> bool:
        return self.facts.distilled

    def decoder_for(self, requested: str | None, quality: str) -> str:
        return self._call("decoder_for", requested, quality)

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return self._call("generation_size", width, height)

    def generate(self, requests, on_step=None, should_stop=None) -> list[GeneratedImage]:
        if should_stop is not None and should_stop():
            return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
        return self._call("generate", list(requests))


class ActorVideoModel(_OnActor):
    """The VideoModel a render task uses: the clip is made on its actor, and its frames, sent back as
    bytes, become a footage folder in this task's render folder (no shared disk; no step previews)."""

    def __init__(self, actor, requested: str | None, facts: VideoFacts) -> None:
        super().__init__(actor, requested)
        self.model_id = facts.model_id
        if facts.default_steps is not None:
            self.default_steps = facts.default_steps
        if facts.default_guidance is not None:
            self.default_guidance = facts.default_guidance
        self._batch_sizes: dict[tuple, int] = {}

    def load(self) -> bool:
        return self._call("clip_load")

    def info(self) -> ModelInfo:
        return self._call("clip_info")

    def frame_rules(self) -> FrameRules:
        return self._call("frame_rules")

    def clip_batch_size(self, request: ClipRequest) -> int:
        # Asked once per shape of clip: each ask waits behind whatever the actor is making for other tasks.
        key = batch_key(request)
        if key not in self._batch_sizes:
            self._batch_sizes[key] = self._call("clip_batch_size", request)
        return self._batch_sizes[key]

    def generate_clip(self, request: ClipRequest, folder: Path, on_step=None, should_stop=None) -> GeneratedClip:
        return self.generate_clips([request], [folder], on_step, should_stop)[0]

    def generate_clips(self, requests: list[ClipRequest], folders: list[Path], on_step=None,
                       should_stop=None) -> list[GeneratedClip]:
        """The clips made in one call of the actor's model (the actor batches them as a local render would)."""
        if should_stop is not None and should_stop():
            return [GeneratedClip(request.scene_index, None, "stopped") for request in requests]
        answers: list[ClipAnswer] = self._call("generate_clips", list(requests))
        return [answer.clip if answer.footage is None
                else replace(answer.clip, folder=unpack_footage(answer.footage, folder).folder)
                for answer, folder in zip(answers, folders)]


@ray.remote(max_retries=0)  # the driver retries at the storyboard level
def render_task(job: Job, files: tuple[PackedFile, ...], actor, options: ModelSource, board=None) -> Outcome:
    """One storyboard, start to MP4, on whichever CPU worker Ray picked; the results as bytes.
    ``options``: the batch's ModelSource, for the renderer's settings (batch size, ControlNet, clip size)."""
    wants_clips = job.storyboard.wants_video_model
    try:
        facts = ray.get(actor.facts.remote(job.storyboard.model))
        video_facts = ray.get(actor.video_facts.remote(job.storyboard.video_model)) if wants_clips else VideoFacts()
    except RayActorError as exc:
        return Outcome(False, f"The GPU actor was lost ({type(exc).__name__}).", retry=True)
    except RayTaskError as exc:  # e.g. a model this cluster may not use: said as a local batch says it
        cause = exc.cause
        reason = str(cause) if isinstance(cause, StoryboardError) else f"The render failed: {public_message(cause or exc)}"
        return Outcome(False, reason, where="ray")
    where = f"{facts.where if facts else 'ray'}, encoded on {node_address()}"
    with tempfile.TemporaryDirectory(prefix="scene2video-ray-") as tmp:
        storyboard = unpack_files(job.storyboard, files, Path(tmp) / "files")
        model = ActorModel(actor, job.storyboard.model, facts) if facts is not None else None
        video = ActorVideoModel(actor, job.storyboard.video_model, video_facts) if video_facts.model_id else None
        renderer = Renderer(Path(tmp) / "renders", model=model, batch_size=options.batch_size,
                            controlnet=options.controlnet, video_model=video, clip_size=options.clip_size,
                            no_video_model=video_facts.reason or NO_VIDEO_MODEL_REASON)
        on_stage = (lambda stage: board.set.remote(job.id, stage)) if board is not None else None
        outcome = render_storyboard(renderer, storyboard, where, on_stage)
        lost = next((m.lost for m in (model, video) if m is not None and m.lost), "")
        if lost:
            return replace(outcome, ok=False, reason=lost[0].upper() + lost[1:] + ".", retry=True)
        if outcome.ok:
            outcome = replace(outcome, video_bytes=outcome.video.read_bytes(),
                              report_bytes=outcome.report.read_bytes(), video=None, report=None)
        return outcome


@dataclass
class _Flight:
    job: Job
    actor: int
    attempt: int


class _Flights:
    """The driver's book: tasks in flight, each actor's load, the actors still there, the retries due."""

    def __init__(self, actors: list, in_flight: int) -> None:
        self.actors = actors
        self.in_flight = in_flight
        self.refs: dict = {}  # task ref -> _Flight
        self.load = [0] * len(actors)
        self.alive = set(range(len(actors)))
        self.files: dict[str, tuple[PackedFile, ...]] = {}  # read once per storyboard, kept for a retry
        self.retry: deque = deque()  # (job, attempt, the actor that lost it)

    def next_job(self, queue: deque) -> tuple[Job, int, int] | None:
        """The next (job, attempt, actor) to start where an actor has room: retries first, on another
        actor than the one that lost them where one has room; else the least busy actor."""
        index = min(self.alive, key=lambda i: self.load[i], default=None)
        if index is None or self.load[index] >= self.in_flight or not (self.retry or queue):
            return None
        if not self.retry:
            return queue.popleft(), 1, index
        job, attempt, lost_on = self.retry.popleft()
        others = [i for i in self.alive if i != lost_on and self.load[i] < self.in_flight]
        return job, attempt, min(others, key=lambda i: self.load[i]) if others else index

    def started(self, ref, flight: _Flight) -> None:
        self.refs[ref] = flight
        self.load[flight.actor] += 1

    def ended(self, ref) -> _Flight:
        flight = self.refs.pop(ref)
        self.load[flight.actor] -= 1
        return flight

    def give_up(self, queue: deque, finished: Finished) -> None:
        """No actor is left: every storyboard not yet in flight fails with that reason."""
        for job, attempt, _ in self.retry:
            finished(job, Outcome(False, "No GPU actor is left in the cluster.", where="ray"), attempt - 1)
        for job in queue:
            finished(job, Outcome(False, "No GPU actor is left in the cluster.", where="ray"), 0)
        self.retry.clear()
        queue.clear()


class RayBatch:
    """Runs a batch on Ray: ``address`` "local" starts a cluster on this machine (loopback only), any
    other joins that cluster; ``actors``: GPU actors (default one per GPU; at least one)."""

    def __init__(self, models: ModelSource, address: str = "local", actors: int | None = None, in_flight: int = 2,
                 encode_cpus: float = 1.0) -> None:
        self.models = models
        self.address = address
        self.actors_wanted = actors
        self.in_flight = max(1, in_flight)
        self.encode_cpus = encode_cpus
        self.actor_stats: list[tuple[str, float]] = []  # after run: each actor's place and busy seconds
        self._board = None

    def run(self, jobs: list[Job], finished: Finished, stage: Stage | None = None) -> None:
        """Render every job, calling ``finished`` (in this thread) as each ends."""
        started_here = self._connect()
        actors: list = []
        try:
            actors = self._start_actors()
            self._drive(deque(jobs), actors, finished, stage)
        finally:
            self.actor_stats = [self._stats(actor) for actor in actors]
            for actor in [*actors, *([self._board] if self._board is not None else [])]:
                ray.kill(actor, no_restart=True)
            if started_here:
                ray.shutdown()

    def _connect(self) -> bool:
        """Join (or start) the cluster unless this process already did; True when this call did."""
        if ray.is_initialized():
            return False
        if self.address == "local":  # loopback only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set before import
            ray.init(include_dashboard=False, log_to_driver=False)
            return True
        _check_reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001  (Ray raises several kinds for an unreachable cluster)
            raise ConnectionError(f"cannot join the Ray cluster at {self.address}: "
                                  f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
        return True

    def _start_actors(self) -> list:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.actors_wanted or max(1, gpus)
        per_actor = 1 if gpus >= count else 0  # no GPUs: the actors' models run on the CPU
        if not gpus:
            log.warning("The Ray cluster has no GPUs: the image model runs on the CPU.")
        return [ImageActor.options(num_gpus=per_actor).remote(self.models) for _ in range(count)]

    def _drive(self, queue: deque, actors: list, finished: Finished, stage: Stage | None) -> None:
        self._board = StageBoard.remote() if stage is not None else None
        flights = _Flights(actors, self.in_flight)
        try:
            while queue or flights.retry or flights.refs:
                if not flights.alive:
                    flights.give_up(queue, finished)
                while (job := flights.next_job(queue)) is not None:
                    self._submit(flights, job, finished, stage)
                if flights.refs:
                    done, _ = ray.wait(list(flights.refs), num_returns=1, timeout=_WAIT_S)
                    self._show_stages(flights.refs, stage)
                    for ref in done:
                        self._collect(flights, ref, finished)
        except BaseException:  # Ctrl-C, or the driver broke: no task of this batch keeps running on the cluster
            for ref in flights.refs:
                ray.cancel(ref, force=True)
            raise

    def _submit(self, flights: "_Flights", job: tuple[Job, int, int], finished: Finished, stage: Stage | None) -> None:
        """Start one storyboard's render task on actor ``index`` (its files read here, on the driver)."""
        job, attempt, index = job
        try:
            packed = flights.files.get(job.id) or flights.files.setdefault(job.id, pack_files(job.storyboard))
        except OSError as exc:
            finished(job, Outcome(False, f"A file the storyboard names cannot be read now: "
                                         f"{exc.strerror or type(exc).__name__}.", where="ray"), attempt - 1)
            return
        ref = render_task.options(num_cpus=self.encode_cpus).remote(
            job, packed, flights.actors[index], self.models, self._board)
        flights.started(ref, _Flight(job, index, attempt))
        if stage is not None:
            stage(job, f"on actor {index + 1}")

    def _collect(self, flights: "_Flights", ref, finished: Finished) -> None:
        """A finished task: its manifest row, or (lost to the machinery, first time) a second attempt."""
        flight = flights.ended(ref)
        outcome = self._outcome(ref)
        if outcome.retry:
            if not self._still_there(flights.actors[flight.actor]):
                flights.alive.discard(flight.actor)
            if flight.attempt < ATTEMPTS:
                log.warning("%s: %s; trying it once more", flight.job.id, outcome.reason)
                flights.retry.append((flight.job, flight.attempt + 1, flight.actor))
                return
            outcome = replace(outcome, reason=f"{outcome.reason} (tried {flight.attempt} times)")
        flights.files.pop(flight.job.id, None)
        finished(flight.job, outcome, flight.attempt)

    def _show_stages(self, flights: dict, stage: Stage | None) -> None:
        """Hand the stages the render tasks reported since the last look to ``stage`` (for the bar)."""
        if stage is None or self._board is None:
            return
        try:
            stages = ray.get(self._board.take.remote(), timeout=5)
        except (RayError, GetTimeoutError):
            return  # the bar misses a stage; the batch goes on
        in_flight = {flight.job.id: flight for flight in flights.values()}
        for item_id, name in stages.items():
            if item_id in in_flight:
                stage(in_flight[item_id].job, f"{name} (actor {in_flight[item_id].actor + 1})")

    @staticmethod
    def _outcome(ref) -> Outcome:
        try:
            return ray.get(ref)
        except RayTaskError as exc:  # a bug in the task: no second attempt would go better
            return Outcome(False, f"The render failed: {public_message(exc.cause or exc)}", where="ray")
        except RayError as exc:  # the task's worker died (or its result was lost): the machinery, not the storyboard
            return Outcome(False, f"The Ray worker was lost ({type(exc).__name__}).", where="ray", retry=True)

    @staticmethod
    def _stats(actor) -> tuple[str, float]:
        try:
            return ray.get(actor.stats.remote(), timeout=30)
        except (RayError, GetTimeoutError):
            return "lost", 0.0

    @staticmethod
    def _still_there(actor) -> bool:
        """Whether a lost actor came back (Ray restarts it once, and it loads its model again)."""
        try:
            ray.get(actor.pid.remote(), timeout=_ACTOR_BACK_S)
            return True
        except (RayActorError, GetTimeoutError):
            return False

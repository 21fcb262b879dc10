"""python -m pipeline batch --ray on a Ray cluster on this machine: two simulated GPUs, loopback only.

One cluster for the module (``ray.init(num_cpus=2, num_gpus=2)``: the GPUs are Ray resources, the
models stand-ins or the tiny diffusers model on the CPU). While it runs, every process of the
cluster is watched: none may listen on or talk to an address other than loopback. It is shut down
with ``ray.shutdown()`` (never ``ray stop``, which would kill every Ray process on the machine), and
the test checks that none of its processes is left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from batch_cases import board, last_rows, rows, scene_frames, write_animated, write_batch
from media import probe, read_frames
from pipeline.batch.command import run_batch_command
from pipeline.cli import build_parser
from sound import probe_audio_stream
from stand_in_model import FixedTimeModels
from stand_in_video_model import SlidingClips

TESTS = Path(__file__).resolve().parent
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a single-node cluster binds to 127.0.0.1 only
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           # the workers import the stand-in models (tests/) by name, like the driver
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if getattr(address, "ipv4_mapped", None) is not None:  # Ray's GCS talks on ::ffff:127.0.0.1
        address = address.ipv4_mapped
    return address.is_loopback


class LoopbackWatch(threading.Thread):
    """Samples the sockets of every process under this one; remembers any non-loopback address."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="loopback-watch")
        self.outside: set[tuple[str, str, str]] = set()
        self.samples = 0
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.sample()

    def sample(self) -> None:
        for process in psutil.Process().children(recursive=True):
            try:
                name = process.name()
                connections = process.net_connections(kind="inet")
            except psutil.Error:
                continue
            self.seen.add(name)
            for connection in connections:
                for end in (connection.laddr, connection.raddr):
                    if end and not _is_loopback(end.ip):
                        self.outside.add((name, connection.status, end.ip))
        self.samples += 1


@pytest.fixture(scope="module")
def cluster():
    saved = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(RAY_ENV)
    import ray  # after the environment: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    watch = LoopbackWatch()
    watch.start()
    try:
        yield watch
    finally:
        watch.done.set()
        watch.join()
        processes = psutil.Process().children(recursive=True)
        ray.shutdown()
        _, left = psutil.wait_procs(processes, timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        assert not left, f"Ray processes left running: {[p.pid for p in left]}"


def batch(src: Path, out: Path, *flags: str, models=FixedTimeModels(0.05)) -> int:
    """The batch command in this process (``models=None``: the settings' model, as on the command line)."""
    args = build_parser().parse_args(["batch", str(src), "--out", str(out), "--quiet", *flags])
    return run_batch_command(args, models=models)


def test_on_ray_two_actors_give_the_rows_and_frames_of_a_local_batch(cluster, tmp_path):
    src = write_batch(tmp_path / "src", good=3, with_files=True)
    assert batch(src, tmp_path / "local") == 1
    assert batch(src, tmp_path / "ray", "--ray") == 1
    local, on_ray = last_rows(tmp_path / "local"), last_rows(tmp_path / "ray")
    assert {i: (r["status"], r["reason"], r["attempts"]) for i, r in on_ray.items()} == \
        {i: (r["status"], r["reason"], r["attempts"]) for i, r in local.items()}
    assert on_ray["broken"]["reason"] == "The render failed: RuntimeError: the stand-in model broke on purpose"
    ok = [i for i, r in on_ray.items() if r["status"] == "ok"]
    assert sorted(ok) == ["good-1", "good-2", "good-3", "song"]
    # Both simulated GPUs made images; encoding ran as tasks on this (loopback) node.
    assert {on_ray[i]["where"].split(",")[0] for i in ok} == {"ray:127.0.0.1/gpu0", "ray:127.0.0.1/gpu1"}
    for name in ok:
        video = tmp_path / "ray" / on_ray[name]["output"]
        info = probe(video)
        assert (info.codec, info.width, info.height, info.frames) == ("h264", 854, 480, 8)
        same = [a.tobytes() == b.tobytes() for a, b in zip(read_frames(video, 854, 480),
                                                            read_frames(tmp_path / "local" / f"{name}.mp4", 854, 480))]
        assert same == [True] * 8, name  # the same frames, locally and on Ray
    assert probe_audio_stream(tmp_path / "ray" / "song.mp4") is not None  # the audio travelled with the task
    # --resume on Ray: the done ones are skipped, the failed ones tried again.
    assert batch(src, tmp_path / "ray", "--ray", "--resume") == 1
    assert {r["id"]: r["status"] for r in rows(tmp_path / "ray")[6:]} == {
        "good-1": "skipped", "good-2": "skipped", "good-3": "skipped", "song": "skipped",
        "invalid": "failed", "broken": "failed"}


def test_on_ray_the_actors_make_the_clips_and_the_frames_are_those_of_a_local_batch(cluster, tmp_path):
    src = write_animated(tmp_path / "src")
    for i in (2, 3):  # more animated storyboards than actors: each actor makes clips for several
        (src / f"moving-{i}.json").write_text((src / "moving.json").read_text().replace("waves", f"waves {i}"))

    def models(where):
        return SlidingClips(0.01, tmp_path / f"made-{where}", clip_size=(64, 64), fail="out of GPU memory",
                            fail_on="NO CLIP")

    assert batch(src, tmp_path / "local", models=models("local")) == 0
    on_ray = models("ray")
    assert batch(src, tmp_path / "ray", "--ray", models=on_ray) == 0
    got = last_rows(tmp_path / "ray")
    names = ["mixed", "moving", "moving-2", "moving-3", "still"]
    assert {i: r["status"] for i, r in got.items()} == dict.fromkeys(names, "ok")
    for name in names:
        assert scene_frames(tmp_path / "ray", name) == scene_frames(tmp_path / "local", name), name
        frames = [read_frames(tmp_path / d / f"{name}.mp4", 854, 480) for d in ("local", "ray")]
        assert len(frames[0]) == 8 and [a.tobytes() == b.tobytes() for a, b in zip(*frames)] == [True] * 8, name
    assert scene_frames(tmp_path / "ray", "moving") == [("clip", "stand-in-video", "")] * 2
    assert scene_frames(tmp_path / "ray", "mixed")[1] == ("still", "", "out of GPU memory")  # the actor's reason
    # The video model was made in the actors only, once in each (never on the driver or in a render task),
    # though each actor made the clips of more than one storyboard.
    made_by = on_ray.made_by()
    animated_on = [got[name]["where"].split(",")[0] for name in names if name != "still"]
    assert sorted(set(animated_on)) == ["ray:127.0.0.1/gpu0", "ray:127.0.0.1/gpu1"]
    assert len(made_by) == len(set(made_by)) == 2 and os.getpid() not in made_by


def _busy(title: str) -> list[psutil.Process]:
    """The cluster's processes whose title starts with ``title`` (Ray titles a busy worker by its task,
    e.g. ``ray::ImageActor.generate`` while an actor makes images, ``ray::render_task`` for a render)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(title):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _kill_after_the_first_row(out: Path, title: str, killed: list[int]) -> threading.Thread:
    """A thread that, once the manifest has a row, kills (SIGKILL) one process busy with ``title``."""
    def kill() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if (out / "manifest.jsonl").exists() and rows(out):
                busy = _busy(title)
                if busy:
                    os.kill(busy[0].pid, signal.SIGKILL)
                    killed.append(busy[0].pid)
            time.sleep(0.02)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_on_ray_an_actor_makes_alike_clips_in_one_call_as_a_local_batch_does(cluster, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    three = board("tides", 21, animate=True, transition="cut")
    three["scenes"].append({"prompt": "tides, third", "duration": 1, "seed": 23})
    (src / "three.json").write_text(json.dumps(three))

    def models(where):
        return SlidingClips(0.01, tmp_path / f"made-{where}", clip_size=(64, 64), clip_batch=2)

    local = models("local")
    assert batch(src, tmp_path / "local", models=local) == 0
    on_ray = models("ray")
    assert batch(src, tmp_path / "ray", "--ray", "--actors", "1", models=on_ray) == 0
    # The first clip alone (it streams first), then clips 2 and 3 in one call: in the actor, as locally.
    assert [ids for _, ids in local.batched_calls()] == [ids for _, ids in on_ray.batched_calls()] == ["clip-2+clip-3"]
    assert on_ray.batched_calls()[0][0] in on_ray.made_by() and os.getpid() not in on_ray.made_by()
    assert scene_frames(tmp_path / "ray", "three") == [("clip", "stand-in-video", "")] * 3
    frames = [read_frames(tmp_path / d / "three.mp4", 854, 480) for d in ("local", "ray")]
    assert len(frames[0]) == 12 and [a.tobytes() == b.tobytes() for a, b in zip(*frames)] == [True] * 12


@pytest.mark.parametrize("victim", ["ray::ImageActor.generate", "ray::render_task"])
def test_an_actor_or_worker_killed_mid_batch_costs_only_a_retry(cluster, tmp_path, victim):
    src = write_batch(tmp_path / "src", good=5)
    for name in ("invalid.json", "broken.json"):
        (src / name).unlink()
    out, killed = tmp_path / "out", []
    killer = _kill_after_the_first_row(out, victim, killed)
    code = batch(src, out, "--ray", models=FixedTimeModels(0.25))
    killer.join()
    assert killed, f"no {victim} process was killed"
    got = last_rows(out)
    assert code == 0 and sorted(got) == [f"good-{i}" for i in range(1, 6)]
    assert all(row["status"] == "ok" for row in got.values()), got
    assert sorted({row["attempts"] for row in got.values()}) == [1, 2]  # the lost ones were retried, once
    assert len(rows(out)) == 5  # one row per storyboard: nothing lost, nothing twice


@pytest.mark.slow  # the actor imports torch and diffusers (~30 s on the shared machine)
def test_on_ray_the_tiny_diffusers_models_give_the_frames_of_a_local_batch(cluster, tmp_path, tiny_model_dir,
                                                                           tiny_ltx_dir):
    src = tmp_path / "src"
    src.mkdir()
    tiny = {**board("a red fox", 3), "steps": 1}
    tiny["scenes"][1]["animate"] = True  # scene 2 is a clip from the tiny LTX-Video, made in the actor
    (src / "tiny.json").write_text(json.dumps(tiny))
    flags = ("--model", str(tiny_model_dir), "--video-model", str(tiny_ltx_dir), "--clip-size", "64x64",
             "--device", "cpu", "--cache-dir", str(tmp_path / "cache"))
    assert batch(src, tmp_path / "local", *flags, models=None) == 0
    assert batch(src, tmp_path / "ray", "--ray", "--actors", "1", *flags, models=None) == 0
    local, on_ray = last_rows(tmp_path / "local")["tiny"], last_rows(tmp_path / "ray")["tiny"]
    assert on_ray["where"].startswith("ray:127.0.0.1/gpu")
    scenes = json.loads((tmp_path / "ray" / on_ray["report"]).read_text())["scenes"]
    assert [(s["source"], s["frames"]) for s in scenes] == [("ai", "still"), ("ai", "clip")]
    frames = [read_frames(tmp_path / d / "tiny.mp4", 854, 480) for d in ("local", "ray")]
    assert len(frames[0]) == 8 and all(a.tobytes() == b.tobytes() for a, b in zip(*frames))
    assert local["status"] == "ok"


def test_the_cluster_listened_and_talked_on_loopback_only(cluster):
    cluster.sample()
    assert cluster.samples > 3 and {"raylet", "gcs_server"} <= cluster.seen, cluster.seen
    assert not cluster.outside, cluster.outside

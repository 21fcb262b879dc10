"""python -m pipeline batch on this machine: manifest rows, exit codes, videos, --resume, overlap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from batch_cases import FRAMES, board, last_rows, rows, scene_frames, write_animated, write_batch
from media import probe, read_frames
from pipeline.batch.command import run_batch_command
from pipeline.batch.files import pack_files, unpack_files
from pipeline.batch.footage_bytes import pack_footage, unpack_footage
from pipeline.batch.local import LocalBatch
from pipeline.batch.render_one import Job
from pipeline.batch.sources import SourceError, read_source
from pipeline.cli import build_parser
from pipeline.contract.footage import FootageWriter
from pipeline.contract.storyboard import parse_storyboard
from sound import probe_audio_stream
from stand_in_model import FixedTimeModel, FixedTimeModels
from stand_in_video_model import SlidingClips

ROOT = Path(__file__).resolve().parent.parent


def batch(src: Path, out: Path, *flags: str, models=None) -> int:
    args = build_parser().parse_args(["batch", str(src), "--out", str(out), "--quiet", *flags])
    return run_batch_command(args, models=models or FixedTimeModels(0.02))


class CountingModels(FixedTimeModels):
    """Counts the models it makes: a batch makes (and loads) its model once."""

    made = 0

    def model(self, model_id):
        CountingModels.made += 1
        return super().model(model_id)


def test_a_bad_storyboard_and_a_failing_one_do_not_stop_the_others_and_resume_skips_the_done(tmp_path):
    src, out = write_batch(tmp_path / "src", good=2, with_files=True), tmp_path / "out"
    CountingModels.made = 0
    assert batch(src, out, models=CountingModels(0.02)) == 1  # some failed
    assert CountingModels.made == 1  # one model for the whole batch
    got = last_rows(out)
    assert sorted(got) == ["broken", "good-1", "good-2", "invalid", "song"]
    assert {i: r["status"] for i, r in got.items()} == {"broken": "failed", "good-1": "ok", "good-2": "ok",
                                                      "invalid": "failed", "song": "ok"}
    assert got["invalid"]["reason"] == "Scene 2: duration must be between 0.5 and 60 seconds (got -1)."
    assert got["invalid"]["attempts"] == 0 and got["invalid"]["output"] == ""
    assert got["broken"]["reason"] == "The render failed: RuntimeError: the stand-in model broke on purpose"
    assert got["broken"]["attempts"] == 1 and not (out / "broken.mp4").exists()
    for name in ("good-1", "good-2", "song"):
        row = got[name]
        assert (row["output"], row["report"], row["attempts"]) == (f"{name}.mp4", f"{name}.report.json", 1)
        assert row["where"].startswith("local:") and row["images_s"] > 0 and row["encode_s"] > 0
        info = probe(out / row["output"])
        assert (info.codec, info.width, info.height, info.frames) == ("h264", 854, 480, FRAMES)
        report = json.loads((out / row["report"]).read_text())
        assert [s["source"] for s in report["scenes"]] == ["ai", "ai"]
    assert probe_audio_stream(out / "song.mp4") is not None  # the storyboard's audio file was used
    assert json.loads((out / "song.report.json").read_text())["scenes"][0]["made_from"] == ["text", "reference image"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.jsonl", *(f"{n}{s}" for n in ("good-1", "good-2", "song") for s in (".mp4", ".report.json"))])

    # --resume: the done ones are skipped (videos untouched), the failed ones are tried again.
    stamps = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in ("good-1", "good-2", "song")}
    (out / "song.mp4").unlink()  # its video is gone: it is made again
    assert batch(src, out, "--resume") == 1
    again = rows(out)[5:]
    assert {r["id"]: r["status"] for r in again} == {"good-1": "skipped", "good-2": "skipped", "song": "ok",
                                                    "invalid": "failed", "broken": "failed"}
    assert all((out / f"{n}.mp4").stat().st_mtime_ns == stamps[n] for n in ("good-1", "good-2"))

    # Once the bad ones are fixed (here: removed), a resumed run exits 0.
    (src / "invalid.json").unlink()
    (src / "broken.json").unlink()
    assert batch(src, out, "--resume") == 0
    assert [r["status"] for r in rows(out)[10:]] == ["skipped"] * 3


class OneModel(FixedTimeModels):
    """Hands out one shared FixedTimeModel, so the test can read its calls."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.shared = FixedTimeModel(seconds)

    def model(self, model_id):
        return self.shared


def test_the_next_storyboards_images_are_made_while_the_last_one_encodes(tmp_path):
    # The first storyboard is long and the next two short, so they do not all finish at about the same
    # moment: with identical ones, the last could start a few ms after both before it had finished (a
    # renderer's start-up under load), though it waited only for the first free slot.
    seconds = {0: 6, 1: 1, 2: 1}
    jobs = [Job(f"sb-{i}", parse_storyboard({**board(f"story {i}", i), "fps": 12,
                                             "scenes": [{"prompt": f"story {i}, scene {k}", "duration": seconds[i]}
                                                        for k in range(2)]}))
            for i in range(3)]
    finished_at: dict[str, float] = {}
    models = OneModel(0.02)  # images come at once: the margin is the whole encode of the last one
    LocalBatch(models, tmp_path / "work").run(jobs, lambda job, outcome, attempts: finished_at.setdefault(
        job.id, time.monotonic()) if outcome.ok else pytest.fail(outcome.reason))
    assert sorted(finished_at) == ["sb-0", "sb-1", "sb-2"]
    started = {}
    for prompt, at in models.shared.calls:
        started.setdefault(prompt.split(",")[0].replace("story ", "sb-"), at)
    for k in (1, 2):
        # The model was making storyboard k's images while an earlier one was still being encoded. (Two
        # are in flight at most, and the two before k may finish in either order: k starts after one of them.)
        assert started[f"sb-{k}"] < max(finished_at[f"sb-{j}"] for j in range(k))


def test_a_batch_makes_clips_with_one_video_model_for_every_storyboard(tmp_path):
    src, out = write_animated(tmp_path / "src"), tmp_path / "out"
    models = SlidingClips(0.01, tmp_path / "made", clip_size=(64, 64), fail="out of GPU memory", fail_on="NO CLIP")
    assert batch(src, out, models=models) == 0
    assert {i: r["status"] for i, r in last_rows(out).items()} == {"mixed": "ok", "moving": "ok", "still": "ok"}
    model = "stand-in-video"
    assert scene_frames(out, "moving") == [("clip", model, ""), ("clip", model, "")]
    # A clip the model could not make is a still with the model's reason; the storyboard is still ok.
    assert scene_frames(out, "mixed") == [("clip", model, ""), ("still", "", "out of GPU memory")]
    assert scene_frames(out, "still") == [("still", "", ""), ("still", "", "")]
    # One video model for the batch, made once, and every clip made by it at the batch's clip size.
    assert len(models.made) == 1 and len(models.made_by()) == 1
    assert sorted(r.prompt for r in models.made[0].calls) == ["NO CLIP here", "a harbour, first", "waves roll, first",
                                                              "waves roll, second"]
    assert {(r.width, r.height) for r in models.made[0].calls} == {(64, 64)}
    frames = read_frames(out / "moving.mp4", 854, 480)
    assert len(frames) == FRAMES and frames[1].tobytes() != frames[2].tobytes()  # the clip moves within a scene


def test_a_clips_footage_travels_as_bytes_frame_for_frame(tmp_path):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(5)]
    writer = FootageWriter(tmp_path / "made", fps=24, model="m")
    writer.write_all(frames)
    made = writer.finish()
    footage = unpack_footage(pack_footage(tmp_path / "made"), tmp_path / "copy")
    assert footage.info == made.info and footage.info.model == "m"
    assert all(np.array_equal(footage.frame(i), frames[i]) for i in range(5))


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "is neither a folder of storyboards nor a JSONL file"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "holds no storyboards"),
    (lambda tmp: (tmp / "b.jsonl").write_bytes(b"\xff\xfe{") and tmp / "b.jsonl", "is not UTF-8 text"),
])
def test_an_unusable_src_exits_2_with_one_line(tmp_path, make, message):
    result = subprocess.run([sys.executable, "-m", "pipeline", "batch", str(make(tmp_path)), "--out",
                             str(tmp_path / "out"), "--no-ai"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1


def test_the_command_line_renders_a_jsonl_batch_with_a_bar_and_a_summary(tmp_path):
    lines = [json.dumps(board("A lighthouse at dusk!", 1)), "", json.dumps(board("waves", 2)), "{not json"]
    (tmp_path / "boards.jsonl").write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "pipeline", "batch", str(tmp_path / "boards.jsonl"), "--out",
                             str(tmp_path / "out"), "--no-ai"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 1, result.stderr
    got = last_rows(tmp_path / "out")
    assert {i: r["status"] for i, r in got.items()} == {"0001-a-lighthouse-at-dusk-first": "ok",
                                                      "0003-waves-first": "ok", "0004": "failed"}
    assert got["0004"]["source"] == "boards.jsonl line 4"
    assert "3/3" in result.stderr and "100%" in result.stderr  # the bar over storyboards reached the end
    assert "3 storyboard(s)" in result.stdout and "2 ok, 1 failed, 0 skipped" in result.stdout
    assert probe(tmp_path / "out" / "0003-waves-first.mp4").frames == FRAMES


def test_a_storyboards_files_travel_as_bytes_and_work_without_the_originals(tmp_path):
    src = write_batch(tmp_path / "src", good=0, with_files=True)
    (item,) = [i for i in read_source(src) if i.id == "song"]
    packed = pack_files(item.storyboard)
    assert sorted(p.field for p in packed) == ["audio", "reference_image"]
    for path in (src / "media").iterdir():
        path.unlink()  # a worker on another machine has no such files
    storyboard = unpack_files(item.storyboard, packed, tmp_path / "worker")
    assert Path(storyboard.audio).read_bytes() == packed[[p.field for p in packed].index("audio")].data
    assert Path(storyboard.reference_image).parent.parent == tmp_path / "worker"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=80), min_size=1, max_size=6))
def test_any_jsonl_gives_one_item_per_line_with_safe_unique_ids(tmp_path, lines):
    path = tmp_path / "any.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        items = read_source(path)
    except SourceError as exc:  # only when there is no storyboard line at all
        assert "holds no storyboards" in str(exc)
        assert not any(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        return
    ids = [item.id for item in items]
    assert len(set(ids)) == len(ids)
    assert all("/" not in i and "\\" not in i and not i.startswith(".") and i for i in ids)
    assert all(len(item.error) <= 300 and "\n" not in item.error for item in items if item.storyboard is None)


def test_without_ray_installed_ray_batches_say_so_in_one_line(tmp_path):
    src = write_batch(tmp_path / "src", good=1)
    code = ("import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
            "from pipeline.cli import main\n"
            f"sys.exit(main(['batch', {str(src)!r}, '--out', {str(tmp_path / 'out')!r}, '--ray']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: --ray needs Ray, which is not installed: pip install 'ray==2.60.0'.\n"


def test_a_local_batch_never_imports_ray(tmp_path):
    src = write_batch(tmp_path / "src", good=1)
    code = ("import sys\nfrom pipeline.cli import main\n"
            f"code = main(['batch', {str(src)!r}, '--out', {str(tmp_path / 'out')!r}, '--no-ai', '--quiet'])\n"
            "print(code, 'ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.splitlines()[-1] == "1 False", result.stderr  # invalid.json and broken.json fail


def test_a_ray_cluster_that_cannot_be_reached_exits_2_at_once(tmp_path):
    src = write_batch(tmp_path / "src", good=1)
    result = subprocess.run([sys.executable, "-m", "pipeline", "batch", str(src), "--out", str(tmp_path / "out"),
                             "--ray", "127.0.0.1:1", "--no-ai"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the Ray cluster at 127.0.0.1:1: ")


@pytest.mark.slow  # torch, the tiny diffusers model and the tiny LTX-Video on the CPU (~30 s on the shared machine)
def test_the_settings_video_model_makes_the_clips_of_a_batch(tmp_path, tiny_model_dir, tiny_ltx_dir):
    src = write_animated(tmp_path / "src")
    (src / "still.json").unlink()
    (src / "mixed.json").unlink()
    flags = ("--model", str(tiny_model_dir), "--video-model", str(tiny_ltx_dir), "--clip-size", "64x64",
             "--device", "cpu", "--cache-dir", str(tmp_path / "cache"))
    args = build_parser().parse_args(["batch", str(src), "--out", str(tmp_path / "out"), "--quiet", *flags])
    assert run_batch_command(args) == 0  # the command line's own model source: the settings
    assert [f for f, _, _ in scene_frames(tmp_path / "out", "moving")] == ["clip", "clip"]
    assert {m for _, m, _ in scene_frames(tmp_path / "out", "moving")} == {str(tiny_ltx_dir)}
    assert probe(tmp_path / "out" / "moving.mp4").frames == FRAMES


def test_a_restyle_storyboard_in_a_batch_takes_its_source_video_along(tmp_path):
    from source_clips import make_clip

    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "two shots.mp4", (1.0, 1.0))
    (src / "restyled.json").write_text(json.dumps({
        "source_video": "two shots.mp4", "quality": "draft", "fps": 12, "transition": "cut", "use_ai": False,
        "scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1},
                   {"prompt": "chalk", "source_start": 1, "source_end": 2}]}))
    (src / "two shots.mp4").rename(tmp_path / "two shots.mp4")  # the path is read next to the storyboard file
    assert batch(src, tmp_path / "bad") == 1 and "two shots.mp4" in last_rows(tmp_path / "bad")["restyled"]["reason"]
    (tmp_path / "two shots.mp4").rename(src / "two shots.mp4")
    assert batch(src, tmp_path / "out") == 0
    row = last_rows(tmp_path / "out")["restyled"]
    assert row["status"] == "ok", row
    info = probe(tmp_path / "out" / row["output"])
    assert info.frames == 24 and abs(info.duration - 2.0) < 0.1  # the source's two shots at 12 fps, with its sound
    assert probe_audio_stream(tmp_path / "out" / row["output"])

"""Storyboard folders for the batch tests: good ones, an invalid one, one whose rendering fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from sound import tone, write_wav

FPS = 4
FRAMES = 8  # two scenes of 1 s at 4 fps


def board(prompt: str, seed: int, **extra) -> dict:
    return {"scenes": [{"prompt": f"{prompt}, first", "duration": 1, "seed": seed},
                       {"prompt": f"{prompt}, second", "duration": 1, "seed": seed + 1}],
            "quality": "draft", "fps": FPS, "transition": "crossfade", "transition_duration": 0.5, **extra}


def write_batch(folder: Path, good: int = 2, with_files: bool = False) -> Path:
    """``good`` storyboards that render, ``invalid.json`` (a bad duration) and ``broken.json`` (its
    model raises); ``with_files`` adds ``song.json`` naming a WAV and a reference image beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        (folder / f"good-{i + 1}.json").write_text(json.dumps(board(f"a lighthouse {i}", 10 * i)))
    bad = board("bad", 1)
    bad["scenes"][1]["duration"] = -1
    (folder / "invalid.json").write_text(json.dumps(bad))
    (folder / "broken.json").write_text(json.dumps(board("BREAK the model", 5)))
    if with_files:
        (folder / "media").mkdir(exist_ok=True)
        write_wav(folder / "media" / "song.wav", tone(2.5))
        pixels = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "media" / "look.png")
        (folder / "song.json").write_text(json.dumps(board("a song", 40, audio="media/song.wav",
                                                           reference_image="media/look.png", look_strength=0.5)))
    return folder


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def last_rows(out: Path) -> dict[str, dict]:
    return {row["id"]: row for row in rows(out)}


def write_animated(folder: Path) -> Path:
    """``moving.json`` (both scenes clips, a cut), ``mixed.json`` (scene 2 animated; its clip fails with the
    stand-in's ``fail_on="NO CLIP"``) and ``still.json`` (nothing animated)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "moving.json").write_text(json.dumps(board("waves roll", 3, animate=True, transition="cut")))
    mixed = board("a harbour", 7, transition="cut")
    mixed["scenes"][0]["animate"] = True
    mixed["scenes"][1].update(animate=True, prompt="NO CLIP here")
    (folder / "mixed.json").write_text(json.dumps(mixed))
    (folder / "still.json").write_text(json.dumps(board("a still", 9)))
    return folder


def scene_frames(out: Path, item_id: str) -> list[tuple[str, str, str]]:
    """How each scene's frames were made, as the report says: (frames, video model, reason)."""
    report = json.loads((out / f"{item_id}.report.json").read_text())
    return [(s["frames"], s.get("video_model", ""), s.get("clip_reason", "")) for s in report["scenes"]]

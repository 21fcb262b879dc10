"""Footage on disk: frames at a rate, written once as a stream and read back one frame at a time.

A clip from a video model, a generated transition and a restyled shot are each many
frames. They are kept in a folder of the render (never a whole video in memory): the
producer (the image stage, restyling) appends frames with :class:`FootageWriter`; the
timeline opens the folder as :class:`Footage` and reads frame ``i`` (where a time falls
between frames is ``pipeline.video.resample.footage_step``'s). The folder holds ``frames.rgb`` (the raw uint8 RGB frames back to back, which
the reader memory-maps, so reading costs no decoding) and ``footage.json`` (size, count,
rate, written last: a folder without it is unfinished).

This is a contract between ``images/`` (or restyling), which make footage, and
``video/``, which shows it; neither imports the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

FRAMES_NAME = "frames.rgb"
META_NAME = "footage.json"


@dataclass(frozen=True)
class FootageInfo:
    """What a footage folder holds: ``count`` frames of ``width`` x ``height`` at ``fps`` frames a second.

    ``made_by`` says what made it, for the report (e.g. ``clip`` with the model id in ``model``).
    """

    width: int
    height: int
    count: int
    fps: float
    made_by: str = "clip"
    model: str = ""

    @property
    def seconds(self) -> float:
        """How long the footage lasts: from its first frame to one frame after its last."""
        return self.count / self.fps


class FootageWriter:
    """Appends uint8 RGB frames of one size to a new footage folder; :meth:`finish` makes it readable."""

    def __init__(self, folder: Path, fps: float, made_by: str = "clip", model: str = "") -> None:
        if not fps > 0:
            raise ValueError(f"Footage needs a positive frame rate, got {fps}.")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fps, self._made_by, self._model = float(fps), made_by, model
        self._file = open(self.folder / FRAMES_NAME, "wb")
        self._shape: tuple[int, ...] | None = None
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one ``H x W x 3`` uint8 frame (every frame must have the first one's size)."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"A footage frame must be uint8 HxWx3, got {frame.shape} {frame.dtype}.")
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"Footage frame {self.count} is {frame.shape}, the first was {self._shape}.")
        self._file.write(np.ascontiguousarray(frame).tobytes())
        self.count += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def finish(self) -> "Footage":
        """Close the file and write the folder's description; the footage can then be opened."""
        self._file.close()
        if self._shape is None:
            raise ValueError("Footage needs at least one frame.")
        height, width = self._shape[:2]
        info = FootageInfo(width, height, self.count, self._fps, self._made_by, self._model)
        (self.folder / META_NAME).write_text(json.dumps(asdict(info)), encoding="utf-8")
        return Footage(self.folder)

    def abort(self) -> None:
        """Close without describing the folder (it stays unfinished)."""
        self._file.close()


class Footage:
    """A finished footage folder, read one frame at a time (memory-mapped: nothing is held but a map)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.info = FootageInfo(**json.loads((self.folder / META_NAME).read_text(encoding="utf-8")))
        shape = (self.info.count, self.info.height, self.info.width, 3)
        self._frames = np.memmap(self.folder / FRAMES_NAME, dtype=np.uint8, mode="r", shape=shape)

    @staticmethod
    def is_footage(folder: Path) -> bool:
        """True for a finished footage folder."""
        return (Path(folder) / META_NAME).is_file()

    def __len__(self) -> int:
        return self.info.count

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (clamped to the footage) as a read-only ``H x W x 3`` uint8 array."""
        return self._frames[min(max(index, 0), self.info.count - 1)]

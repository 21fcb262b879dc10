"""The batch's manifest: ``DIR/manifest.jsonl``, one row per storyboard as it finishes.

Rows are appended and flushed one at a time, so a run that is killed keeps every row it
wrote. A resumed run appends to the same file; the last row of an id is its state.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

MANIFEST_NAME = "manifest.jsonl"
Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class ManifestRow:
    """What happened to one storyboard.

    ``images_s``: seconds from its start until its last image existed; ``encode_s``: seconds from
    then until its MP4 was written (composing overlaps the images, so the two add up to the
    render's time, not to the work of each stage). ``where``: the machine or Ray actor it ran on.
    """

    id: str
    status: Status
    reason: str = ""
    attempts: int = 0
    output: str = ""  # the video's path (relative to DIR), "" without one
    report: str = ""
    images_s: float = 0.0
    encode_s: float = 0.0
    where: str = ""
    source: str = ""  # the file or line it came from
    finished_at: str = ""  # when the row was written (UTC, ISO 8601)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


class Manifest:
    """Appends rows to ``folder/manifest.jsonl`` (a fresh file unless ``resume``)."""

    def __init__(self, folder: Path, resume: bool = False) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if resume else "w", encoding="utf-8")

    def write(self, row: ManifestRow) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._file.write(replace(row, finished_at=stamp).to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_rows(folder: Path) -> dict[str, dict]:
    """The last row of every id in ``folder``'s manifest ({} when there is none); broken lines are ignored."""
    path = Path(folder) / MANIFEST_NAME
    rows: dict[str, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            rows[row["id"]] = row
    return rows


def done_ids(folder: Path) -> dict[str, dict]:
    """The rows a resumed run skips: ``ok`` (or skipped before) with their video still in ``folder``."""
    return {item_id: row for item_id, row in read_rows(folder).items()
            if row.get("status") in ("ok", "skipped") and row.get("output")
            and (Path(folder) / row["output"]).is_file()}

"""A storyboard's referenced files travel with it: every field of kind "file" as bytes, and back.

On the driver, :func:`pack_files` reads each file a storyboard names (the audio, the reference
image, any later field of kind "file" in ``FIELDS_BY_NAME``); on a worker, :func:`unpack_files`
writes them into the render's own folder and points the storyboard at those copies, so workers
need no shared disk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..contract.fields import FIELDS_BY_NAME
from ..contract.reference import resolve_reference
from ..contract.storyboard import Storyboard

FILE_FIELDS = tuple(name for name, spec in FIELDS_BY_NAME.items() if spec.kind == "file")


@dataclass(frozen=True)
class PackedFile:
    """One referenced file: the field, its scene (None for a storyboard-wide field), its name and bytes."""

    field: str
    scene: int | None
    name: str
    data: bytes


def pack_files(storyboard: Storyboard) -> tuple[PackedFile, ...]:
    """Every file ``storyboard`` refers to, read now (they were checked when the storyboard was read)."""
    packed = []
    for name in FILE_FIELDS:
        if hasattr(storyboard, name) and getattr(storyboard, name):
            path = Path(getattr(storyboard, name))
            packed.append(PackedFile(name, None, path.name, path.read_bytes()))
        for index, scene in enumerate(storyboard.scenes):
            if hasattr(scene, name) and getattr(scene, name):
                path = Path(getattr(scene, name))
                packed.append(PackedFile(name, index, path.name, path.read_bytes()))
    return tuple(packed)


def unpack_files(storyboard: Storyboard, files: tuple[PackedFile, ...], folder: Path) -> Storyboard:
    """``storyboard`` pointing at copies of ``files`` written under ``folder`` (checked again at this door)."""
    scenes = list(storyboard.scenes)
    board_changes = {}
    for number, packed in enumerate(files):
        target = Path(folder) / f"{number}-{packed.field}" / (Path(packed.name).name or "file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(packed.data)
        if packed.scene is None:
            board_changes[packed.field] = str(target)
        else:
            scenes[packed.scene] = replace(scenes[packed.scene], **{packed.field: str(target)})
    storyboard = replace(storyboard, scenes=tuple(scenes), **board_changes)
    # The reference image is read only from paths that passed the door in this process.
    return resolve_reference(storyboard)

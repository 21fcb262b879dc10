"""A clip's footage folder as bytes, so a clip made on a Ray actor reaches the render task without a shared disk.

The actor packs the finished footage folder (``pipeline.contract.footage``) it wrote:
its description as is, its raw frames compressed with zlib (level 1: fast, lossless, so the
decoded frames are the actor's exactly); the task writes the same files into its own render
folder. The frames are read and compressed in chunks, never as one raw copy in memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from ..contract.footage import FRAMES_NAME, META_NAME, Footage

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class PackedFootage:
    """A finished footage folder: ``description`` (footage.json) and ``frames`` (frames.rgb, zlib-compressed)."""

    description: bytes
    frames: bytes


def pack_footage(folder: Path) -> PackedFootage:
    """The finished footage folder ``folder`` as bytes."""
    folder = Path(folder)
    packer = zlib.compressobj(1)
    parts = []
    with open(folder / FRAMES_NAME, "rb") as frames:
        while chunk := frames.read(_CHUNK):
            parts.append(packer.compress(chunk))
    parts.append(packer.flush())
    return PackedFootage((folder / META_NAME).read_bytes(), b"".join(parts))


def unpack_footage(packed: PackedFootage, folder: Path) -> Footage:
    """Write ``packed`` as the footage folder ``folder`` (its description last: it is readable only when whole)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unpacker = zlib.decompressobj()
    with open(folder / FRAMES_NAME, "wb") as frames:
        for start in range(0, len(packed.frames), _CHUNK):
            frames.write(unpacker.decompress(packed.frames[start:start + _CHUNK]))
        frames.write(unpacker.flush())
    (folder / META_NAME).write_bytes(packed.description)
    return Footage(folder)

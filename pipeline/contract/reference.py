"""The storyboard's reference image: where its file is, and whether it can be read.

``reference_image`` is a path in a storyboard file (relative to the file's folder), an
upload in the page or a file in the API. :func:`resolve_reference` makes it absolute and
checks it is a readable picture at the door, so a bad one is one StoryboardError naming
the field; :func:`checked_reference` opens it again (with its digest) when the render needs
it, and refuses any path that did not pass the door: a storyboard typed into the page or
sent to the API cannot make the server read one of its own files.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from io import BytesIO
from dataclasses import replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import StoryboardError
from .storyboard import Storyboard

FIELD = "reference_image"
MAX_REFERENCE_BYTES = 50 * 1024 * 1024
NOT_UPLOADED = f"Storyboard: {FIELD} must be uploaded as a file here; a path on the server is not accepted."
_MAX_CHECKED = 1024  # paths remembered as checked (most recent); older ones must be checked again
_CHECKED: "OrderedDict[str, None]" = OrderedDict()
_CHECKED_LOCK = threading.Lock()


def resolve_reference(storyboard: Storyboard, base_dir: Path | None = None) -> Storyboard:
    """``storyboard`` with ``reference_image`` made absolute (against ``base_dir``) and checked readable.

    Unchanged when there is no reference image. Raises StoryboardError naming the field when
    the file is missing or is not a picture.
    """
    if not storyboard.reference_image:
        return storyboard
    path = Path(storyboard.reference_image).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    read_reference(path)
    resolved = str(path.resolve())
    with _CHECKED_LOCK:
        _CHECKED[resolved] = None
        _CHECKED.move_to_end(resolved)
        while len(_CHECKED) > _MAX_CHECKED:
            _CHECKED.popitem(last=False)
    return replace(storyboard, reference_image=resolved)


def checked_reference(path: str | Path) -> tuple[Image.Image, str]:
    """:func:`read_reference` for a path that passed :func:`resolve_reference` in this process;
    any other path is refused with a StoryboardError naming the field."""
    with _CHECKED_LOCK:
        known = str(path) in _CHECKED
    if not known:
        raise StoryboardError(NOT_UPLOADED)
    return read_reference(path)


def read_reference(path: str | Path) -> tuple[Image.Image, str]:
    """The reference picture (RGB, loaded) and the SHA-256 hex digest of its bytes.

    Raises StoryboardError naming the field (and only the file's name, never its folder)."""
    path = Path(path)
    shown = path.name[:60]
    try:
        if path.stat().st_size > MAX_REFERENCE_BYTES:
            raise StoryboardError(f"Storyboard: {FIELD} '{shown}' is larger than "
                                  f"{MAX_REFERENCE_BYTES // (1024 * 1024)} MB.")
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' was not found.") from None
    except OSError as exc:
        raise StoryboardError(f"Storyboard: {FIELD} '{shown}' cannot be read ({exc.strerror or 'error'}).") from None
    try:
        with Image.open(BytesIO(data)) as image:
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise StoryboardError(
            f"Storyboard: {FIELD} '{shown}' is not a picture that can be read (use a PNG, JPEG or WebP file)."
        ) from None
    return picture, hashlib.sha256(data).hexdigest()


def with_uploaded_reference(storyboard: Storyboard, upload: str | Path | None) -> Storyboard:
    """For the page and the API: the reference image is the uploaded file, never a server path.

    The uploaded file (if any) is checked and replaces whatever the JSON names. Without an
    upload, a ``reference_image`` written in the JSON is refused: it would let a visitor read
    files on the server.
    """
    if upload is None and storyboard.reference_image:
        raise StoryboardError(NOT_UPLOADED)
    if upload is None:
        return storyboard
    return resolve_reference(replace(storyboard, reference_image=str(upload)))

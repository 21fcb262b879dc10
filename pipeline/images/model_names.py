"""Model ids and what can be known about a model without torch: where it lives, its family, its
native size, whether it is a few-step (distilled) model, and the short list the page offers.

Cheap to import: the page, the settings and the CLI use it without paying for torch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

DEFAULT_MODEL_ID = "stabilityai/sd-turbo"
MODEL_ENV_VAR = "SCENE2VIDEO_MODEL"
# The video model (clips and generated transitions): LTX-Video 0.9.8 13B distilled, in diffusers format
# (LTXConditionPipeline, 8 steps, no guidance). Only loaded when a render asks for clips.
DEFAULT_VIDEO_MODEL_ID = "Lightricks/LTX-Video-0.9.8-13B-distilled"
VIDEO_MODEL_ENV_VAR = "SCENE2VIDEO_VIDEO_MODEL"
# The UI's short list (ui/layout.py reads it from here; this module is cheap to import).
KNOWN_MODELS: tuple[str, ...] = (
    "stabilityai/sd-turbo",
    "stabilityai/sdxl-turbo",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
)

# The tiny autoencoder (diffusers' AutoencoderTiny, TAESD by madebyollin) that decodes each family's latents.
TINY_DECODERS: dict[str, str] = {"sd": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}
# Few-step pipelines of the SD 1.x family whose names do not start with StableDiffusion.
_SD_FAMILY_PIPELINES = ("LatentConsistencyModelPipeline",)

_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_DISTILLED_MARKERS = ("turbo", "lcm", "lightning", "hyper")
# Schedulers that only make sense for consistency-distilled few-step models.
_DISTILLED_SCHEDULERS = ("LCMScheduler", "TCDScheduler")


# A Hugging Face hub id: "org/name", each part letters, digits, "-", "_" or ".", not starting with "." or "-".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
NOT_ALLOWED = ("Model '{shown}' is not allowed on this server: use a hub id (org/name) or a model "
               "under the server's model folders.")


# --------------------------------------------------------------------------- model ids and files


def check_model_id(model_id: str, roots: tuple[Path, ...] = (), default: str | None = None) -> str:
    """``model_id`` if a visitor may load it, else StoryboardError with one message for every refusal.

    Allowed: the server's own ``default`` model; a hub id (``org/name``) that is not also a local
    path; a folder or ``.safetensors``/``.ckpt`` file whose real path (symlinks followed) is inside
    one of ``roots``. Refused with the same words whether the path exists or not, or is a file
    or a folder, so the answer reveals nothing about the server's files.
    """
    from ..contract.errors import StoryboardError

    model_id = (model_id or "").strip()
    if default is not None and model_id == default:
        return model_id
    if _HUB_ID.fullmatch(model_id) and ".." not in model_id and not _exists(Path(model_id)):
        return model_id
    try:
        real = Path(model_id).expanduser().resolve()
        allowed = model_id and any(real.is_relative_to(root.expanduser().resolve()) for root in roots)
    except (OSError, RuntimeError, ValueError):
        allowed = False
    if allowed:
        return str(real)
    shown = " ".join(model_id.split())[:40]
    raise StoryboardError(NOT_ALLOWED.format(shown=shown.encode("utf-8", "replace").decode("utf-8")))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False



def default_model_id() -> str:
    """The model to use when none is given: ``$SCENE2VIDEO_MODEL`` or sd-turbo."""
    return os.environ.get(MODEL_ENV_VAR, "").strip() or DEFAULT_MODEL_ID


def default_video_model_id() -> str:
    """The video model to use when none is given: ``$SCENE2VIDEO_VIDEO_MODEL`` or LTX-Video 0.9.8 13B distilled."""
    return os.environ.get(VIDEO_MODEL_ENV_VAR, "").strip() or DEFAULT_VIDEO_MODEL_ID


def model_source(model_id: str) -> str:
    """Where ``model_id`` points: ``"single_file"``, ``"folder"`` (local diffusers folder) or ``"hub"``."""
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix.lower() in _SINGLE_FILE_SUFFIXES:
        return "single_file"
    if path.is_dir():
        return "folder"
    return "hub"


def looks_like_sdxl(model_id: str) -> bool:
    """True if the name says XL, or a .safetensors file holds SDXL's second text encoder."""
    if "xl" in Path(model_id).name.lower() or "xl" in model_id.lower().split("/")[-1]:
        return True
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix.lower() == ".safetensors":
        return any(key.startswith("conditioner.embedders.1") for key in _safetensors_keys(path))
    return False


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (read directly: no torch, no full load); {} if unreadable."""
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 100 * 1024 * 1024:
                return {}
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def _safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a .safetensors header."""
    return [key for key in _safetensors_header(path) if key != "__metadata__"]


def single_file_config_dir(model_id: str) -> Path | None:
    """The local diffusers folder whose configs describe a single-file model, or None.

    Looked for, in order: a folder named like the file beside it (``my-model.safetensors``
    next to ``my-model/``), then the folder holding the file (a hub snapshot ships both).
    Either must hold ``model_index.json`` and the components' config files; no weights are
    read from it. None: diffusers fetches the configs from the hub or its cache.
    """
    path = Path(model_id).expanduser()
    for folder in (path.with_suffix(""), path.parent):
        if (folder / "model_index.json").is_file():
            return folder
    return None


def _model_names(model_id: str) -> list[str]:
    """What a model calls itself before loading: its id or path, plus a .safetensors file's
    ``modelspec.title`` (the Stability AI model-metadata standard's human-readable name)."""
    names = [model_id]
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix.lower() == ".safetensors":
        metadata = _safetensors_header(path).get("__metadata__") or {}
        names.append(str(metadata.get("modelspec.title", "")) if isinstance(metadata, dict) else "")
    return names


def _folder_scheduler(model_id: str) -> str:
    """The scheduler class a diffusers folder (or a single file's config folder) names, or ""."""
    path = Path(model_id).expanduser()
    folder = path if path.is_dir() else single_file_config_dir(model_id) if path.is_file() else None
    if folder is None:
        return ""
    try:
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(config.get("_class_name", "")) if isinstance(config, dict) else ""


def is_distilled_model(model_id: str, scheduler_class: str = "") -> bool:
    """True for a few-step model (turbo, LCM, lightning, hyper) that wants guidance 0.

    Signals, all cheap and none guessed from weights: a marker in the id, path or a
    .safetensors ``modelspec.title``, or an LCM/TCD scheduler (the loaded pipeline's,
    ``scheduler_class``, else the one a local folder's config names). sd-turbo's configs
    are otherwise identical to SD 2.1's, so a turbo model with none of these signals is
    not detected; the storyboard's ``steps`` and ``guidance_scale`` then set it.
    """
    names = " ".join(_model_names(model_id)).lower()
    if any(marker in names for marker in _DISTILLED_MARKERS):
        return True
    return (scheduler_class or _folder_scheduler(model_id)) in _DISTILLED_SCHEDULERS


def native_size_for(model_id: str) -> int:
    """The model's native square side before it is loaded: 1024 for SDXL, else 512."""
    return 1024 if looks_like_sdxl(model_id) else 512


# --------------------------------------------------------------------------- tiny decoders


def pipeline_family(pipeline_class: str) -> str | None:
    """The latent family of a diffusers pipeline class: ``"sdxl"``, ``"sd"`` (SD 1.x/2.x) or None (other)."""
    if pipeline_class.startswith("StableDiffusionXL"):
        return "sdxl"
    if pipeline_class in _SD_FAMILY_PIPELINES:
        return "sd"
    if pipeline_class.startswith("StableDiffusion") and not pipeline_class.startswith("StableDiffusion3"):
        return "sd"
    return None


def known_tiny_decoder(pipeline_class: str) -> str | None:
    """The hub id of the tiny autoencoder for this pipeline's family (taesd, taesdxl), or None if unknown."""
    family = pipeline_family(pipeline_class)
    return TINY_DECODERS.get(family) if family else None

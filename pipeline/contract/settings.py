"""Server settings: defaults, then environment variables, then command-line flags.

Every limit a public deployment needs can be set both ways, e.g. ``--max-scenes 20``
or ``SCENE2VIDEO_MAX_SCENES=20``. On a Hugging Face Space (``SPACE_ID`` is set) the
defaults are the safe public ones and loading another model from the UI is off.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError
from .fields import DECODERS
from ..images.model_names import DEFAULT_MODEL_ID, DEFAULT_VIDEO_MODEL_ID  # defined once there, torch-free
from .presets import QUALITY_NAMES
from .storyboard import Limits

ENV_PREFIX = "SCENE2VIDEO_"
# Words that mean "let the model manager choose the batch size from free GPU memory".
AUTO_WORDS = frozenset({"", "0", "auto"})


def on_spaces() -> bool:
    """True when running on Hugging Face Spaces."""
    return bool(os.environ.get("SPACE_ID"))


@dataclass(frozen=True)
class Settings:
    """Everything the app and the CLI can be configured with. Field names match the flags.

    ``batch_size`` None means auto: each model manager sizes its batches from free GPU
    memory (``pipeline.images.batching.auto_batch_size``, for clips ``clip_batches.auto_clip_batch``);
    a number caps every pipeline call, keyframes and clips alike.
    ``max_loaded_models`` models stay loaded per device; loading another unloads the least
    recently used one and frees its memory. ``controlnet_model`` (a hub id or diffusers folder of
    a Canny ControlNet for the model) makes a storyboard's reference image guide every scene's layout.
    """

    model: str = DEFAULT_MODEL_ID
    device: str | None = None
    preload: bool = False
    batch_size: int | None = None
    decoder: str = "auto"  # full | tiny | auto (tiny for draft quality and on a CPU); a storyboard may override
    tiny_decoder: str | None = None  # hub id or folder of an AutoencoderTiny; None: taesd / taesdxl by family
    output_dir: Path = Path("outputs")
    cache_dir: Path = Path.home() / ".cache" / "scene2video" / "keyframes"
    cache_max_mb: int = 2048
    output_max_age_hours: float = 24.0
    max_scenes: int = 100
    max_total_seconds: float = 600.0
    max_source_seconds: float = 600.0  # longest source video accepted for restyling
    max_quality: str = "premium"
    max_concurrent_renders: int = 1
    max_queue: int = 50
    max_loaded_models: int = 1
    allow_model_change: bool = True
    controlnet_model: str = ""
    auth: str | None = None
    # Where keyframes are made: auto | diffusers | openai | hf-inference (see pipeline.images.backends).
    backend: str = "auto"
    remote_model: str = ""  # "" = the backend's default (gpt-image-1; FLUX.1-schnell on hf-inference)
    remote_provider: str = "auto"  # Hugging Face Inference Provider ("auto": Hugging Face picks)
    remote_quality: str = "auto"  # OpenAI image quality: auto | low | medium | high (dall-e-3: standard | hd)
    max_requests_in_flight: int = 4
    remote_timeout: float = 120.0  # seconds per request to a remote backend
    allow_backend_change: bool = True  # may the page pick another backend (off on a Space)
    model_roots: str = ""  # folders (os.pathsep between them) whose models visitors may pick
    allow_pickle_weights: bool = False  # load .bin/.ckpt pickles when a model has no safetensors
    max_upload_mb: int = 20
    # The video model for clips and generated transitions: "" is DEFAULT_VIDEO_MODEL_ID where a GPU is
    # present and none on a CPU (a real video model takes hours per clip there); a name loads it anywhere.
    video_model: str = ""
    clip_size: str = ""  # "WxH": the size clips are made at (rounded to the model's rules); "": the model's native

    def limits(self) -> Limits:
        """The storyboard limits these settings allow."""
        allowed = QUALITY_NAMES[: QUALITY_NAMES.index(self.max_quality) + 1]
        return Limits(max_scenes=self.max_scenes, max_total_seconds=self.max_total_seconds,
                      max_source_seconds=self.max_source_seconds, allowed_qualities=allowed)

    def clip_size_pair(self) -> tuple[int, int] | None:
        """``clip_size`` as (width, height), or None for the model's native size."""
        return parse_clip_size(self.clip_size)

    def model_root_paths(self) -> tuple[Path, ...]:
        """The configured model roots as folders."""
        return tuple(Path(part).expanduser() for part in self.model_roots.split(os.pathsep) if part.strip())

    def auth_pair(self) -> tuple[str, str] | None:
        """``user:password`` as a tuple for Gradio's ``launch(auth=...)``."""
        if not self.auth:
            return None
        user, sep, password = self.auth.partition(":")
        if not sep or not user or not password:
            raise ConfigError("--auth must look like user:password")
        return user, password


PUBLIC_DEFAULTS = dict(
    preload=True,  # the Space downloads and loads the model while it starts, not on the first visitor's click
    max_scenes=20, max_total_seconds=120.0, max_source_seconds=60.0, max_quality="high", max_concurrent_renders=1,
    max_queue=20,
    allow_model_change=False, output_max_age_hours=2.0, allow_backend_change=False,
)


def parse_clip_size(text: str) -> tuple[int, int] | None:
    """``"768x512"`` -> (768, 512); blank -> None; anything else (or a side outside 16..4096) ConfigError."""
    text = (text or "").strip().lower()
    if not text:
        return None
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not (16 <= int(width) <= 4096 and
                                                                    16 <= int(height) <= 4096):
        raise ConfigError(f"clip_size must look like 768x512 (each side 16 to 4096), got '{text[:40]}'.")
    return int(width), int(height)


def _convert(name: str, text: str):
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "int | None":
        return _optional_int(text)
    if "bool" in str(kind):
        return text.strip().lower() in {"1", "true", "yes", "on"}
    if "Path" in str(kind):
        return Path(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def _optional_int(text: str) -> int | None:
    """``auto``, ``0`` or nothing -> None (decided at run time); otherwise the number."""
    text = text.strip().lower()
    return None if text in AUTO_WORDS else int(text)


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    """Defaults (public ones on a Space), overridden by SCENE2VIDEO_* variables."""
    env = dict(os.environ if env is None else env)
    base = Settings(**PUBLIC_DEFAULTS) if env.get("SPACE_ID") else Settings()
    changes = {}
    for item in fields(Settings):
        value = env.get(ENV_PREFIX + item.name.upper())
        if value not in (None, ""):
            try:
                changes[item.name] = _convert(item.name, value)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{item.name.upper()}={value!r} is not a valid value.") from None
    return validate_settings(replace(base, **changes))


def validate_settings(settings: Settings) -> Settings:
    """``settings`` unchanged, or ConfigError naming the first bad value."""
    if settings.max_quality not in QUALITY_NAMES:
        raise ConfigError(f"max_quality must be one of {', '.join(QUALITY_NAMES)}.")
    for name in ("max_scenes", "max_concurrent_renders", "max_queue", "max_loaded_models"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name} must be at least 1.")
    settings = replace(settings, decoder=settings.decoder.strip().lower())
    if settings.decoder not in DECODERS:
        raise ConfigError(f"decoder must be one of {', '.join(DECODERS)} (got '{settings.decoder[:40]}').")
    _validate_backend(settings)
    if settings.max_upload_mb < 1:
        raise ConfigError("max_upload_mb must be at least 1.")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise ConfigError("batch_size must be at least 1, or auto (0).")
    settings.auth_pair()
    settings.clip_size_pair()
    return settings


def _validate_backend(settings: Settings) -> None:
    from ..images.backends import BACKENDS, REMOTE_QUALITIES

    if settings.backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}.")
    if not 1 <= settings.max_requests_in_flight <= 64:
        raise ConfigError("max_requests_in_flight must be between 1 and 64.")
    if settings.remote_quality not in REMOTE_QUALITIES:
        raise ConfigError(f"remote_quality must be one of {', '.join(REMOTE_QUALITIES)}.")
    if not settings.remote_timeout > 0:
        raise ConfigError("remote_timeout must be more than 0 seconds.")
    for name in ("remote_model", "remote_provider"):
        # A URL here would send the server's key elsewhere; base URLs come from the environment only.
        if "://" in getattr(settings, name) or getattr(settings, name).startswith("/"):
            raise ConfigError(f"{name} must be a name, not a URL or path "
                                  "(set OPENAI_BASE_URL or HF_INFERENCE_ENDPOINT for another server).")


SETTING_HELP: dict[str, str] = {
    "model": "hub id, local diffusers folder or .safetensors file (default: stabilityai/sd-turbo)",
    "device": "where the model runs: cuda, cuda:1, mps or cpu (default: the best there is)",
    "preload": "load the model before serving the page",
    "batch_size": "images, or short clips, per model call (default: auto, from free GPU memory)",
    "output_dir": "folder for render outputs (one unguessable folder per render)",
    "cache_dir": "keyframe cache folder (default: ~/.cache/scene2video/keyframes)",
    "cache_max_mb": "keyframe cache size limit in MB (default: 2048)",
    "output_max_age_hours": "render folders older than this are removed",
    "max_scenes": "most scenes per storyboard",
    "max_total_seconds": "longest video, in seconds",
    "max_source_seconds": "longest source video accepted for restyling, in seconds (checked before decoding)",
    "max_quality": "best quality preset allowed (draft, standard, high, premium)",
    "max_concurrent_renders": "renders at once",
    "max_queue": "renders that may wait in the queue",
    "allow_model_change": "may visitors pick another model",
    "auth": "user:password for the page and the API",
    "max_loaded_models": "models kept loaded per GPU (a new pick evicts the oldest)",
    "backend": "where keyframes are made: auto, diffusers, openai or hf-inference",
    "remote_model": "the remote backend's model (default: the backend's own)",
    "remote_provider": "Hugging Face Inference Provider (auto: Hugging Face picks)",
    "remote_quality": "OpenAI image quality: auto, low, medium, high",
    "max_requests_in_flight": "remote requests at once",
    "remote_timeout": "seconds per request to a remote backend",
    "allow_backend_change": "may visitors pick another backend",
    "model_roots": "folders (separated by the OS path separator) whose models visitors may pick",
    "allow_pickle_weights": "also load .bin/.ckpt pickle weights when a model has no safetensors (trusted files only)",
    "max_upload_mb": "largest request or upload accepted, in MB",
    "controlnet_model": "a Canny ControlNet (hub id or folder) for the model: a reference image guides each layout",
    "decoder": "what turns latents into pixels: full (the model's VAE), tiny (TAESD) or auto",
    "tiny_decoder": "the tiny decoder's hub id or folder (default: the known one for the model's family)",
    "video_model": f"video model for animated scenes and generated transitions: hub id or local diffusers folder "
                   f"(default: {DEFAULT_VIDEO_MODEL_ID} on a GPU, none on a CPU)",
    "clip_size": "size clips are made at, WxH (rounded to the video model's rules; default: its native size)",
}
"""Each setting's flag help (every field of Settings has one; a test keeps them equal)."""


def add_settings_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add a flag for every setting (``--max-scenes``, ``--model`` …), or for those named in ``only``;
    unset flags keep env/defaults."""
    for item in fields(Settings):
        if only is not None and item.name not in only:
            continue
        flag = "--" + item.name.replace("_", "-")
        help_text = SETTING_HELP.get(item.name, "")
        if "bool" in str(item.type):
            parser.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=item.name, default=None, metavar=item.name.upper(), help=help_text)


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    """Environment and defaults, overridden by any flag that was given."""
    base = settings_from_env(env)
    changes = {}
    for item in fields(Settings):
        value = getattr(args, item.name, None)
        if value is None:
            continue
        try:
            changes[item.name] = value if isinstance(value, bool) else _convert(item.name, str(value))
        except ValueError:
            raise ConfigError(f"--{item.name.replace('_', '-')} {value!r} is not a valid value.") from None
    return validate_settings(replace(base, **changes))

"""One description of every Storyboard field: its kind, default, limits, label and help.

The storyboard's validation (``pipeline.contract.storyboard``), the page's widgets
(``ui``), the CLI and the API docs all read these tables, so a field is described
once. A new Storyboard field is a new :class:`FieldSpec` here plus a dataclass
field of the same name on ``Scene`` or ``Storyboard`` (a test keeps them equal).

Bounds and choices that depend on the server's limits name a ``Limits``
attribute (e.g. ``high="max_scene_seconds"``) instead of a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["text", "number", "integer", "boolean", "choice", "file"]

TRANSITIONS: tuple[str, ...] = ("cut", "crossfade", "fade", "wipe", "slide", "morph", "generated")
"""Every transition a storyboard may ask for (the timeline draws each). ``morph``'s in-between
frames are made by the image model, ``generated``'s clip by the video model (from one scene's
last frame to the next one's first); without them either is drawn as a crossfade."""
MOTIONS: tuple[str, ...] = ("none", "zoom_in", "zoom_out", "pan_left", "pan_right")
"""Every camera motion a scene may ask for."""
FITS: tuple[str, ...] = ("scenes", "audio")
"""How a soundtrack and the scenes agree on the video's length (see the ``fit`` field)."""
DECODERS: tuple[str, ...] = ("auto", "full", "tiny")
"""How keyframe latents become pixels: the model's full VAE, its tiny autoencoder, or auto (tiny for
draft quality and on a CPU, full otherwise)."""
LOOKS: tuple[str, ...] = ("independent", "chained")
"""How scenes relate: each made from its text alone, or each from the previous scene's picture."""
REFERENCE_SCENES: tuple[str, ...] = ("first", "every")
"""Which scenes start from the reference image."""
COHERENCES: tuple[str, ...] = ("flow", "none")
"""How a restyled shot stays steady: redrawn keyframes carried along the source's optical flow, or every
frame redrawn on its own (to measure what the flow gains)."""
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class FieldSpec:
    """How one Storyboard (or Scene) field is validated and shown.

    ``default`` None with ``required`` False means "blank: decided at render time"
    (the preset's or the model's value). ``low``/``high``/``choices`` are values,
    or the name of a ``Limits`` attribute holding them.
    """

    name: str
    kind: Kind
    label: str
    help: str = ""
    default: Any = None
    required: bool = False
    low: float | str | None = None
    high: float | str | None = None
    unit: str = ""
    choices: tuple[str, ...] | str = ()
    max_chars: str | None = None  # Limits attribute capping a text's length
    advanced: bool = False  # the page shows it under "Advanced"

    def bounds(self, limits: Any) -> tuple[float | None, float | None]:
        return _resolve(self.low, limits), _resolve(self.high, limits)

    def allowed(self, limits: Any) -> tuple[str, ...]:
        return tuple(_resolve(self.choices, limits) or ())


def _resolve(value: Any, limits: Any) -> Any:
    return getattr(limits, value) if isinstance(value, str) else value


SCENE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("prompt", "text", "Prompt", "What the scene shows.", required=True, max_chars="max_prompt_chars"),
    FieldSpec("duration", "number", "Duration (s)", "Seconds on screen.", default=3.0, required=True,
              low="min_scene_seconds", high="max_scene_seconds", unit="seconds"),
    FieldSpec("seed", "integer", "Seed", "Blank: derived from the prompt (same prompt, same picture).",
              low=0, high=MAX_SEED),
    FieldSpec("negative_prompt", "text", "Negative prompt", "What the picture should avoid.", default="",
              max_chars="max_prompt_chars"),
    FieldSpec("motion", "choice", "Motion", "A slow camera move over the scene (a still; a clip moves as the "
              "video model makes it).", default="none", choices=MOTIONS),
    FieldSpec("animate", "boolean", "Animate", "yes: a clip made by the video model from the scene's keyframe · "
              "no: a still with its camera motion · blank: the storyboard's Animate."),
    FieldSpec("motion_prompt", "text", "Motion prompt", "What moves and how the camera travels in the clip "
              "(added to the prompt and the style).", default="", max_chars="max_prompt_chars"),
    FieldSpec("source_start", "number", "From (s)", "Restyle the source video from this second (with 'To'). "
              "Blank: the scene is made from its prompt alone.", low=0.0, high="max_source_seconds", unit="seconds"),
    FieldSpec("source_end", "number", "To (s)", "Restyle the source video up to this second; the scene lasts "
              "the span (its duration is the span's).", low=0.0, high="max_source_seconds", unit="seconds"),
)

BOARD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("quality", "choice", "Quality", "draft 480p · standard 720p · high 1080p · premium 1080p30",
              default="standard", choices="allowed_qualities"),
    FieldSpec("transition", "choice", "Transition", "How one scene turns into the next.", default="crossfade",
              choices=TRANSITIONS),
    FieldSpec("transition_duration", "number", "Transition length (s)", "Centred on the cut; adds no time.",
              default=0.5, low=0.0, high="max_transition_seconds", unit="seconds"),
    FieldSpec("fps", "integer", "FPS", "Blank: the preset's frame rate.", low="min_fps", high="max_fps",
              advanced=True),
    FieldSpec("use_ai", "boolean", "Use the AI model", "Off: labelled placeholder frames.", default=True,
              advanced=True),
    FieldSpec("steps", "integer", "Steps", "Blank: the preset's steps for the model.", low=1, high="max_steps",
              advanced=True),
    FieldSpec("guidance_scale", "number", "Guidance", "Blank: the model's default (0 for turbo models).",
              low=0.0, high=30.0, advanced=True),
    FieldSpec("model", "text", "Model", "Hub id, local diffusers folder or .safetensors file. Blank: the server's.",
              max_chars="max_model_chars", advanced=True),
    # A 1 s morph at 24 fps then costs 8 generations (at most 12 wanted on a turbo model).
    FieldSpec("morph_frames", "integer", "Morph frames",
              "Images the model makes between two scenes in a morph; frames between them are blended.",
              default=8, low=1, high=48, advanced=True),
    FieldSpec("morph_ease", "boolean", "Ease the morph", "Start and end the morph slowly (ease-in-out).",
              default=True, advanced=True),
    FieldSpec("audio", "file", "Soundtrack", "An audio file (a path in a storyboard file, relative to it). "
              "Blank: a silent video.", max_chars="max_path_chars"),
    FieldSpec("audio_start", "number", "Audio start (s)", "Seconds into the audio file where the video starts.",
              default=0.0, low=0.0, high="max_audio_seconds", unit="seconds"),
    FieldSpec("audio_volume", "number", "Audio volume", "1 is the file's own level; 0 is silent.", default=1.0,
              low=0.0, high=4.0),
    FieldSpec("fit", "choice", "Fit", "scenes: the video lasts the sum of the scenes (the audio fades out or "
              "is padded with silence) · audio: scenes are scaled to last as long as the audio.",
              default="scenes", choices=FITS),
    FieldSpec("cut_on_beats", "boolean", "Cut on the beats", "Move each cut between scenes to the nearest beat "
              "of the audio (scenes stay within their limits).", default=False),
    FieldSpec("decoder", "choice", "Decoder",
              "full VAE · tiny autoencoder (several times faster, softer) · auto: tiny for draft and on a CPU. "
              "Blank: the server's setting.", choices=DECODERS, advanced=True),
    FieldSpec("style", "text", "Style", "Added to every scene's prompt, e.g. 'watercolor, soft light'.", default="",
              max_chars="max_prompt_chars"),
    FieldSpec("style_negative", "text", "Style: avoid", "Added to every scene's negative prompt.", default="",
              max_chars="max_prompt_chars", advanced=True),
    FieldSpec("look", "choice", "Look", "independent: each scene from its text · chained: each scene starts "
              "from the previous scene's picture (image-to-image), colours matched to scene 1.",
              default="independent", choices=LOOKS),
    FieldSpec("look_strength", "number", "Look strength", "How far a scene may move from the picture it starts "
              "from (previous scene or reference image): 0 keeps it, 1 ignores it.", default=0.6, low=0.0, high=1.0,
              advanced=True),
    FieldSpec("reference_image", "file", "Reference image", "A picture scenes start from: a path next to the "
              "storyboard file (CLI), an upload (page) or a file (API). Its edges guide the layout when the server "
              "has a ControlNet model.", max_chars="max_path_chars", advanced=True),
    FieldSpec("animate", "boolean", "Animate scenes", "Each scene a clip made by the video model from its "
              "keyframe (a scene's own Animate overrides it); without a video model, a still with camera motion.",
              default=False),
    FieldSpec("video_model", "text", "Video model", "Hub id or local diffusers folder of the video model "
              "(LTX-Video, Wan) for clips and generated transitions. Blank: the server's.",
              max_chars="max_model_chars", advanced=True),
    FieldSpec("reference_scenes", "choice", "Reference for", "first: scene 1 starts from the reference image · "
              "every: each scene does (in a chained look only scene 1; the rest follow the chain).",
              default="first", choices=REFERENCE_SCENES, advanced=True),
    FieldSpec("source_video", "file", "Source video", "A video to restyle: a path next to the storyboard file "
              "(CLI), an upload (page) or a file (API). Scenes with a span (From/To) redraw its frames; its sound "
              "plays unless a soundtrack is given.", max_chars="max_path_chars"),
    FieldSpec("coherence", "choice", "Coherence", "flow: a keyframe redrawn every few frames, the frames between "
              "carried along the video's motion (steady) · none: every frame redrawn on its own (flickers).",
              default="flow", choices=COHERENCES, advanced=True),
    FieldSpec("keyframe_interval", "integer", "Keyframe every", "Frames between redrawn keyframes of a restyled "
              "shot (coherence flow). Look strength is how far each keyframe moves from the source.",
              default=8, low=1, high=48, unit="frames", advanced=True),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in (*SCENE_FIELDS, *BOARD_FIELDS)}
"""Every field by name; where a scene field and a board field share a name (``animate``), the board's."""
SCENE_FIELDS_BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in SCENE_FIELDS}

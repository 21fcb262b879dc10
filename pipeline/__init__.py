"""Scene2Video's video-making core: storyboard in, H.264 MP4 out. Knows nothing of Gradio.

torch and diffusers are imported only inside ``pipeline.images.diffusers_backend``, when a model is first used.
"""

from .contract.errors import ConfigError, RenderCancelled, StoryboardError
from .contract.events import (
    Done, Event, Failed, KeyframeReady, MorphReady, Preview, Progress, RenderReport, SceneReport, Segment,
    TransitionReport,
)
from .contract.presets import PRESETS, QUALITY_NAMES, Preset
from .renderer import Renderer
from .contract.settings import DEFAULT_MODEL_ID, Settings
from .contract.storyboard import MOTIONS, TRANSITIONS, Limits, Scene, Storyboard, parse_storyboard

__all__ = [
    "ConfigError", "DEFAULT_MODEL_ID", "Done", "Event", "Failed", "KeyframeReady", "Limits", "MOTIONS", "MorphReady",
    "PRESETS", "Preset",
    "Preview", "Progress", "QUALITY_NAMES", "RenderCancelled", "RenderReport", "Renderer", "Scene", "SceneReport",
    "Segment", "Settings", "Storyboard", "StoryboardError", "TRANSITIONS", "TransitionReport", "parse_storyboard",
]

"""Scene2Video's Gradio front end. Knows Gradio and the ``pipeline`` public names, never torch."""

from .layout import CSS, build_demo
from .server import launch

__all__ = ["CSS", "build_demo", "launch"]

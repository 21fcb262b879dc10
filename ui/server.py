"""Queue and launch settings for the page (Gradio's side of the server settings)."""

from __future__ import annotations

import gradio as gr

from pipeline import Settings

from .layout import CSS


def launch(demo: gr.Blocks, settings: Settings, host: str | None = None, port: int | None = None,
           share: bool = False, **extra) -> tuple:
    """Queue (one GPU line shared by all sessions) and launch. None host/port: Gradio's defaults and env."""
    demo.queue(max_size=settings.max_queue, default_concurrency_limit=settings.max_concurrent_renders)
    max_age_s = int(settings.output_max_age_hours * 3600)
    demo.delete_cache = (max(600, max_age_s // 4), max_age_s)  # Gradio's own copies of served files
    return demo.launch(
        server_name=host, server_port=port, share=share, auth=settings.auth_pair(), css=CSS,
        allowed_paths=[str(settings.output_dir.resolve())], footer_links=["api", "gradio"], **extra,
    )

"""Queue and launch settings for the page (Gradio's side of the server settings)."""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from pipeline import Settings

from .guard import RequestGuard
from .layout import CSS


def launch(demo: gr.Blocks, settings: Settings, host: str | None = None, port: int | None = None,
           share: bool = False, **extra) -> tuple:
    """Queue (one GPU line shared by all sessions) and launch. None host/port: Gradio's defaults and env."""
    demo.queue(max_size=settings.max_queue, default_concurrency_limit=settings.max_concurrent_renders)
    max_age_s = int(settings.output_max_age_hours * 3600)
    demo.delete_cache = (max(600, max_age_s // 4), max_age_s)  # Gradio's own copies of served files
    # The guard refuses oversized bodies before they are read, makes /render honour a cancel at any
    # moment, and keeps the API description off the login page (see ui.guard).
    guard = Middleware(RequestGuard, max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
                       hide_api_from_login=settings.auth is not None)
    app_kwargs = dict(extra.pop("app_kwargs", None) or {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), guard]
    app_kwargs.setdefault("openapi_url", None)  # FastAPI's own route list: not needed, not served
    return demo.launch(
        server_name=host, server_port=port, share=share, auth=settings.auth_pair(), css=CSS,
        allowed_paths=[str(settings.output_dir.resolve())], footer_links=["api", "gradio"],
        max_file_size=settings.max_upload_mb * 1024 * 1024, app_kwargs=app_kwargs, **extra,
    )

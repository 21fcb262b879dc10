"""Scene2Video web app: ``python app.py [--host H] [--port P] [--share] [--mcp] [--auth user:pass] [--model ID]``.

Every setting also has an environment variable (SCENE2VIDEO_<NAME>); see README.
Without --host/--port, Gradio's defaults and GRADIO_SERVER_NAME/GRADIO_SERVER_PORT apply (Spaces uses them).
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import ConfigError
from pipeline.audio.beats import warm_up as warm_up_beats
from pipeline.service import RendererPool
from pipeline.contract.settings import add_settings_arguments, settings_from_args
from pipeline.images.zerogpu import zerogpu_available

import ui


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Scene2Video: turn a list of scenes into a video.")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve the render API as an MCP server (tool 'render', at /gradio_api/mcp/)")
    add_settings_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    pool = RendererPool(settings)
    # ZeroGPU wants the weights loaded at start-up (then moved to the GPU per call).
    preload = settings.preload or zerogpu_available()
    if preload:
        pool.preload()
    demo = ui.build_demo(pool)
    ui.launch(demo, settings, host=args.host, port=args.port, share=args.share, mcp_server=args.mcp,
              prevent_thread_lock=True)
    if not preload:
        pool.warm_up()  # loads the model once the page is served, so start-up does not wait for torch
    warm_up_beats()  # the beat tracker's first compile, in the background: a song's first render skips it
    demo.block_thread()


if __name__ == "__main__":
    main()

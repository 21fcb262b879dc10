"""diffusers' and transformers' messages through the host's logging, less two no user can act on.

Both libraries print through handlers of their own, added when they are first imported. The CLI
writes log records above its progress bar (and the app into its log); a library's own handler
would print into the middle of the bar instead. So their records are handed to the root logger.

Dropped: transformers' advice to install torchvision (this project leaves it out on purpose; the
image processors it falls back to work), huggingface_hub's deprecation of an argument that
diffusers itself passes, and the flow-match scheduler's warning about a schedule that diffusers'
own LTX-Video pipeline passes.
"""

from __future__ import annotations

import importlib
import logging
import threading
import warnings

NOT_ACTIONABLE = ("requires torchvision (not installed)",
                  # LTXConditionPipeline itself passes its schedule as timesteps, at every clip.
                  "`timesteps` were passed without `sigmas`")
# A logger's filters see only the records made on it, not its children's: the advice comes from here.
FILTERED_LOGGERS = ("transformers", "transformers.utils.import_utils",
                    "diffusers.schedulers.scheduling_flow_match_euler_discrete")
_lock = threading.Lock()
_routed = False


class _DropNotActionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in NOT_ACTIONABLE)


def route_library_logs() -> None:
    """Once per process, before the libraries' first import by a load."""
    global _routed
    with _lock:
        if _routed:
            return
        _routed = True
        warnings.filterwarnings("ignore", message=r"The `local_dir_use_symlinks` argument is deprecated",
                                category=UserWarning)
        for name in ("transformers", "diffusers"):
            try:
                library = importlib.import_module(f"{name}.utils.logging")
            except ImportError:
                continue
            library.disable_default_handler()
            library.enable_propagation()
        for name in FILTERED_LOGGERS:
            logging.getLogger(name).addFilter(_DropNotActionable())

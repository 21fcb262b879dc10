"""The error a user can fix (StoryboardError), the one an operator can fix (ConfigError),
the internal signal for a stopped render, and helpers that turn other exceptions into
one line a user can read."""

from __future__ import annotations


class StoryboardError(ValueError):
    """A problem the user can fix in the storyboard: bad input, a limit exceeded.

    The message is shown as it is (in the UI, by the API and on the CLI's
    stderr), so it names the scene and field and says what is allowed.
    """


class ConfigError(ValueError):
    """A bad server setting (flag or environment variable), for whoever runs the app.

    The message names the setting and what is allowed; the app and the CLI print it and exit.
    """


class RenderCancelled(Exception):
    """Raised inside the renderer when its cancel token is set; never shown as an error."""


def short_error(exc: BaseException, limit: int = 160, with_type: bool = False) -> str:
    """The first line of an exception's message, cut to ``limit`` characters, for users."""
    text = str(exc).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if with_type or not line:
        line = f"{type(exc).__name__}: {line}".rstrip(": ")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors (typed or only recognisable by message)."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()

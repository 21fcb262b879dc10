"""The one error type a user ever sees, the internal signal for a stopped render, and
helpers that turn other exceptions into one line a user can read."""

from __future__ import annotations


MAX_MESSAGE_CHARS = 300


class StoryboardError(ValueError):
    """A problem the user can fix: bad input, a limit exceeded, a missing tool.

    The message is shown as it is (in the UI, by the API and on the CLI's
    stderr), so it names the scene and field and says what is allowed. It is
    always one printable line of at most :data:`MAX_MESSAGE_CHARS` characters
    (whatever the caller passed in is folded and cut to that).
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(str(message), MAX_MESSAGE_CHARS))


def one_line(text: str, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

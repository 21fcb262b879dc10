"""The error a user can fix (StoryboardError), the one an operator can fix (ConfigError),
the internal signal for a stopped render, and helpers that turn other exceptions into
one line a user can read."""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import Sequence


MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a storyboard: where (``scene`` 1-based, None for a storyboard field or the
    document), which ``field`` (its name; None when it is about a whole scene or the document) and
    ``message``, one line that names both (``"Scene 2: duration must be ..."``)."""

    scene: int | None
    field: str | None
    message: str


MAX_PROBLEMS_SHOWN = 3
"""Problems a StoryboardError's message spells out; the rest are counted ("and 2 more")."""


class StoryboardError(ValueError):
    """A problem the user can fix in the storyboard: bad input, a limit exceeded.

    The message is shown as it is (in the UI, by the API and on the CLI's
    stderr), so it names the scene and field and says what is allowed. It is
    always one printable line of at most :data:`MAX_MESSAGE_CHARS` characters
    (whatever the caller passed in is folded and cut to that).

    ``problems`` lists every bad field found at once (a page marks each cell): built from
    ``problems=`` (the message then joins the first few and counts the rest), else the one
    problem ``message`` states, at ``scene``/``field`` when the caller says where.
    """

    def __init__(self, message: str = "", *, scene: int | None = None, field: str | None = None,
                 problems: Sequence[Problem] = ()) -> None:
        if problems:
            self.problems: tuple[Problem, ...] = tuple(problems)
            message = joined_problems(self.problems)
        else:
            message = one_line(str(message), MAX_MESSAGE_CHARS)
            self.problems = (Problem(scene, field, message),)
        super().__init__(one_line(message, MAX_MESSAGE_CHARS))


def joined_problems(problems: Sequence[Problem], limit: int = MAX_MESSAGE_CHARS) -> str:
    """The problems' messages in one line of at most ``limit`` characters: the first few that fit
    (at least the first, cut short if need be), then how many more there are ("And 2 more problems.")."""
    # Several share the line: each gets its part, so one long message (an unknown field's list of the
    # allowed ones) cannot push the others out.
    share = limit if len(problems) == 1 else (limit - len(_more(99))) // min(len(problems), MAX_PROBLEMS_SHOWN) - 1
    messages = [one_line(problem.message, share) for problem in problems]
    shown = 1
    while shown < min(len(messages), MAX_PROBLEMS_SHOWN):
        left = len(messages) - shown - 1
        if len(" ".join(messages[:shown + 1]) + _more(left)) > limit:
            break
        shown += 1
    tail = _more(len(messages) - shown)
    return one_line(" ".join(messages[:shown]), limit - len(tail)) + tail


def _more(count: int) -> str:
    return f" And {count} more {'problem' if count == 1 else 'problems'}." if count else ""


def one_line(text: str, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PublicError(RuntimeError):
    """A failure (not the user's fault) whose message is already one line safe to show anyone."""


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


_PATH = re.compile(r"""(?:[A-Za-z]:)?(?:[\\/][^\s'"\\/:,;()\[\]]+){2,}[\\/]?""")


def without_paths(text: str) -> str:
    """``text`` with every file-system path (two or more parts) replaced by ``<path>``."""
    return _PATH.sub("<path>", text)


def public_message(exc: BaseException, limit: int = 200) -> str:
    """One line about ``exc`` that is safe to show anyone: no server path, no traceback.

    A full disk says so plainly, whatever raised it.
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space left on device" in str(exc):
        return "the server ran out of disk space."
    if isinstance(exc, (StoryboardError, PublicError)):
        return one_line(str(exc), limit)
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(f"{type(exc).__name__}: {exc.strerror}", limit)
    return one_line(without_paths(short_error(exc, limit * 2, with_type=True)), limit)

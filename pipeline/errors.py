"""The one error type a user ever sees, and the internal signal for a stopped render."""

from __future__ import annotations


class StoryboardError(ValueError):
    """A problem the user can fix: bad input, a limit exceeded, a missing tool.

    The message is shown as it is (in the UI, by the API and on the CLI's
    stderr), so it names the scene and field and says what is allowed.
    """


class RenderCancelled(Exception):
    """Raised inside the renderer when its cancel token is set; never shown as an error."""

"""Reading untrusted JSON text safely: size, nesting depth, UTF-8 and huge numbers are checked
before (or while) ``json.loads`` runs, so no input can raise anything but a StoryboardError.

``json.loads`` recurses once per nesting level (100,000 ``[`` raise RecursionError), refuses
integer literals over 4,300 digits with a bare ValueError, and decodes bytes without saying
where the bad byte is. :func:`load_json` answers each of these with one line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import StoryboardError

MAX_JSON_CHARS = 2_000_000
"""The longest storyboard text accepted (100 scenes of 2 x 500 characters fit many times over)."""
MAX_JSON_DEPTH = 20
"""The deepest nesting accepted; a storyboard needs 3 (board, scenes list, scene)."""
MAX_NUMBER_DIGITS = 30
"""Integer literals longer than this are kept as :class:`HugeNumber` (no field allows them)."""

# Only the characters that change the nesting depth or start/end a string (or escape inside one).
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


@dataclass(frozen=True)
class HugeNumber:
    """An integer literal too long to be any field's value; validation says which field got it."""

    digits: int

    def __str__(self) -> str:
        return f"a number with {self.digits} digits"


def _parse_int(text: str) -> int | HugeNumber:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_NUMBER_DIGITS else HugeNumber(digits)


def decode_text(data: bytes) -> str:
    """UTF-8 bytes (a leading BOM is allowed) as text; StoryboardError says where a bad byte is."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StoryboardError(f"The storyboard is not UTF-8 text (a bad byte at position {exc.start}).") from None


def nesting_depth(text: str, stop_after: int = MAX_JSON_DEPTH) -> int:
    """The deepest ``[``/``{`` nesting in JSON ``text`` (brackets inside strings do not count).

    Stops counting once past ``stop_after``. Linear in the number of brackets and quotes.
    """
    depth = deepest = 0
    in_string = False
    position = 0
    search = _STRUCTURE.search
    while (match := search(text, position)) is not None:
        char = match.group()
        position = match.end()
        if in_string:
            if char == "\\":
                position += 1  # the escaped character, whatever it is
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def load_json(data: str | bytes | bytearray) -> Any:
    """Parse untrusted JSON text or UTF-8 bytes; every failure is a one-line StoryboardError.

    Integers longer than :data:`MAX_NUMBER_DIGITS` digits come back as :class:`HugeNumber`;
    ``NaN``/``Infinity`` come back as floats (a field then refuses them).
    """
    text = decode_text(bytes(data)) if isinstance(data, (bytes, bytearray)) else data
    if len(text) > MAX_JSON_CHARS:
        raise StoryboardError(
            f"The storyboard is {len(text):,} characters long; the most allowed is {MAX_JSON_CHARS:,}.")
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise StoryboardError(f"The storyboard is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise StoryboardError(
            f"The storyboard is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except (ValueError, RecursionError) as exc:  # belt and braces: the checks above should catch these
        raise StoryboardError(f"The storyboard is not valid JSON ({type(exc).__name__}).") from None

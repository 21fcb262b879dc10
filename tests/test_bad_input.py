"""Issue 16, bad input: nothing a user sends crashes; each gets one line (<= 300 characters) naming the field.

Each case ran into a traceback before the fix (OverflowError, RecursionError, UnicodeDecodeError,
TypeError, a ValueError from json, UnicodeEncodeError at render time, a 0-frame render).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Limits, StoryboardError, parse_storyboard
from pipeline.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
HUGE = "1" + "0" * 400  # too large for a float
LONGEST = "1" + "0" * 5000  # over Python's 4,300-digit int limit


def text_board(**board_fields: str) -> str:
    """A one-scene storyboard as JSON text; values are inserted verbatim (they may be invalid JSON numbers)."""
    scene = {"prompt": '"a fox"', "duration": "2"}
    scene.update({k[6:]: v for k, v in board_fields.items() if k.startswith("scene_")})
    top = {k: v for k, v in board_fields.items() if not k.startswith("scene_")}
    scene_text = ", ".join(f'"{k}": {v}' for k, v in scene.items())
    return "{" + ", ".join([f'"scenes": [{{{scene_text}}}]', *(f'"{k}": {v}' for k, v in top.items())]) + "}"


def refused(data, limits: Limits | None = None) -> str:
    with pytest.raises(StoryboardError) as info:
        parse_storyboard(data, limits)
    message = str(info.value)
    assert "\n" not in message and len(message) <= 300, message
    return message


@pytest.mark.parametrize("literal", [HUGE, "-" + HUGE, LONGEST], ids=["1e400", "-1e400", "5001-digits"])
@pytest.mark.parametrize("field", ["scene_duration", "scene_seed", "fps", "steps", "guidance_scale",
                                   "transition_duration"])
def test_huge_integers_are_refused_naming_the_field(field, literal):
    message = refused(text_board(**{field: literal}))
    name = field.removeprefix("scene_")
    assert f": {name} " in message and ("far too large" in message or "between" in message), message


@pytest.mark.parametrize("field", ["duration", "seed"])
def test_huge_python_integers_given_to_the_library_are_refused(field):
    value = 10 ** 5000
    message = refused({"scenes": [{"prompt": "a", "duration": 2, field: value}]})
    assert f"Scene 1: {field} must be between" in message and "more than 40 digits" in message


def test_deep_nesting_in_text_is_refused_before_json_recurses():
    assert "nested more than 20 levels" in refused('{"scenes": ' + "[" * 100_000)
    assert "nested more than 20 levels" in refused('{"scenes": [{"prompt": "a", "duration": ' + "[" * 3000 + "]" * 3000 + "}]}")
    # Brackets inside strings are text, not nesting.
    assert parse_storyboard(json.dumps({"scenes": [{"prompt": "[[[[" * 100 + "{", "duration": 1}]})).scenes


def test_deep_nesting_given_to_the_library_gives_a_message_not_a_recursion_error():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert "Scene 1: duration must be a number (got a list)" in refused({"scenes": [{"prompt": "a", "duration": deep}]})
    assert "quality 'a list' is not allowed" in refused({"scenes": [{"prompt": "a", "duration": 1}], "quality": deep})
    assert "prompt must be text (got a list)" in refused({"scenes": [{"prompt": deep, "duration": 1}]})


def test_invalid_utf8_bytes_are_refused():
    message = refused(b'{"scenes": [{"prompt": "caf\xe9", "duration": 1}]}')
    assert message.startswith("The storyboard is not UTF-8 text")
    # A BOM is fine, and so is UTF-8.
    assert parse_storyboard('\ufeff{"scenes": [{"prompt": "café", "duration": 1}]}'.encode("utf-8")).scenes


def test_mixed_key_types_are_refused_naming_a_key():
    assert "unknown field '7'" in refused({"scenes": [{"prompt": "a", "duration": 1}], 7: 2, "x": 1})
    assert "Scene 1: unknown field" in refused({"scenes": [{"prompt": "a", "duration": 1, None: 1, (1, 2): 3}]})


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_lone_surrogates_are_refused_naming_the_field(field):
    scene = {"prompt": "a fox", "duration": 1, field: "\ud800x"}
    assert f"Scene 1: {field} is not valid Unicode text" in refused({"scenes": [scene]})
    assert f"Scene 1: {field} is not valid Unicode text" in refused(json.dumps({"scenes": [scene]}))


@pytest.mark.parametrize("board, scene", [({"fps": 1}, 1), ({"fps": 1, "scenes_extra": True}, 2)])
def test_a_scene_without_a_frame_is_refused_at_the_door(board, scene):
    scenes = [{"prompt": "a", "duration": 0.5}]
    if board.pop("scenes_extra", False):
        scenes = [{"prompt": "a", "duration": 1.5}, {"prompt": "b", "duration": 0.5}, {"prompt": "c", "duration": 1}]
    message = refused({"scenes": scenes, **board})
    assert f"Scene {scene}: duration" in message and "gives no frame at 1 fps" in message


def test_messages_never_echo_a_huge_or_multi_line_value():
    message = refused({"scenes": [{"prompt": "a", "duration": 1}], "quality": "q" * 200_000})
    assert message.startswith("Storyboard: quality 'qqq") and len(message) < 200
    message = refused({"scenes": [{"prompt": "a", "duration": 1, "bad\nkey": 1}]})
    assert "unknown field 'bad key'" in message
    assert "\x1b" not in refused({"scenes": [{"prompt": "a", "duration": 1}], "transition": "\x1b[31mred"})
    assert len(refused({"scenes": [{"prompt": "p" * 100_000, "duration": 1}]})) < 120


def test_a_number_for_a_prompt_says_it_must_be_text():
    assert refused({"scenes": [{"prompt": 123, "duration": 1}]}) == "Scene 1: prompt must be text (got 123)."


@pytest.mark.parametrize("text", ["1_0", " 2 ", "2 ", "1e1", "0x10", "inf", "nan", "١", "+2", "2.", ".5", ""])
def test_only_strict_decimal_text_counts_as_a_number(text):
    message = refused({"scenes": [{"prompt": "a", "duration": text}]})
    assert message.startswith("Scene 1: duration"), message


@pytest.mark.parametrize("text, value", [("2", 2.0), ("-1", None), ("2.5", 2.5), ("10", 10.0)])
def test_strict_decimal_text_is_read(text, value):
    if value is None:
        assert "between" in refused({"scenes": [{"prompt": "a", "duration": text}]})
    else:
        assert parse_storyboard({"scenes": [{"prompt": "a", "duration": text}]}).scenes[0].duration == value


def test_storyboard_error_is_always_one_short_line():
    error = StoryboardError("first\nsecond " + "x" * 1000)
    assert "\n" not in str(error) and len(str(error)) == 300


def test_oversized_text_is_refused_without_parsing():
    message = refused('{"scenes": [{"prompt": "' + "a" * 2_100_000 + '", "duration": 1}]}')
    assert "characters long; the most allowed is 2,000,000" in message


# --------------------------------------------------------------------------- the CLI: exit 2 and one line


def run_cli(tmp_path: Path, content: bytes, capsys) -> tuple[int, str]:
    path = tmp_path / "board.json"
    path.write_bytes(content)
    code = cli_main(["render", str(path), "-o", str(tmp_path / "out.mp4"), "--quiet",
                     "--cache-dir", str(tmp_path / "cache")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content, expected", [
    (text_board(scene_duration=HUGE).encode(), "Scene 1: duration is far too large"),
    (text_board(scene_seed=LONGEST).encode(), "Scene 1: seed is far too large"),
    (('{"scenes": ' + "[" * 100_000).encode(), "nested more than 20 levels"),
    (b'{"scenes": [{"prompt": "caf\xe9", "duration": 1}]}', "not UTF-8 text"),
    (json.dumps({"scenes": [{"prompt": "\ud800x", "duration": 1}]}).encode(), "prompt is not valid Unicode"),
    (json.dumps({"scenes": [{"prompt": "a", "duration": 0.5}], "fps": 1}).encode(), "gives no frame at 1 fps"),
    (json.dumps({"scenes": [{"prompt": "a", "duration": 1, "k\ney": 1}]}).encode(), "unknown field 'k ey'"),
], ids=["huge", "5001-digits", "deep", "utf8", "surrogate", "0-frames", "newline-key"])
def test_cli_exits_2_with_one_line(tmp_path, capsys, content, expected):
    code, err = run_cli(tmp_path, content, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert len(err.strip()) <= 300 + len("error: ")
    assert not (tmp_path / "out.mp4").exists()


def test_cli_refuses_a_huge_file_without_reading_it_all(tmp_path, capsys):
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(200_000_000)  # sparse: costs no disk
    code = cli_main(["render", str(path), "-o", str(tmp_path / "out.mp4"), "--quiet"])
    assert code == 2 and "that is not a storyboard" in capsys.readouterr().err


def test_cli_subprocess_invalid_utf8_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "board.json"
    path.write_bytes(b'{"scenes": [{"prompt": "\xff\xfe", "duration": 1}]}')
    result = subprocess.run([sys.executable, "-m", "pipeline", "render", str(path), "-o", str(tmp_path / "o.mp4")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: The storyboard is not UTF-8 text (a bad byte at position 24)."


def test_table_controls_that_are_not_numbers_get_a_message():
    from ui.table import rows_to_storyboard

    with pytest.raises(StoryboardError, match="Storyboard: fps must be a number"):
        rows_to_storyboard([["a fox", 1, None, "", "none"]], {"fps": "fast"})


def test_nesting_depth_skips_strings_and_their_escapes():
    from pipeline.contract.json_input import nesting_depth

    assert nesting_depth(json.dumps({"a": 'x" [[[ \\ {{', "b": [[1]]})) == 3
    assert nesting_depth(json.dumps({"a": "\\"}) + "[[[[") == 4  # the string ends after its escaped backslash
    assert nesting_depth("[" * 10_000, stop_after=20) == 21  # stops counting early

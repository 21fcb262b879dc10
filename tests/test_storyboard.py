"""The Storyboard contract: validated once, one clear error per bad field."""

import json

import pytest

from pipeline import PRESETS, Limits, StoryboardError, parse_storyboard


def board(**changes):
    data = {"scenes": [{"prompt": "a fox", "duration": 2}, {"prompt": "a bear", "duration": 3, "seed": 5}]}
    data.update(changes)
    return data


def test_minimal_storyboard_gets_defaults():
    sb = parse_storyboard({"scenes": [{"prompt": "  a fox  ", "duration": "2.5"}]})
    assert sb.quality == "standard" and sb.transition == "crossfade" and sb.transition_duration == 0.5
    assert sb.scenes[0].prompt == "a fox" and sb.scenes[0].duration == 2.5 and sb.use_ai is True
    assert sb.output_fps == 24 and sb.fps is None


def test_json_round_trip_is_identity():
    sb = parse_storyboard(board(quality="high", transition="wipe", fps=30, steps=3, guidance_scale=1.5))
    assert parse_storyboard(sb.to_json()) == sb
    assert json.loads(sb.to_json())["scenes"][1]["seed"] == 5


def test_seed_derived_from_prompt_is_stable_and_differs_between_prompts():
    a = parse_storyboard(board()).scenes[0]
    again = parse_storyboard(board()).scenes[0]
    other = parse_storyboard({"scenes": [{"prompt": "a fox!", "duration": 1}]}).scenes[0]
    assert a.seed is None and a.resolved_seed == again.resolved_seed != other.resolved_seed


@pytest.mark.parametrize(
    "data, message",
    [
        ({"scenes": []}, "'scenes' must be a non-empty list"),
        (board(quality="ultra"), "quality 'ultra' is not allowed; choose one of draft, standard, high, premium"),
        (board(transition="spin"), "transition 'spin' is not allowed"),
        ({"scenes": [{"prompt": "x", "duration": 1}, {"prompt": "", "duration": 1}]}, "Scene 2: prompt is empty"),
        ({"scenes": [{"prompt": "x", "duration": 1}, {"prompt": "y"}]}, "Scene 2: duration is missing"),
        ({"scenes": [{"prompt": "x", "duration": 0.1}]}, "Scene 1: duration must be between 0.5 and 60 seconds"),
        ({"scenes": [{"prompt": "x", "duration": "long"}]}, "Scene 1: duration must be a number"),
        ({"scenes": [{"prompt": "x", "duration": 1, "seed": 1.5}]}, "Scene 1: seed must be a whole number"),
        ({"scenes": [{"prompt": "x", "duration": 1, "seed": -1}]}, "Scene 1: seed must be between 0"),
        ({"scenes": [{"prompt": "x", "duration": 1, "motion": "spin"}]}, "Scene 1: motion 'spin' is not allowed"),
        ({"scenes": [{"prompt": "x", "duration": 1, "colour": 1}]}, "Scene 1: unknown field 'colour'"),
        (board(fps=0), "Storyboard: fps must be between 1 and 60"),
        (board(transition_duration=9), "transition_duration must be between 0 and 5 seconds"),
        (board(use_ai="yes"), "use_ai must be true or false"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_input_names_scene_and_field(data, message):
    with pytest.raises(StoryboardError, match=None) as info:
        parse_storyboard(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_bad_field_is_reported_at_once_with_where_it_is():
    """Issue 26: a seed "abc", an empty prompt and a duration of 500 took three Generates to find."""
    data = {"scenes": [{"prompt": "a", "duration": 1, "seed": "abc"}, {"prompt": " ", "duration": 1},
                       {"prompt": "c", "duration": 500}]}
    with pytest.raises(StoryboardError) as caught:
        parse_storyboard(data)
    assert str(caught.value) == ("Scene 1: seed must be a number (got 'abc'). "
                                 "Scene 2: prompt is empty; describe what the scene shows. "
                                 "Scene 3: duration must be between 0.5 and 60 seconds (got 500).")
    assert [(p.scene, p.field) for p in caught.value.problems] == [(1, "seed"), (2, "prompt"), (3, "duration")]


def test_past_a_few_problems_the_rest_are_counted():
    data = {"scenes": [{"prompt": "", "duration": 1} for _ in range(6)], "fps": 0}
    with pytest.raises(StoryboardError) as caught:
        parse_storyboard(data)
    message = str(caught.value)
    assert message.startswith("Scene 1: prompt is empty") and message.endswith(" And 4 more problems.")
    assert len(caught.value.problems) == 7 and caught.value.problems[-1].field == "fps"
    assert caught.value.problems[-1].scene is None and len(message) <= 300


def test_a_missing_field_says_what_it_is_in_one_sentence():
    with pytest.raises(StoryboardError) as caught:
        parse_storyboard({"scenes": [{"prompt": "a"}]})
    assert str(caught.value) == "Scene 1: duration is missing (seconds on screen)."


def test_limits_are_configurable():
    limits = Limits(max_scenes=1, max_prompt_chars=5, max_total_seconds=2, allowed_qualities=("draft",))
    with pytest.raises(StoryboardError, match="2 scenes given; the most allowed is 1"):
        parse_storyboard(board(), limits)
    with pytest.raises(StoryboardError, match="Scene 1: prompt is 9 characters; the most allowed is 5"):
        parse_storyboard({"scenes": [{"prompt": "123456789", "duration": 1}]}, limits)
    with pytest.raises(StoryboardError, match="add up to 3 seconds; the most allowed is 2"):
        parse_storyboard({"scenes": [{"prompt": "x", "duration": 3}]}, Limits(max_total_seconds=2))
    with pytest.raises(StoryboardError, match="quality 'high' is not allowed; choose one of draft"):
        parse_storyboard({"scenes": [{"prompt": "x", "duration": 1}], "quality": "high"}, limits)


def test_presets_have_exact_sizes():
    sizes = {name: (p.width, p.height, p.fps) for name, p in PRESETS.items()}
    assert sizes == {"draft": (854, 480, 24), "standard": (1280, 720, 24), "high": (1920, 1080, 24),
                     "premium": (1920, 1080, 30)}
    assert PRESETS["premium"].crf < PRESETS["high"].crf


def test_unicode_prompts_are_accepted():
    sb = parse_storyboard({"scenes": [{"prompt": "café 東京 🌸", "duration": 1}]})
    assert sb.scenes[0].prompt == "café 東京 🌸"


def test_every_field_is_described_once_and_matches_the_dataclasses():
    from dataclasses import fields

    from pipeline import Scene, Storyboard
    from pipeline.contract.fields import BOARD_FIELDS, SCENE_FIELDS

    assert [spec.name for spec in SCENE_FIELDS] == [f.name for f in fields(Scene)]
    assert ["scenes", *(spec.name for spec in BOARD_FIELDS)] == [f.name for f in fields(Storyboard)]
    sb = parse_storyboard({"scenes": [{"prompt": "x", "duration": 1}]})
    assert all(getattr(sb, spec.name) == spec.default for spec in BOARD_FIELDS)


def test_the_model_is_a_storyboard_field_recorded_on_export():
    sb = parse_storyboard(board(model="  org/some-model "))
    assert sb.model == "org/some-model" and json.loads(sb.to_json())["model"] == "org/some-model"
    assert "model" not in parse_storyboard(board(model="")).to_dict()

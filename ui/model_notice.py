"""The first-screen notice when this server cannot make AI pictures: one line saying so and what to do,
the reason a click away. Shown only while it is true (see ``Handlers.model_state``)."""

from __future__ import annotations

import html

NO_AI = ("⚠️ <b>No AI pictures here</b>, scenes become placeholders. Fix: <code>--model</code> a local model "
         "folder, or set <code>OPENAI_API_KEY</code> or <code>HF_TOKEN</code>, or turn off <i>Use the AI model</i>.")


def cannot_make_pictures(facts: dict[str, str], use_ai: bool | None) -> bool:
    """True when the model a render would use failed to load and the storyboard wants AI pictures."""
    return bool(use_ai is not False and str(facts.get("state", "")).startswith("failed"))


def no_ai_notice(facts: dict[str, str]) -> str:
    """The notice's HTML: the line, then why (the model and the loader's reason) in a details element."""
    reason = facts.get("reason") or str(facts.get("state", "")).partition(":")[2].strip() or "no reason given"
    model = str(facts.get("model", "?"))
    why = reason if model in reason else f"Model {model}: {reason}"  # the loader's reasons name it already
    return f'<div class="s2v-no-ai">{NO_AI} <details><summary>Why?</summary>{html.escape(why)}</details></div>'

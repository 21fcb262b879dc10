"""The first-screen notice when this server cannot make AI pictures: one line saying so and what to do,
the reason a click away. Shown only while it is true (see ``Handlers.model_state``)."""

from __future__ import annotations

import html

NO_AI = ("⚠️ <b>No AI pictures on this server:</b> scenes will be placeholders. Start it with "
         "<code>--model</code> set to a local model folder, or set <code>OPENAI_API_KEY</code> or "
         "<code>HF_TOKEN</code>, or switch <i>Use the AI model</i> off (Advanced).")


def cannot_make_pictures(facts: dict[str, str], use_ai: bool | None) -> bool:
    """True when the model a render would use failed to load and the storyboard wants AI pictures."""
    return bool(use_ai is not False and str(facts.get("state", "")).startswith("failed"))


def no_ai_notice(facts: dict[str, str]) -> str:
    """The notice's HTML: the line, then why (the model and the loader's reason) in a details element."""
    reason = facts.get("reason") or str(facts.get("state", "")).partition(":")[2].strip() or "no reason given"
    why = f"Model {facts.get('model', '?')}: {reason}"
    return f'<div class="s2v-no-ai">{NO_AI} <details><summary>Why?</summary>{html.escape(why)}</details></div>'

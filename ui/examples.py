"""Example storyboards shipped in assets/examples, loaded by name."""

from __future__ import annotations

from pathlib import Path

from pipeline import Storyboard, parse_storyboard

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


def load_example(name: str) -> Storyboard:
    """The example called ``name`` (a file stem in assets/examples)."""
    return parse_storyboard((EXAMPLES_DIR / f"{Path(name).name}.json").read_text(encoding="utf-8"))

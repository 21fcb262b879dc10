"""Keyframe requests for model tests: 64 px (the tiny model's native size), two steps, no guidance."""

from __future__ import annotations

from pipeline.images.generation import ImageRequest


def request(index: int, seed: int | None = None, steps: int = 2, size: tuple[int, int] = (64, 64),
            prompt: str = "a red fox in the snow", guidance: float = 0.0) -> ImageRequest:
    """A request for scene ``index`` (seeded with ``index`` unless ``seed`` is given)."""
    return ImageRequest(
        scene_index=index, prompt=prompt, negative_prompt="", seed=index if seed is None else seed,
        steps=steps, guidance_scale=guidance, width=size[0], height=size[1],
    )

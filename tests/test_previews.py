"""Latent previews: what the UI shows while a keyframe is still denoising."""

from __future__ import annotations

import numpy as np

from pipeline.images.previews import latents_to_previews


def test_latent_previews_are_small_rgb_images():
    previews = latents_to_previews(np.zeros((2, 4, 8, 12), dtype=np.float32))
    assert [p.size for p in previews] == [(12, 8), (12, 8)]
    assert np.asarray(previews[0]).tolist()[0][0] == [128, 128, 128]

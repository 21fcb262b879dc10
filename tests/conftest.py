"""Shared test setup: offline hub, no analytics, and one tiny model per session."""

import os

# Set before anything imports huggingface_hub or gradio: both read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# The tiny model's kernels are far too small to gain from threads; on a small, shared CI
# machine torch's OpenMP threads spin against each other and make tests ~10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Let tests import helpers such as ``tiny_model`` and the ``pipeline`` package.
_TESTS_DIR = Path(__file__).resolve().parent
for _path in (str(_TESTS_DIR), str(_TESTS_DIR.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random diffusers pipeline folder (64 px native), built once per test session."""
    from tiny_model import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_decoder_dir(tiny_model_dir: Path) -> Path:
    """A tiny random AutoencoderTiny saved beside the tiny model (its ``tiny_decoder`` setting)."""
    from tiny_model import build_tiny_autoencoder

    return build_tiny_autoencoder(tiny_model_dir.parent / "tiny_decoder")


@pytest.fixture(scope="session")
def tiny_ltx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LTX-Video (LTXConditionPipeline) folder, built once per test session."""
    from tiny_video_model import build_tiny_ltx_pipeline

    # Named like the app's default, distilled LTX-Video, so it is run like it (8 steps, no guidance).
    return build_tiny_ltx_pipeline(tmp_path_factory.mktemp("tiny_ltx_distilled"))


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Wan image-to-video (first-last-frame) folder, built once per test session."""
    from tiny_video_model import build_tiny_wan_pipeline

    return build_tiny_wan_pipeline(tmp_path_factory.mktemp("tiny_wan"))

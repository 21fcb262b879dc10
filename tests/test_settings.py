"""Settings reach the model: batch size (auto by default), --model / SCENE2VIDEO_MODEL, one source of names."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import ConfigError
from pipeline.images import registry as model_module
import pipeline.images.model_names
from pipeline.images.batching import AUTO_GROUP_SIZE
from pipeline.service import RendererPool
from pipeline.contract.settings import Settings, add_settings_arguments, settings_from_args, settings_from_env

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return settings_from_args(parser.parse_args(argv), env or {})


@pytest.fixture
def fresh_registry(monkeypatch):
    """Empty shared-model registries, so each test sees the managers its own settings made."""
    monkeypatch.setattr(model_module, "REGISTRY", model_module.ModelRegistry())


def pool_for(tmp_path: Path, settings: Settings) -> RendererPool:
    from dataclasses import replace

    return RendererPool(replace(settings, output_dir=tmp_path / "out", cache_dir=tmp_path / "cache", device="cpu"))


# --------------------------------------------------------------------------- batch size


def test_batch_size_is_auto_by_default_and_a_number_wins():
    assert Settings().batch_size is None and settings_from_env({}).batch_size is None
    for auto in ("0", "auto", "AUTO "):
        assert settings_from_env({"SCENE2VIDEO_BATCH_SIZE": auto}).batch_size is None
        assert parse(["--batch-size", auto]).batch_size is None
    assert settings_from_env({"SCENE2VIDEO_BATCH_SIZE": "6"}).batch_size == 6
    assert parse(["--batch-size", "2"], {"SCENE2VIDEO_BATCH_SIZE": "6"}).batch_size == 2
    assert parse(["--batch-size", "auto"], {"SCENE2VIDEO_BATCH_SIZE": "6"}).batch_size is None
    with pytest.raises(ConfigError, match="batch_size must be at least 1, or auto"):
        settings_from_env({"SCENE2VIDEO_BATCH_SIZE": "-1"})
    with pytest.raises(ConfigError, match="--batch-size 'lots' is not a valid value"):
        parse(["--batch-size", "lots"])


def test_auto_batch_size_lets_the_manager_decide(tmp_path, fresh_registry):
    renderer = pool_for(tmp_path, Settings(model="org/auto-model")).get()
    assert renderer.model.batch_size is None  # ModelManager._batch_size_for then reads free memory
    assert renderer.images.batch_size == AUTO_GROUP_SIZE


def test_a_given_batch_size_reaches_the_manager_and_the_stage(tmp_path, fresh_registry):
    renderer = pool_for(tmp_path, parse(["--model", "org/fixed-model", "--batch-size", "3"])).get()
    assert renderer.model.batch_size == 3 and renderer.images.batch_size == 3


# --------------------------------------------------------------------------- which model


def test_model_flag_and_env_reach_the_model_manager(tmp_path, fresh_registry):
    from_env = parse([], {"SCENE2VIDEO_MODEL": "org/from-env"})
    assert pool_for(tmp_path, from_env).get().model is model_module.get_model_manager("org/from-env", "cpu")
    flag_wins = parse(["--model", "org/from-flag"], {"SCENE2VIDEO_MODEL": "org/from-env"})
    assert pool_for(tmp_path, flag_wins).get().model.model_id == "org/from-flag"
    assert pool_for(tmp_path, parse([])).get().model.model_id == pipeline.images.model_names.DEFAULT_MODEL_ID


def _assignments(name: str) -> list[str]:
    """Files under pipeline/ and ui/ that assign ``name`` at module level."""
    found = []
    for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("ui/*.py")]:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found.append(str(path.relative_to(ROOT)))
    return found


def test_model_names_are_defined_once_and_the_ui_stays_torch_free():
    assert _assignments("KNOWN_MODELS") == ["pipeline/images/model_names.py"]
    assert _assignments("DEFAULT_MODEL_ID") == ["pipeline/images/model_names.py"]
    import pipeline
    import pipeline.contract.settings

    assert pipeline.DEFAULT_MODEL_ID == pipeline.contract.settings.DEFAULT_MODEL_ID == pipeline.images.model_names.DEFAULT_MODEL_ID
    code = "import sys, ui, app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]

"""The registry of shared backends: one instance per model, a cap on loaded models, named backends."""

from __future__ import annotations

import gc
import shutil
import weakref

from keyframe_requests import request
from pipeline.images.generation import ModelInfo
from pipeline.images.registry import BACKENDS, BackendSpec, ModelRegistry, register_backend
from stand_in_model import StandInModel


def test_a_new_model_unloads_the_old_one_and_frees_its_weights(tiny_model_dir, tmp_path):
    other_dir = shutil.copytree(tiny_model_dir, tmp_path / "other-tiny-model")
    registry = ModelRegistry(max_resident=1)
    first = registry.manager(str(tiny_model_dir), "cpu", local_files_only=True)
    assert registry.manager(str(tiny_model_dir) + "/", "cpu", local_files_only=True) is first  # one per model
    assert first.generate([request(0)])[0].image is not None
    unet = weakref.ref(first.pipeline.unet)
    second = registry.manager(str(other_dir), "cpu", local_files_only=True)
    assert first.loaded and not second.loaded  # picking a model loads nothing yet
    assert second.generate([request(0)])[0].image is not None
    assert second.loaded and not first.loaded and first.info().state == "not loaded"
    gc.collect()
    assert unet() is None, "the unloaded model's weights are still referenced"
    # Using the old model again brings it back and sends the other one away.
    assert first.generate([request(1)])[0].image is not None
    assert first.loaded and not second.loaded


def test_two_models_may_stay_loaded_when_the_cap_allows(tiny_model_dir, tmp_path):
    other_dir = shutil.copytree(tiny_model_dir, tmp_path / "other-tiny-model")
    registry = ModelRegistry(max_resident=2)
    first = registry.manager(str(tiny_model_dir), "cpu", local_files_only=True)
    second = registry.manager(str(other_dir), "cpu", local_files_only=True)
    assert first.load() and second.load()
    assert first.loaded and second.loaded


class Named(StandInModel):
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def info(self) -> ModelInfo:
        return ModelInfo(self.model_id, "remote", "loaded")


def test_backends_are_made_by_name_and_shared(monkeypatch):
    monkeypatch.setitem(BACKENDS, "stand-in", BACKENDS.get("stand-in"))  # restored after the test
    register_backend("stand-in", BackendSpec(lambda key: Named(key.model_id), resident=False))
    registry = ModelRegistry()
    model = registry.get("some/model", backend="stand-in")
    assert isinstance(model, Named) and model.model_id == "some/model"
    assert registry.get("some/model", backend="stand-in") is model
    assert registry.model_ids() == ["some/model"]

"""pipeline.zerogpu: decorating with a stand-in ``spaces`` package, and the duration estimate."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import zerogpu
from pipeline.zerogpu import estimate_gpu_seconds, gpu_task, zerogpu_available

ROOT = Path(__file__).resolve().parents[1]

# A small stand-in for the real package: GPU(duration=...) returns a decorator whose
# wrapper asks the duration (a number, or a callable given the call's arguments),
# records it and calls through.
_FAKE_SPACES = textwrap.dedent(
    '''
    import functools

    calls = []

    def GPU(fn=None, duration=60):
        def decorate(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                calls.append(seconds)
                return func(*args, **kwargs)
            wrapper.zerogpu_duration = duration
            return wrapper
        return decorate(fn) if fn is not None else decorate
    '''
)


@pytest.fixture
def fake_spaces(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    (folder / "spaces").mkdir(parents=True)
    (folder / "spaces" / "__init__.py").write_text(_FAKE_SPACES, encoding="utf-8")
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("spaces", None)


@pytest.fixture
def no_spaces(monkeypatch):
    # None in sys.modules makes ``import spaces`` raise ImportError, even if it is installed.
    monkeypatch.setitem(sys.modules, "spaces", None)


def _generate(n_scenes: int, steps: int, width: int = 512, height: int = 512) -> str:
    return f"{n_scenes} scenes, {steps} steps at {width}x{height}"


def _duration(n_scenes: int, steps: int, width: int = 512, height: int = 512) -> int:
    return estimate_gpu_seconds(n_scenes, steps, width, height)


def test_gpu_task_decorates_when_spaces_importable(fake_spaces):
    task = gpu_task(_generate, duration=_duration)
    assert task is not _generate
    assert task.zerogpu_duration is _duration
    assert task(3, 2) == "3 scenes, 2 steps at 512x512"
    assert task(50, 4, width=1920, height=1080) == "50 scenes, 4 steps at 1920x1080"

    import spaces

    # The duration callable got the same arguments as the function, positional and keyword.
    assert spaces.calls == [_duration(3, 2), _duration(50, 4, width=1920, height=1080)]
    assert spaces.calls[0] < spaces.calls[1]


def test_gpu_task_returns_function_unchanged_without_spaces(no_spaces):
    assert gpu_task(_generate, duration=_duration) is _generate
    assert _generate(1, 1) == "1 scenes, 1 steps at 512x512"


def test_zerogpu_available_needs_package_and_env(fake_spaces, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu_available() is False
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu_available() is True
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    assert zerogpu_available() is False


def test_zerogpu_unavailable_without_package(no_spaces, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu_available() is False


def test_estimate_grows_with_scenes_steps_and_size():
    base = estimate_gpu_seconds(20, 2, 1280, 720, cap=10_000)
    assert estimate_gpu_seconds(40, 2, 1280, 720, cap=10_000) > base
    assert estimate_gpu_seconds(20, 4, 1280, 720, cap=10_000) > base
    assert estimate_gpu_seconds(20, 2, 1920, 1080, cap=10_000) > base
    assert isinstance(base, int)


def test_estimate_has_a_floor_and_a_cap():
    floor = estimate_gpu_seconds(1, 1, 512, 512)
    assert floor == zerogpu.MIN_SECONDS
    assert estimate_gpu_seconds(0, 0, 0, 0) == zerogpu.MIN_SECONDS
    assert estimate_gpu_seconds(100, 4, 1920, 1080) == 120
    assert estimate_gpu_seconds(100, 4, 1920, 1080, cap=60) == 60
    assert estimate_gpu_seconds(10_000, 100, 1920, 1080, cap=300) == 300


def test_estimate_rejects_nonsense():
    with pytest.raises(ValueError):
        estimate_gpu_seconds(-1, 1, 512, 512)
    with pytest.raises(ValueError):
        estimate_gpu_seconds(1, 1, 512, 512, cap=0)


def test_module_import_does_not_import_torch_or_gradio():
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("zerogpu_probe", {str(ROOT / "pipeline" / "zerogpu.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        heavy = sorted(name for name in ("torch", "gradio", "spaces") if name in sys.modules)
        print(",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


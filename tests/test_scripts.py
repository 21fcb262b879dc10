"""Issue 26: the README's two commands on a stock Debian/Ubuntu, whose python3 refuses ``pip install`` (PEP 668).

scripts/start.sh and scripts/test.sh are run as they are, copied into a scratch project whose requirements
are one tiny local wheel (the real ones take minutes), with a Debian system python3 first on PATH. With
``SCENE2VIDEO_ENV_ONLY=1`` they stop once the environment is ready, so neither apt, the app nor pytest runs;
everything before that (scripts/venv.sh) is the real thing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _refuses_pip(python: Path) -> bool:
    """True when ``python`` is marked externally managed (PEP 668), as Debian 12's and Ubuntu 24.04's are."""
    if not python.exists():
        return False
    stdlib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


pytestmark = pytest.mark.skipif(not _refuses_pip(SYSTEM_PYTHON) or shutil.which("bash") is None,
                                reason="needs a Debian/Ubuntu system python3 with the PEP 668 marker")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel of one module, written by hand (installing it needs no index and no build)."""
    files = {
        "s2v_tiny_probe/__init__.py": b"VALUE = 26\n",
        "s2v_tiny_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: s2v-tiny-probe\nVersion: 1.0\n",
        "s2v_tiny_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                              b"Tag: py3-none-any\n",
    }
    record = "s2v_tiny_probe-1.0.dist-info/RECORD"
    lines = [_record_line(name, data) for name, data in files.items()] + [f"{record},,"]
    path = folder / "s2v_tiny_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(record, "\n".join(lines) + "\n")
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A scratch copy of the project's scripts whose requirements are the tiny wheel."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", root / "scripts")
    wheel = tiny_wheel(root)
    (root / "requirements.txt").write_text(f"./{wheel.name}\n")
    (root / "requirements-dev.txt").write_text("-r requirements.txt\n")
    return root


def system_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user on a stock Debian: its python3 first on PATH, no virtual environment active."""
    bin_dir = tmp_path / "system-bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "python3"
    if not link.exists():
        link.symlink_to(SYSTEM_PYTHON)
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    env["SCENE2VIDEO_ENV_ONLY"] = "1"
    env.update(extra)
    return env


def run_script(project: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", f"scripts/{script}"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)


def imports_probe(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import s2v_tiny_probe"], capture_output=True).returncode == 0


def test_the_system_python_here_refuses_pip(tmp_path):
    """The premise: a plain `pip install` into this python3 is refused, so the scripts must not do that."""
    wheel = tiny_wheel(tmp_path)
    result = subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", "install", str(wheel)], capture_output=True, text=True,
                            env=system_env(tmp_path))
    assert result.returncode != 0
    assert "externally-managed-environment" in result.stderr or "No module named pip" in result.stderr
    assert not imports_probe(SYSTEM_PYTHON)


def test_both_scripts_make_reuse_and_install_into_the_projects_venv(project, tmp_path):
    env = system_env(tmp_path)
    first = run_script(project, "start.sh", env)
    assert first.returncode == 0, first.stderr
    venv_python = project / ".venv" / "bin" / "python"
    assert imports_probe(venv_python) and not imports_probe(SYSTEM_PYTHON)
    assert first.stdout.splitlines() == ["Making the virtual environment .venv in the project (reused on the next run)"]
    made = (project / ".venv" / "pyvenv.cfg").stat().st_mtime_ns
    assert str(SYSTEM_PYTHON.resolve().parent) in (project / ".venv" / "pyvenv.cfg").read_text()

    for script in ("test.sh", "start.sh"):
        again = run_script(project, script, env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [
            "Using the virtual environment .venv in the project (reused; delete it to start afresh)"]
    assert (project / ".venv" / "pyvenv.cfg").stat().st_mtime_ns == made


def test_a_half_made_venv_is_made_again(project, tmp_path):
    """A .venv without pip (left by a run that failed half way) is not mistaken for a ready one."""
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    result = run_script(project, "test.sh", system_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Making the virtual environment" in result.stdout
    assert imports_probe(project / ".venv" / "bin" / "python")


def test_an_active_virtual_environment_is_used_as_it_is(project, tmp_path):
    own = tmp_path / "my-env"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(own)], check=True)
    env = system_env(tmp_path, VIRTUAL_ENV=str(own))
    env["PATH"] = f"{own / 'bin'}{os.pathsep}{env['PATH']}"
    for script in ("start.sh", "test.sh"):
        result = run_script(project, script, env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"Using the active virtual environment {own}"]
    assert imports_probe(own / "bin" / "python")
    assert not (project / ".venv").exists()


def test_pip_in_the_venv_reads_the_machines_pip_configuration(project, tmp_path):
    """Where packages come from (find-links, local indexes, constraints: CI's torch wheel) is set in pip's
    global and user configuration files, outside any venv: pip in .venv reads the same ones."""
    assert run_script(project, "start.sh", system_env(tmp_path)).returncode == 0

    def config(python: Path) -> list[str]:
        out = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True, text=True,
                             check=True).stdout
        return sorted(out.splitlines())

    assert config(project / ".venv" / "bin" / "python") == config(Path(sys.executable))

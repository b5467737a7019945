"""The user install: ``pip install`` of the checkout into a fresh virtual environment, as
``./setup --user`` and the Raspberry Pi guide do, brings what running needs and none of the
test extras, and ``check`` and ``render`` then work.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from timekit import scaled

REPO = Path(__file__).resolve().parents[1]
INSTALL_S = 900.0  # wheels from pip's cache or the index, and building the project
COMPILE_S = 600.0  # render's first compile in the fresh environment

pytestmark = [pytest.mark.slow, pytest.mark.cold]

#: the test extras (pyproject's [test]) that a user install must not bring
TEST_ONLY = ("pytest", "scipy", "hypothesis", "JACK-Client", "pyloudnorm", "matplotlib", "ruff", "selenium")


def run(*command: str | Path, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=scaled(timeout), check=False, **kwargs
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def test_a_fresh_environment_installs_without_test_extras_and_checks_and_renders(tmp_path):
    # a copy of the sources, so that building leaves nothing in the checkout
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "*.nbi", "*.nbc"
        ),
    )
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, timeout=120)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", source, timeout=INSTALL_S)

    installed = run(python, "-m", "pip", "list", "--format=freeze", timeout=120).stdout
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert {"controlroom", "numba", "numpy", "soundfile"} <= names
    assert names.isdisjoint(n.lower() for n in TEST_ONLY), sorted(names)

    controlroom = venv / "bin" / "controlroom"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    checked = run(controlroom, "check", "-c", REPO / "examples" / "studio.toml", timeout=120, env=env)
    assert "studio.toml" in checked.stdout + checked.stderr
    mix = tmp_path / "mix.wav"
    t = np.arange(4800) / 48_000
    soundfile.write(mix, np.stack([0.5 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1), 48_000)
    out = tmp_path / "out.wav"
    run(controlroom, "render", "-c", REPO / "examples" / "minimal.toml", mix, out, timeout=COMPILE_S, env=env)
    rendered, rate = soundfile.read(out)
    assert rate == 48_000 and len(rendered) == 4800 and np.max(np.abs(rendered)) > 0

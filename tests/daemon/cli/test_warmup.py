"""A cached kernel is not used once a source it compiled in has changed.

numba compares a cached kernel with its own source file only; ``tap_words`` (dsp/tap.py) compiles
in ``TAP_PLANE`` from dsp/layout.py. A copy of the package, run in fresh processes on a cache of
its own, shows it: after layout.py changes, numba alone still answers from the old constant, and
``forget_stale`` (which ``warm`` and every command that plays or renders call first) makes it
answer from the new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import controlroom
import controlroom.daemon
import controlroom.dsp

ASK = "from controlroom.dsp.tap import tap_words; print(tap_words(1))"
FORGET = "from controlroom.daemon.cli.warmup import forget_stale; print(forget_stale())"


def copy_of_the_package(root: Path) -> Path:
    target = root / "controlroom"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(controlroom.__file__).parent, target, ignore=ignore)
    shutil.copytree(Path(controlroom.daemon.__file__).parent, target / "daemon", ignore=ignore)
    shutil.copytree(Path(controlroom.dsp.__file__).parent, target / "dsp", ignore=ignore)
    return target


def answers(root: Path, *code: str) -> list[int]:
    """What each line ``code`` prints, run in one fresh process on the copy and its cache."""
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(root / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", "; ".join(code)], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return [int(line) for line in done.stdout.split()]


def test_a_changed_constant_in_layout_py_makes_the_kernels_that_compiled_it_in_compile_again(tmp_path):
    package = copy_of_the_package(tmp_path)
    layout = package / "dsp" / "layout.py"
    text = layout.read_text()
    frames = int(next(line for line in text.splitlines() if line.startswith("TAP_FRAMES =")).split()[2])
    words = lambda tap_frames: (tap_frames + 16 + 1) // 2  # noqa: E731 (TAP_PLANE = TAP_FRAMES + 16)

    assert answers(tmp_path, FORGET, ASK) == [0, words(frames)]  # compiled and cached
    layout.write_text(text.replace(f"TAP_FRAMES = {frames}", "TAP_FRAMES = 4096"))

    assert answers(tmp_path, ASK) == [words(frames)]  # numba alone: the stale kernel
    deleted, answer = answers(tmp_path, FORGET, ASK)
    assert deleted > 0 and answer == words(4096)
    assert answers(tmp_path, FORGET, ASK) == [0, words(4096)]  # stamped: kept from now on


def test_forgetting_stale_kernels_loads_no_audio_library():
    # run and demo call it before the runner opens the stream: importing the engine package
    # there would initialise PortAudio (sounddevice does on import), JACK client and all, on
    # the event loop's thread before OSC listens — a JACK server dying then aborted the daemon
    code = (
        "import sys; "
        + FORGET
        + "; print(sorted(m for m in ('sounddevice', 'controlroom.daemon.engine') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[1] == "[]"

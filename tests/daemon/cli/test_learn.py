"""``controlroom learn`` as a user runs it: what it says when it cannot listen.

Learning itself (a control moved on a JACK MIDI port) is tested in tests/daemon/midi/test_midi_jack.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROCESS_TIMEOUT_S = 60
CONFIG = """
[sources.mix]
channels = [1, 2]

[speakers.studio]
outputs = [1, 2]
"""
SURFACE = """
[[surfaces]]
name = "desk"
input = "no such port"
mapping = "generic-8-knob"
"""


def learn(tmp_path, text: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "controlroom.toml"
    path.write_text(text)
    command = [sys.executable, "-m", "controlroom", "learn", "-c", str(path), *args]
    env = {k: v for k, v in os.environ.items() if k != "MIDO_BACKEND"}
    return subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, env=env)


def test_with_no_surface_it_says_to_add_one(tmp_path):
    result = learn(tmp_path, CONFIG, "volume")
    assert result.returncode == 2
    assert result.stderr == "controlroom learn: add a [[surfaces]] table first (see `controlroom devices`)\n"
    assert result.stdout == ""


def test_a_midi_api_rtmidi_lacks_is_one_line_before_any_prompt(tmp_path):
    backend = "mido.backends.rtmidi/WINDOWS_MM"  # never compiled on Linux
    result = learn(tmp_path, CONFIG + f'[midi]\nbackend = "{backend}"\n' + SURFACE, "volume")
    assert result.returncode == 1
    assert result.stderr.startswith("controlroom learn: MIDI API 'WINDOWS_MM' is not available (")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.skipif(os.path.exists("/dev/snd/seq"), reason="this machine has an ALSA sequencer")
def test_without_the_alsa_sequencer_it_says_so_in_one_line_before_any_prompt(tmp_path):
    backend = "mido.backends.rtmidi/LINUX_ALSA"
    result = learn(tmp_path, CONFIG + f'[midi]\nbackend = "{backend}"\n' + SURFACE, "volume")
    assert result.returncode == 1
    assert result.stderr.startswith(f"controlroom learn: cannot use MIDI through {backend}: ")
    assert result.stderr.count("\n") == 1 and "ALSA lib" not in result.stderr
    assert result.stdout == ""

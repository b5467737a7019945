"""``controlroom devices`` as a user runs it, here with no JACK server to find (and whatever
sound cards the machine has): no library noise, and no heading left empty."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

PROCESS_TIMEOUT_S = 60
NONE_FOUND = "  (none found: is the interface connected? are you in group audio?)"


def devices() -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        # MIDI through JACK, on a server that does not run: no ports, whatever the machine has
        MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK",
        JACK_DEFAULT_SERVER=f"controlroom-absent-{uuid.uuid4().hex[:8]}",
        JACK_NO_START_SERVER="1",
    )
    command = [sys.executable, "-m", "controlroom", "devices"]
    return subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, env=env)


def test_what_the_libraries_print_while_probing_stays_out():
    result = devices()
    assert result.returncode == 0
    assert result.stderr == ""
    assert "ALSA lib" not in result.stdout and "Cannot connect" not in result.stdout


def test_an_empty_heading_says_what_to_check():
    lines = devices().stdout.splitlines()
    midi = lines.index("MIDI ports (mido.backends.rtmidi/UNIX_JACK):")
    assert lines[midi + 1] == NONE_FOUND
    audio = lines.index("Audio devices (name or index for [audio] device):")
    assert audio + 1 < midi, "the audio heading has nothing under it"
    if lines[audio + 1] == NONE_FOUND:
        assert audio + 2 == midi

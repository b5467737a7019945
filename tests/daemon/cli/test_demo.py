"""``controlroom demo`` as a user runs it: on the built-in studio or on their own config, with
its OSC port taken, and with arguments it refuses."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from clikit import DEMO_PORT, Command, hold_udp

#: A studio with its hardware not yet there: a PortAudio device no machine has, sources on
#: inputs the built-in demo leaves silent, its own state file.
OWN_STUDIO = """
[audio]
backend = "portaudio"
device = "no such interface"
input_channels = 8
output_channels = 4

[sources.daw]
channels = [5, 6]

[sources.player]
channels = [8]

[speakers.mains]
outputs = [1, 2]

[osc]
listen = "127.0.0.1:0"

[state]
path = "{state}"
"""

#: The demo's once-a-second line when stdout is not a terminal, with output levels (dBFS).
PLAYING = re.compile(r"^(\w+) on (\w+) at -?[\d.]+ dB \| outputs RMS dBFS 1:-[\d.]+ 2:-[\d.]+ \| match ")


@pytest.fixture
def home(tmp_path):
    """An environment whose config and state places are all inside tmp_path."""
    return {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


def test_demo_plays_the_users_own_config_on_the_virtual_backend_and_saves_nothing(tmp_path, home):
    state = tmp_path / "state.json"
    config = tmp_path / "mystudio.toml"
    config.write_text(OWN_STUDIO.format(state=state))
    demo = Command("demo", "-c", str(config), "--seconds", "600", cwd=tmp_path, env=home)
    try:
        line = demo.wait_line("stdout", PLAYING.match)
    finally:
        status = demo.stop()
    assert PLAYING.match(line).groups() == ("daw", "mains")  # its first source, on its first set
    assert status == 0, demo.output()
    assert "Traceback" not in "\n".join(demo.stderr)
    assert not state.exists()
    assert not (tmp_path / "state").exists()


def test_demo_with_a_missing_config_file_exits_2(tmp_path, home):
    demo = Command("demo", "-c", str(tmp_path / "nowhere.toml"), "--seconds", "600", cwd=tmp_path, env=home)
    assert demo.finish() == 2
    assert demo.stderr == [f"{tmp_path / 'nowhere.toml'}: no such config file (given by -c)"]


def test_demo_with_its_port_taken_names_it_and_how_to_choose_another(tmp_path, home, demo_ports):
    holder = hold_udp(DEMO_PORT)  # None: someone else holds it, which is as taken
    try:
        demo = Command("demo", "--seconds", "600", cwd=tmp_path, env=home)
        try:
            status = demo.finish()
        finally:
            demo.kill()
    finally:
        if holder is not None:
            holder.close()
    assert status == 1
    assert demo.stderr == [
        f"controlroom demo: OSC cannot listen on 127.0.0.1:{DEMO_PORT}: Address already in use (another controlroom"
        " running? choose another port with [osc] listen in a config: controlroom demo -c FILE)"
    ]


def test_demo_of_a_config_whose_port_is_taken_names_the_file(tmp_path, home):
    holder = hold_udp(0)
    port = holder.getsockname()[1]
    config = tmp_path / "mystudio.toml"
    config.write_text(OWN_STUDIO.format(state=tmp_path / "state.json").replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"'))
    try:
        demo = Command("demo", "-c", str(config), "--seconds", "600", cwd=tmp_path, env=home)
        try:
            status = demo.finish()
        finally:
            demo.kill()
    finally:
        holder.close()
    assert status == 1
    assert demo.stderr == [
        f"controlroom demo: OSC cannot listen on 127.0.0.1:{port}: Address already in use (another controlroom"
        f" running? choose another port with [osc] listen in {config})"
    ]


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
def test_seconds_must_be_a_positive_number(seconds):
    command = [sys.executable, "-m", "controlroom", "demo", f"--seconds={seconds}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"controlroom demo: error: argument --seconds: expected a positive number of seconds, got {seconds!r}\n"
    )
    assert result.stdout == ""

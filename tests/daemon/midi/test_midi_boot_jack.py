"""MIDI surfaces and the MIDI server's life: a daemon started before its JACK server (a boot
race) waits for it, reports its surfaces as waiting, and connects them when the server and the
ports appear — as audio does. The daemon, the JACK server and the fake surface are
subprocesses, and this process opens no JACK client at all: one opened here after earlier tests
killed their server makes libjack free that server's dead clients under threads still running
(PortAudio's, abandoned), which crashed the test process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
from daemonproc import DaemonProcess, write_config
from jackmidi import BACKEND
from jackutil import give_back, jackd_command, make_room

pytestmark = [pytest.mark.jack, pytest.mark.slow]

#: Bound for the daemon to report or connect (a cold numba cache compiles first).
WAIT_S = 60.0
#: A surface's two virtual JACK MIDI ports named argv[1], until stdin closes.
FAKE_SURFACE = """
import sys, rtmidi
ports = [rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="fake"), rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="fake")]
for port in ports:
    port.open_virtual_port(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


# --- a MIDI server that starts after the daemon (a boot race) -------------------------------------

SURFACE_CONFIG = """\
[audio]
backend = "virtual"

[sources.mix]
channels = [1, 2]

[speakers.studio]
outputs = [1, 2]

[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"

[midi]
backend = "{backend}"

[[surfaces]]
name = "desk"
input = "{port}"
output = "{port}"
mapping = "behringer-xtouch-mini"
"""


def test_surfaces_wait_for_a_midi_server_that_starts_after_the_daemon(tmp_path):
    """JACK started after the daemon: the surface is reported waiting for MIDI, then connects
    once the server and its port appear, as audio does; the state report names its ports."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed")
    name = f"controlroom-midi-late-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    server = None
    port = f"late-desk-{uuid.uuid4().hex[:6]}"
    config = write_config(
        tmp_path / "controlroom.toml",
        SURFACE_CONFIG.format(state_path=tmp_path / "state.json", backend=BACKEND, port=port),
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env={"JACK_DEFAULT_SERVER": name})
    fake = None
    try:
        daemon.start()
        with daemon.peer() as peer:
            waiting = daemon.wait_report(
                peer,
                lambda r: r["surfaces"]["desk"].get("waiting", "MIDI: opening") != "MIDI: opening",
                WAIT_S,
                "the surface reported waiting",
            )
            assert waiting["surfaces"]["desk"]["connected"] is False
            assert waiting["surfaces"]["desk"]["waiting"].startswith("MIDI: ")
            make_room()
            server = subprocess.Popen(
                jackd_command(name, channels=2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            daemon.wait_log(r"MIDI \(.*\) available again", WAIT_S)  # the daemon is the probe
            fake = subprocess.Popen(
                [sys.executable, "-c", FAKE_SURFACE, port],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "JACK_DEFAULT_SERVER": name},
            )
            assert fake.stdout.readline() == "ready\n"
            connected = daemon.wait_report(
                peer, lambda r: r["surfaces"]["desk"]["connected"], WAIT_S, "the surface to connect"
            )
        desk = connected["surfaces"]["desk"]
        assert port in desk["input"] and port in desk["output"] and "waiting" not in desk
        assert "MIDI (" in daemon.log() and "available again" in daemon.log()
        assert daemon.terminate() == 0
    finally:
        if fake is not None:
            fake.stdin.close()
            fake.wait(10)
        daemon.close()
        if server is not None:
            server.terminate()
            server.wait(20)
            give_back(name)  # if the server died without unregistering
